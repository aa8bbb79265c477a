"""Metric maths: image quality, LPIPS, FID, LMD, lip sync, calibration, quality indicators, statistics,
and the one table that says what each metric is (``bench.metrics.specs``)."""

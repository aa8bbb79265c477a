"""Clip-level bootstrap confidence intervals (frames of one clip are not independent)."""
from __future__ import annotations

import numpy as np


def clip_bootstrap_ci(values: np.ndarray, clip_ids: np.ndarray, resamples: int = 1000,
                      seed: int = 0, level: float = 0.95) -> list[float] | None:
    """Percentile CI of the frame mean, resampling whole clips with replacement."""
    values = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(values)
    values, clip_ids = values[keep], np.asarray(clip_ids)[keep]
    unique, inverse = np.unique(clip_ids, return_inverse=True)
    if unique.size < 2 or resamples <= 0:
        return None
    sums = np.bincount(inverse, weights=values)
    counts = np.bincount(inverse).astype(np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, unique.size, size=(resamples, unique.size))
    means = sums[picks].sum(1) / counts[picks].sum(1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return [float(low), float(high)]

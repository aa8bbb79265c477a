"""summary.json's correlation bootstraps: resamples as row multiplicities against resamples of copied rows.

The summary bootstraps, per block (all frames and each pose bin), the pooled pixel correlations
(unc_spearman on 200 resamples, unc_pearson on 1000) and the per-frame ones (unc_frame_spearman,
unc_psnr_spearman, unc_lpips_spearman, psnr_r2, 1000 each). The reference path is ``bootstrap_ci``, which
copies each resample's rows and sorts them; the current one is what ``scorer_summary`` does now:
``bootstrap_rows`` with ``bench.metrics.weighted`` (one sort, ranks by cumulative multiplicities) and the
pooled Pearson from per-clip moment sums. Same seeds, same draws: the script prints both wall times, the
ratio and the largest difference between any two resampled values.

Data: the quick preset's test split shape by default (9 clips of 50 frames, 64 px, every 17th pixel of the
lower half), synthetic error and uncertainty maps (``bench_summary.frames_and_maps``).

Usage: python benchmarks/bench_bootstrap.py [--clips 9] [--frames 50] [--size 64] [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_summary import frames_and_maps, result_with_stride  # noqa: E402
from bench.harness.scorer_summary import SPEARMAN_RESAMPLES, _pearson, subsample_stride  # noqa: E402
from bench.metrics import calibration, quality, weighted  # noqa: E402
from bench.metrics.stats import bootstrap_ci, bootstrap_rows, bootstrap_sums  # noqa: E402


def reference(u, e, pixel_clips, mean_u, mean_e, psnr, frame_clips) -> list[np.ndarray]:
    samples = [bootstrap_ci(calibration.spearman, u, e, clip_ids=pixel_clips, resamples=SPEARMAN_RESAMPLES).samples,
               bootstrap_ci(_pearson, u, e, clip_ids=pixel_clips, resamples=1000).samples]
    for fn in (quality.unc_frame_spearman, lambda a, b: -calibration.spearman(a, b),
               lambda a, b: calibration.spearman(a, -b), quality.psnr_r2):
        samples.append(bootstrap_ci(fn, mean_u, mean_e if fn is quality.unc_frame_spearman else psnr,
                                    clip_ids=frame_clips, resamples=1000).samples)
    return samples


def current(u, e, pixel_clips, mean_u, mean_e, psnr, frame_clips) -> list[np.ndarray]:
    inverse = np.unique(pixel_clips, return_inverse=True)[1]
    rows = lambda fn: bootstrap_rows(fn, 0.0, frame_clips, 1000).samples  # noqa: E731
    log_u = np.log(mean_u)
    return [bootstrap_rows(lambda w: weighted.spearman(u, e, w), 0.0, pixel_clips, SPEARMAN_RESAMPLES).samples,
            bootstrap_sums(weighted.pearson_of_sums, weighted.moment_sums(u, e, inverse), resamples=1000).samples,
            rows(lambda w: weighted.spearman(mean_u, mean_e, w, drop_nonfinite=True)),
            rows(lambda w: -weighted.spearman(mean_u, psnr, w)),
            rows(lambda w: weighted.spearman(mean_u, -psnr, w)),
            rows(lambda w: weighted.pearson(log_u, psnr, w) ** 2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=9)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    frames, maps = frames_and_maps(args.clips, args.frames, args.size, seed=0)
    result = result_with_stride(frames, maps, lambda n: subsample_stride(n, 17))
    u, e, row = result.subsample
    u, e = u.astype(np.float64), e.astype(np.float64)
    clip_ids = frames["clip_id"].to_numpy()
    inputs = (u, e, clip_ids[row], frames["unc_mean"].to_numpy(), frames["err_mean"].to_numpy(),
              frames["psnr"].to_numpy(), clip_ids)
    times = {"reference": [], "current": []}
    outputs = {}
    for _ in range(args.rounds):  # alternate, so that machine noise hits both alike
        for name, fn in (("reference", reference), ("current", current)):
            start = time.perf_counter()
            outputs[name] = fn(*inputs)
            times[name].append(time.perf_counter() - start)
    worst = max(float(np.nanmax(np.abs(a - b))) for a, b in zip(outputs["reference"], outputs["current"]))
    same_nan = all((np.isnan(a) == np.isnan(b)).all() for a, b in zip(outputs["reference"], outputs["current"]))
    ref, cur = statistics.median(times["reference"]), statistics.median(times["current"])
    print(f"{args.clips} clips x {args.frames} frames at {args.size} px, {u.size} subsample pixels, one block")
    print(f"reference (copied rows): {ref:.2f} s; current (row multiplicities, moment sums): {cur:.2f} s; "
          f"{ref / cur:.1f}x faster; largest difference between resampled values {worst:.1e}; "
          f"NaN in the same places: {same_nan}")


if __name__ == "__main__":
    main()

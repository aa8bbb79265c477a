"""summary.json of a 256-px test set: the capped pixel subsample against the uncapped one it replaced.

The pooled statistics (unc_spearman, unc_pearson, ause_pooled) bootstrap over a pixel subsample, sorting
all of it in every resample. The reference keeps every 17th pixel of each frame's generated region and
bootstraps all of it (what summaries did before the caps); the current path keeps at most
PIXELS_PER_FRAME pixels a frame (a larger prime stride) and thins a block's subsample to about
POOLED_PIXELS. Same frames, same per-frame rows; the script prints both summaries' wall time, the ratio,
the subsample sizes and the pooled values with their CIs side by side.

Synthetic frames: clips of talking-face-like error maps (Laplace errors whose scale u varies smoothly
over the region and drifts from frame to frame), so the pooled correlations are far from 0 and 1.

Usage: python benchmarks/bench_summary.py [--clips 12] [--frames 50] [--size 256] [--seed 0]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.config import EvalConfig  # noqa: E402
from bench.harness import scorer_summary  # noqa: E402
from bench.harness.scorer_summary import EvalResult, subsample_stride, summarise  # noqa: E402
from bench.metrics import calibration  # noqa: E402


def frames_and_maps(clips: int, frames: int, size: int, seed: int):
    """Per-frame rows and, per frame, the region's (u, e) as flat float32 arrays (the lower half)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size // 2, 0:size].astype(np.float32) / size
    rows, maps = [], []
    for c in range(clips):
        yaw = float(rng.uniform(-50, 50))
        for t in range(frames):
            centre = 0.5 + 0.2 * np.sin(0.2 * t + c)
            u = 0.01 + 0.05 * np.exp(-((xs - centre) ** 2 + (ys - 0.25) ** 2) / 0.02) * (1 + 0.3 * np.sin(0.1 * t))
            e = rng.laplace(0, 1, u.shape).astype(np.float32) * u * rng.uniform(0.5, 1.5)
            e = np.abs(e + rng.normal(0, 0.005, u.shape).astype(np.float32))
            maps.append((u.ravel().astype(np.float32), e.ravel()))
            yaw_t = yaw + 5 * np.sin(0.1 * t)
            rows.append({"clip_id": f"c{c:03d}", "frame": t, "yaw": yaw_t,
                         "pose_bin": "frontal" if abs(yaw_t) < 15 else "moderate" if abs(yaw_t) < 30 else "extreme",
                         "unc_mean": float(u.mean()), "err_mean": float(e.mean()),
                         "psnr": float(-10 * np.log10(np.mean(e ** 2) + 1e-12))})
    table = pd.DataFrame(rows)
    for name in scorer_summary.FRAME_CALIBRATION:  # per-frame means: the same cost on both paths
        if name not in table:
            table[name] = rng.random(len(table))
    return table, maps


def result_with_stride(frames: pd.DataFrame, maps, stride_of) -> EvalResult:
    fractions = calibration.sparsification_fractions()
    levels = calibration.coverage_levels()
    sub_u, sub_e, sub_row, inside, pixels = [], [], [], [], []
    for row, (u, e) in enumerate(maps):
        stride = stride_of(u.size)
        sub_u.append(u[::stride])
        sub_e.append(e[::stride])
        sub_row.append(np.full(sub_u[-1].size, row, dtype=np.int64))
        _, observed = calibration.coverage_curve(e, u, levels)
        inside.append(np.round(observed * e.size))
        pixels.append(e.size)
    return EvalResult(frames=frames, fractions=fractions, has_uncertainty=True, inside=np.array(inside),
                      region_pixels=np.array(pixels, dtype=np.float64),
                      subsample=(np.concatenate(sub_u), np.concatenate(sub_e), np.concatenate(sub_row)))


def timed_summary(result: EvalResult, config: EvalConfig) -> tuple[float, dict]:
    start = time.perf_counter()
    summary = summarise(result, "bench", config, seed=0)
    return time.perf_counter() - start, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--frames", type=int, default=50, help="frames per clip")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = EvalConfig()
    frames, maps = frames_and_maps(args.clips, args.frames, args.size, args.seed)
    base = config.spearman_stride
    reference = result_with_stride(frames, maps, lambda n: base)
    current = result_with_stride(frames, maps, lambda n: subsample_stride(n, base))
    cap = scorer_summary.POOLED_PIXELS
    scorer_summary.POOLED_PIXELS = reference.subsample[0].size + 1  # the reference: no thinning
    ref_time, ref = timed_summary(reference, config)
    scorer_summary.POOLED_PIXELS = cap
    cur_time, cur = timed_summary(current, config)
    print(f"{len(frames)} frames of {args.size} px ({args.clips} clips), region {maps[0][0].size} pixels a frame")
    print(f"subsample: reference {reference.subsample[0].size} pixels (stride {base}), current "
          f"{current.subsample[0].size} (stride {subsample_stride(maps[0][0].size, base)}), pooled statistics "
          f"on {cur['metrics']['unc_spearman']['n']} (thinned by {cur['metrics']['unc_spearman'].get('thinned_by', 1)})")
    print(f"summary wall time: reference {ref_time:.1f} s, current {cur_time:.1f} s, ratio {ref_time / cur_time:.1f}x")
    print("| metric | reference | 95% CI | current | 95% CI |")
    print("|---|---|---|---|---|")
    for name in ("unc_spearman", "unc_pearson", "ause_pooled"):
        a, b = ref["metrics"][name], cur["metrics"][name]
        ci = [", ".join(f"{x:.4f}" for x in entry["ci95"]) if entry["ci95"] else "none" for entry in (a, b)]
        print(f"| {name} | {a['value']:.4f} | [{ci[0]}] | {b['value']:.4f} | [{ci[1]}] |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

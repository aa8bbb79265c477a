"""Pooled sparsification at 10^7 pixels: our one-sort AUSE vs a loop that sorts once per fraction.

The loop is the straightforward evaluation (as in mono-uncertainty's code): for each fraction,
argsort by uncertainty (and by error, for the oracle), drop the top round(f * N), average the rest.
Continuous random data (float64, no ties), so both give the same AUSE; the script asserts it.

Usage: python benchmarks/bench_sparsification.py [--pixels N] [--step 0.01] [--seed S]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.metrics import calibration  # noqa: E402


def loop_curves(error: np.ndarray, uncertainty: np.ndarray, fractions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference: two full argsorts per fraction."""
    n = error.size
    model, oracle = np.empty(fractions.size), np.empty(fractions.size)
    for i, f in enumerate(fractions):
        k = int(round(f * n))
        model[i] = error[np.argsort(-uncertainty)[k:]].mean()
        oracle[i] = error[np.argsort(-error)[k:]].mean()
    return model, oracle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pixels", type=int, default=10_000_000)
    parser.add_argument("--step", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    error = rng.exponential(0.05, args.pixels)
    uncertainty = error * rng.lognormal(0.0, 0.5, args.pixels)  # informative but imperfect
    fractions = calibration.sparsification_fractions(args.step)
    calibration.sparsification_curves(error[:1000], uncertainty[:1000], fractions)  # warm-up

    start = time.perf_counter()
    model, oracle = calibration.sparsification_curves(error, uncertainty, fractions)
    ours = calibration.ause(model, oracle, fractions)
    t_ours = time.perf_counter() - start

    start = time.perf_counter()
    ref_model, ref_oracle = loop_curves(error, uncertainty, fractions)
    ref = calibration.ause(ref_model, ref_oracle, fractions)
    t_loop = time.perf_counter() - start

    print(f"pixels: {args.pixels:,}   fractions: {fractions.size}")
    print(f"pooled one-sort AUSE  {ours:.10f}   {t_ours:8.2f} s")
    print(f"per-fraction loop     {ref:.10f}   {t_loop:8.2f} s")
    print(f"speed-up: {t_loop / t_ours:.0f}x   max curve difference: {np.abs(model - ref_model).max():.2e}")
    if not np.isclose(ours, ref, rtol=1e-9, atol=1e-12):
        print("MISMATCH: the two AUSEs differ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

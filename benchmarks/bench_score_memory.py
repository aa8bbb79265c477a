"""Evaluation memory streams: peak RSS of `bench score` on N frames and on 10 x N frames.

Makes a pair of frame directories (PNG; smooth random colour fields plus noise, the generated side a noisier,
blurred copy) and a T x H x W uncertainty map (.npy), at 1x and 10x the frames, and runs
``python -m bench.cli score --pred ... --gt ... --uncertainty ... --no-report --no-progress`` on each in a fresh
process with its own empty ``$TALKBENCH_CACHE`` (so no ground-truth work is read from a cache). The peak
resident set size is the kernel's (``os.wait4`` rusage ``ru_maxrss`` of that process). The goal (issue 15):
peak at 10x at most 1.2 x the peak at 1x. Networks (LPIPS, FID, LMD) are on by default, so the weights must be
provisioned (``bench weights fetch``, or ``TALKBENCH_WEIGHTS``); ``--no-networks`` measures without them.

Usage: python benchmarks/bench_score_memory.py [--frames N] [--size PX] [--no-networks] [--keep DIR]
Exit status 0: ratio within 1.2; 1: above it, or a run failed; 2: bad arguments.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GOAL = 1.2
ROOT = Path(__file__).resolve().parents[1]


def make_inputs(directory: Path, n: int, size: int, seed: int) -> dict[str, Path]:
    """pred/ and gt/ PNG frame directories and an uncertainty .npy with n frames."""
    from PIL import Image
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    pred_dir, gt_dir = directory / "pred", directory / "gt"
    pred_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    maps = np.empty((n, size, size), dtype=np.float32)
    for t in range(n):
        coarse = rng.random((8, 8, 3))
        smooth = ndimage.zoom(coarse, (size / 8, size / 8, 1), order=3)[:size, :size]
        gt = np.clip(30 + 195 * smooth + rng.normal(0, 8, (size, size, 3)), 0, 255)
        pred = np.clip(ndimage.uniform_filter(gt, (3, 3, 1)) + rng.normal(0, 10, gt.shape), 0, 255)
        Image.fromarray(gt.round().astype(np.uint8)).save(gt_dir / f"{t:06d}.png")
        Image.fromarray(pred.round().astype(np.uint8)).save(pred_dir / f"{t:06d}.png")
        maps[t] = np.abs(pred - gt).mean(-1) / 255 + 0.01
    np.save(directory / "u.npy", maps)
    return {"pred": pred_dir, "gt": gt_dir, "uncertainty": directory / "u.npy"}


def peak_rss(inputs: dict[str, Path], out: Path, cache: Path, networks: bool) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of one `bench score` process."""
    command = [sys.executable, "-m", "bench.cli", "score", "--pred", str(inputs["pred"]), "--gt", str(inputs["gt"]),
               "--uncertainty", str(inputs["uncertainty"]), "--out", str(out), "--no-report", "--no-progress"]
    if not networks:
        command.append("--no-networks")
    env = {**os.environ, "TALKBENCH_CACHE": str(cache)}
    if "TALKBENCH_WEIGHTS" not in env:  # the user's provisioned weights, not the empty cache's
        from bench.weights.store import weights_dir

        env["TALKBENCH_WEIGHTS"] = str(weights_dir())
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"bench score failed ({proc.returncode}):\n{output.decode(errors='replace')[-3000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - started  # ru_maxrss is in KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30, help="frames at 1x (10x scores ten times as many)")
    parser.add_argument("--size", type=int, default=128, help="frame side in pixels")
    parser.add_argument("--no-networks", action="store_true", help="without LPIPS, FID and LMD")
    parser.add_argument("--keep", type=Path, help="make the inputs and runs here instead of a temporary directory")
    args = parser.parse_args()
    if args.frames < 2 or args.size < 32:
        print("bench_score_memory: need --frames >= 2 and --size >= 32", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench_score_memory_") as tmp:
        base = args.keep or Path(tmp)
        results = {}
        for factor in (1, 10):
            n = factor * args.frames
            inputs = make_inputs(base / f"x{factor}" / "inputs", n, args.size, seed=factor)
            results[factor] = (n, *peak_rss(inputs, base / f"x{factor}" / "run", base / f"x{factor}" / "cache",
                                            not args.no_networks))
            print(f"{factor:>2}x: {n} frames at {args.size} px: peak RSS {results[factor][1]:.0f} MiB "
                  f"({results[factor][2]:.0f} s)", flush=True)
    ratio = results[10][1] / results[1][1]
    load = os.getloadavg()[0]
    print(f"peak RSS at 10x / at 1x = {ratio:.3f} (goal <= {GOAL}); networks "
          f"{'off' if args.no_networks else 'on (LPIPS, FID, LMD)'}; load average {load:.1f}")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())

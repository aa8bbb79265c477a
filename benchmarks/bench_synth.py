"""Speed of the synthetic data generator: frames/s with 1 and 2 workers, ms per rendered frame.

Usage: python benchmarks/bench_synth.py [--clips N] [--size PX] [--seconds S]
Exits non-zero if generation fails or produces the wrong number of frames.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.data.synth import FaceState, SynthConfig, generate_dataset, render_frame  # noqa: E402
from bench.data.synth.identity import make_identity  # noqa: E402


def time_generation(config: SynthConfig, workers: int) -> float:
    """Frames per second of generate_dataset, files written included."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        dataset = generate_dataset(config, Path(tmp), workers=workers, progress=False)
        elapsed = time.perf_counter() - start
        frames = sum(entry["n_frames"] for entry in dataset.entries)
    expected = (config.train_clips + 3 * config.test_clips_per_stratum) * config.n_frames
    if frames != expected:
        raise RuntimeError(f"generated {frames} frames, expected {expected}")
    return frames / elapsed


def time_render(size: int, repeats: int = 40) -> float:
    """Milliseconds per render_frame call on one core, over a spread of poses."""
    identity = make_identity(0, 0)
    render_frame(identity, size=size)  # warm-up
    start = time.perf_counter()
    for i in range(repeats):
        yaw = -75 + 150 * i / (repeats - 1)
        render_frame(identity, yaw, 3.0, -2.0, FaceState(mouth_open=(i % 5) / 4), size=size)
    return (time.perf_counter() - start) / repeats * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12, help="train clips (plus 3 test clips)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    config = SynthConfig(size=args.size, seconds=args.seconds, train_clips=args.clips, test_clips_per_stratum=1)
    ms = time_render(args.size)
    print(f"render_frame {args.size}x{args.size}: {ms:.1f} ms/frame (one core)")
    fps1 = time_generation(config, workers=1)
    print(f"generate_dataset, 1 worker : {fps1:.1f} frames/s")
    fps2 = time_generation(config, workers=2)
    print(f"generate_dataset, 2 workers: {fps2:.1f} frames/s")
    print(f"speed-up: {fps2 / fps1:.2f}x")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as error:  # the benchmark must fail loudly, not print a number
        print(f"bench_synth failed: {error!r}", file=sys.stderr)
        sys.exit(1)

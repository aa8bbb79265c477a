"""CPBD speed: bench.metrics.cpbd against the reference package (cpbd-py312, the cpbd 1.0.7 algorithm), measured
in the same run on the same gray frames, with the largest difference between the two.

Frames: the real clips in ../shared/data/real (decoded with PyAV, PIL 'L' luma) at their own size and
resized to each --sizes; smooth synthetic images when the clips are absent.

Usage: python benchmarks/bench_cpbd.py [--sizes 112 224 448] [--frames 6] [--repeat 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.metrics import cpbd  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def load_frames(count: int) -> list[np.ndarray]:
    paths = sorted(REAL.glob("*.mp4"))
    if not paths:
        rng = np.random.default_rng(0)
        return [np.clip(ndi.zoom(rng.uniform(0, 255, (33, 33)), 8, order=1) + rng.normal(0, 4, (264, 264)), 0, 255)
                .astype(np.uint8) for _ in range(count)]
    import av

    frames = []
    for path in paths[:count]:
        with av.open(str(path)) as container:
            frames.append(cpbd.to_gray(next(container.decode(video=0)).to_ndarray(format="rgb24")))
    return frames


def resize(gray: np.ndarray, size: int) -> np.ndarray:
    zoom = (size / gray.shape[0], size / gray.shape[1])
    return np.clip(np.round(ndi.zoom(gray.astype(np.float64), zoom, order=1)), 0, 255).astype(np.uint8)


def timed(fn, images: list[np.ndarray], repeat: int) -> tuple[float, list[float]]:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        values = [fn(img) for img in images]
        best = min(best, time.perf_counter() - start)
    return best / len(images), values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[112, 224, 448])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    try:
        import cpbd as reference
    except ImportError:
        sys.exit("the reference package is not installed: pip install cpbd-py312==1.0.3")
    frames = load_frames(args.frames)
    print(f"{'size':>10} {'frames':>6} {'ours ms':>9} {'reference ms':>13} {'speed-up':>9} {'max |diff|':>11}")
    for size in [None, *args.sizes]:
        images = frames if size is None else [resize(f, size) for f in frames]
        ours_s, ours = timed(cpbd.cpbd, images, args.repeat)
        ref_s, ref = timed(reference.compute, images, args.repeat)
        label = "native" if size is None else f"{size}x{size}"
        diff = max(abs(a - b) for a, b in zip(ours, ref))
        print(f"{label:>10} {len(images):>6} {ours_s * 1e3:>9.2f} {ref_s * 1e3:>13.2f} {ref_s / ours_s:>8.1f}x {diff:>11.2e}")


if __name__ == "__main__":
    main()

"""Speed of `bench data prepare` on the shared real clips: output frames/s, per stage and overall.

Usage: python benchmarks/bench_prepare.py [--clips N] [--size PX] [--seconds S] [--workers K] [--real DIR]
Exits non-zero if a clip is skipped or the real clips are missing.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.data.prepare import prepare_dataset  # noqa: E402
from bench.data.prepare.decode import scan_video, select_frames  # noqa: E402
from bench.data.prepare.process import _run_mesh  # noqa: E402

DEFAULT_REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
DEFAULT_CLIPS = ("video-retalking__examples_face_1.mp4", "pc-avs__misc_Pose_Source_00067.mp4",
                 "pc-avs__misc_Audio_Source_00015.mp4")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL)
    parser.add_argument("--clips", type=int, default=3, help="how many of the shared clips (30 fps one first)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=4.0, help="--first-seconds per clip")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    names = [*DEFAULT_CLIPS, *sorted(p.name for p in args.real.glob("*.mp4") if p.name not in DEFAULT_CLIPS)]
    files = [args.real / name for name in names[:args.clips] if (args.real / name).is_file()]
    if not files:
        print(f"no real clips in {args.real}", file=sys.stderr)
        return 1
    start = time.perf_counter()
    scans = [scan_video(path, args.seconds) for path in files]
    decode_s = time.perf_counter() - start
    frames_in = sum(len(scan.times) for scan in scans)
    start = time.perf_counter()
    for scan in scans:
        _run_mesh(scan.small[select_frames(scan.times, scan.fps_in)])
    mesh_s = time.perf_counter() - start
    print(f"decode (detection size):     {frames_in / decode_s:7.1f} input frames/s")
    print(f"face mesh on detection size: {frames_in / mesh_s:7.1f} frames/s")
    with tempfile.TemporaryDirectory() as tmp:
        videos = Path(tmp) / "videos"
        videos.mkdir()
        for path in files:
            (videos / path.name).symlink_to(path.resolve())
        start = time.perf_counter()
        result = prepare_dataset(Path(tmp) / "out", videos=videos, size=args.size, workers=args.workers,
                                 first_seconds=args.seconds, progress=False)
        elapsed = time.perf_counter() - start
    ok = result.qa[result.qa["status"] == "ok"]
    frames = int(ok["frames_out"].sum())
    print(f"prepare {len(ok)}/{len(result.qa)} clips, {frames} frames at {args.size} px, {args.workers} worker(s): "
          f"{frames / elapsed:.1f} frames/s ({elapsed:.1f} s)")
    return 0 if len(ok) == len(result.qa) else 1


if __name__ == "__main__":
    raise SystemExit(main())

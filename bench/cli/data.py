"""`bench data synth` (make or find the synthetic heads), `bench data prepare` (a folder of real videos -> a
dataset) and `bench data sheet` (a dataset's contact sheet)."""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.cli.common import positive_int
from bench.config import PRESETS, preset_config

_PREPARE_LAYOUTS = ("folder", "hdtf", "mead")  # bench.data.prepare.LAYOUTS, listed here so --help loads no data stack


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_parser(commands: Any) -> None:
    data = commands.add_parser("data", help="datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    synth = data_commands.add_parser("synth", help="generate (or find cached) synthetic talking heads")
    synth.add_argument("--preset", default="quick", choices=PRESETS, help="the preset whose data to make")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--out", type=Path, help="write here instead of the cache")
    synth.add_argument("--workers", type=positive_int, default=2)
    synth.add_argument("--head-motion", type=float, metavar="DEG",
                       help="within-clip head turns up to DEG degrees of yaw (0-45; pitch and roll at half; default 12)")
    synth.add_argument("--camera-motion", type=float, metavar="F",
                       help="camera shift up to F of the view and zoom by up to F (0-0.2; default 0.03)")
    synth.add_argument("--still", action="store_true",
                       help="heads that only sway, a still camera: the data before 2026-12 (--head-motion 0 --camera-motion 0)")
    synth.add_argument("--conditions", type=_conditions, default=(), metavar="C,...",
                       help="scene dynamics, one per clip: background, lighting, occluder (or 'all')")
    prepare = data_commands.add_parser("prepare", help="turn a folder of talking-face videos into a dataset")
    source = prepare.add_mutually_exclusive_group(required=True)
    source.add_argument("--videos", type=Path, help="a folder of videos with sound (searched per --layout)")
    source.add_argument("--list", type=Path, dest="list_file", help="a text file: one video path a line")
    prepare.add_argument("--layout", default="folder", choices=_PREPARE_LAYOUTS,
                         help="folder: any videos, recursively, split by video; hdtf: NAME_NN.mp4, split by NAME; "
                         "mead: SPEAKER/video/VIEW/EMOTION/LEVEL/NNN.mp4 with SPEAKER/audio/EMOTION/LEVEL/NNN.m4a, "
                         "split by speaker")
    prepare.add_argument("--views", help="mead: camera views, comma-separated (front, down, top, left_30, left_60, "
                         "right_30, right_60) or all; default front")
    prepare.add_argument("--out", type=Path, required=True, help="the dataset directory to write")
    prepare.add_argument("--size", type=positive_int, default=256, help="crop side in pixels")
    prepare.add_argument("--workers", type=positive_int, default=1, help="files prepared in parallel")
    prepare.add_argument("--force", action="store_true", help="overwrite a complete dataset in --out")
    prepare.add_argument("--max-seconds", type=_positive_float, default=20.0,
                         help="longest clip in seconds: a longer video is split into clips (at shot cuts where it "
                         "has any); default 20")
    prepare.add_argument("--first-seconds", type=_positive_float, help="use only the first N seconds of each video")
    prepare.add_argument("--test-fraction", type=float, default=0.2, help="share of identities (or clips) in test")
    prepare.add_argument("--val-fraction", type=float, default=0.1,
                         help="share of identities (or clips) in val, drawn after test (0: no val split)")
    prepare.add_argument("--seed", type=int, default=0, help="seed of the train/val/test split")
    prepare.add_argument("--no-progress", action="store_true", help="no progress bar")
    sheet = data_commands.add_parser("sheet", help="a contact-sheet PNG of a dataset")
    sheet.add_argument("dataset", nargs="?", default="synth", help="'synth' (quick preset data) or a directory")
    sheet.add_argument("--out", type=Path, default=Path("contact_sheet.png"))
    sheet.add_argument("--frames", type=positive_int, default=6)


def _prepare(args: argparse.Namespace) -> int:
    import logging

    from tqdm import tqdm

    from bench.data.prepare import QA_FILE, prepare_dataset

    logging.getLogger("bench.data.prepare").setLevel(logging.ERROR)  # skips are printed below, once each

    def report(row: dict[str, Any]) -> None:
        if row["status"] == "skipped":
            tqdm.write(f"skipped {row['file']}: {row['reason']}", file=sys.stderr)  # above the progress bar

    result = prepare_dataset(args.out, videos=args.videos, list_file=args.list_file, layout=args.layout,
                             size=args.size, workers=args.workers, force=args.force, max_seconds=args.max_seconds,
                             first_seconds=args.first_seconds, views=args.views, seed=args.seed,
                             test_fraction=args.test_fraction, val_fraction=args.val_fraction,
                             progress=not args.no_progress, on_result=report)
    qa = result.qa
    ok = qa[qa["status"] == "ok"]
    if not ok.empty:
        print(f"{'clip':<40} {'frames':>11} {'fps in':>7} {'face':>5} {'faces':>5} {'yaw range':>13} {'dBFS':>6}  "
              "notes")
        for row in ok.itertuples():
            yaw = f"{row.yaw_min:+.0f}..{row.yaw_max:+.0f}" if row.yaw_min == row.yaw_min else "unknown"
            notes = "; ".join(x for x in (row.trimmed, row.notes) if isinstance(x, str) and x)
            print(f"{row.clip_id[:40]:<40} {row.frames_in:>5}->{row.frames_out:<5} {row.fps_in:>7.2f} "
                  f"{row.face_found:>5.0%} {row.faces:>5} {yaw:>13} {row.audio_dbfs:>6.1f}  {notes}")
    for row in result.dropped.itertuples():
        print(f"dropped part of {row.file} ({row.start_s:.2f}-{row.end_s:.2f} s): {row.reason}")
    skipped = result.skipped
    reused = f", {result.reused} kept from an interrupted run" if result.reused else ""
    counts = result.counts
    files = qa["file"].nunique() if not qa.empty else 0
    print(f"prepared {len(ok)} clips from {files - len(skipped)} of {files} videos ({counts['train']} train, "
          f"{counts['val']} val, {counts['test']} test clips{reused}); {len(skipped)} skipped; "
          f"QA table: {result.root / QA_FILE}")
    if ok.empty:
        print(f"no clip could be prepared: {result.root} is not a dataset", file=sys.stderr)
    else:
        print(f"dataset: {result.root}")
    return 1 if len(skipped) else 0


def _conditions(text: str) -> tuple[str, ...]:
    from bench.data.synth.dynamics import CONDITIONS

    names = CONDITIONS if text == "all" else tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in CONDITIONS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown condition {unknown[0]!r} (known: {', '.join(CONDITIONS)}, all)")
    return names


def run(args: argparse.Namespace) -> int:
    from bench.data.clips import open_dataset
    from bench.data.load import load_data

    if args.data_command == "prepare":
        return _prepare(args)
    if args.data_command == "synth":
        config = preset_config(args.preset, seed=args.seed)
        try:
            settings = config.data.synth.still() if args.still else config.data.synth
            motion = {name: value for name, value in (("head_motion_deg", args.head_motion),
                                                      ("camera_motion", args.camera_motion)) if value is not None}
            settings = replace(settings, conditions=args.conditions, **motion)
        except ValueError as error:
            print(f"bench data synth: {error}", file=sys.stderr)
            return 2
        config = replace(config, data=replace(config.data, synth=settings))
        if args.out:
            from bench.data.synth import generate_dataset
            from bench.harness.rundir import prepare_run_dir

            dataset = generate_dataset(config.data.synth, prepare_run_dir(args.out), workers=args.workers)
        else:
            dataset = load_data(config)
        counts = {s: len(dataset.split(s)) for s in ("train", "test")}
        print(f"dataset: {dataset.root} ({counts['train']} train clips, {counts['test']} test clips)")
        return 0
    from bench.report.sheet import contact_sheet

    dataset = load_data(preset_config("quick")) if args.dataset == "synth" else open_dataset(args.dataset)
    path = contact_sheet(dataset, args.out, frames_per_clip=args.frames)
    print(f"contact sheet: {path}")
    return 0

"""`bench data synth` (make or find the synthetic heads) and `bench data sheet` (a dataset's contact sheet)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.cli.common import positive_int
from bench.config import PRESETS, preset_config


def add_parser(commands: Any) -> None:
    data = commands.add_parser("data", help="datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    synth = data_commands.add_parser("synth", help="generate (or find cached) synthetic talking heads")
    synth.add_argument("--preset", default="quick", choices=PRESETS, help="the preset whose data to make")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--out", type=Path, help="write here instead of the cache")
    synth.add_argument("--workers", type=positive_int, default=2)
    sheet = data_commands.add_parser("sheet", help="a contact-sheet PNG of a dataset")
    sheet.add_argument("dataset", nargs="?", default="synth", help="'synth' (quick preset data) or a directory")
    sheet.add_argument("--out", type=Path, default=Path("contact_sheet.png"))
    sheet.add_argument("--frames", type=positive_int, default=6)


def run(args: argparse.Namespace) -> int:
    from bench.data.clips import open_dataset
    from bench.data.load import load_data

    if args.data_command == "synth":
        config = preset_config(args.preset, seed=args.seed)
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

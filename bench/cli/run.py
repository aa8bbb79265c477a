"""`bench run`: train (or load) a model, evaluate it, write a run directory and its report (under torchrun the
ranks share the clips: `torchrun --nproc_per_node K -m bench.cli run ...`)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.cli.common import add_eval_arguments, add_model_arguments, config_from_args, yaw_edges
from bench.cli.output import print_report_status, report_renderer, results_table


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("run", help="train (or load) a model, evaluate it, write a run directory and report")
    add_model_arguments(parser)
    parser.add_argument("--checkpoint", type=Path, help="evaluate this checkpoint instead of training")
    parser.add_argument("--out", type=Path, help="run directory (default runs/MODEL-PRESET-TIME)")
    parser.add_argument("--yaw-bins", type=yaw_edges, metavar="LOW,HIGH",
                        help="|yaw| edges of the frontal / moderate / extreme bins (default 15,30)")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")
    add_eval_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from bench.harness.shard import quiet_unless_main

    return quiet_unless_main(lambda: _run(args))  # under torchrun, rank 0 alone speaks


def _run(args: argparse.Namespace) -> int:
    from bench.harness.run import run as run_model

    config = config_from_args(args)
    outcome = run_model(config, out_dir=args.out, checkpoint=args.checkpoint, progress=not args.no_progress,
                        report=report_renderer(args))
    if outcome is None:  # a rank other than 0 under torchrun: it scored its clips, rank 0 wrote the run
        return 0
    print(f"\n{args.model} ({config.net.uncertainty}) on {args.data} ({args.preset} preset), test split:")
    print(results_table(outcome.summary))
    for note in outcome.summary.get("notes", {}).values():
        print(f"note: {note}")
    if outcome.floor:
        ours = outcome.summary["metrics"]["psnr"]["value"]
        floor = outcome.floor["metrics"]["psnr"]["value"]
        print(f"\nPSNR {args.model}: {ours:.2f} dB   copyref (floor): {floor:.2f} dB")
    print(f"\nrun directory: {outcome.run_dir}")
    print_report_status(outcome.run_dir)
    return 0

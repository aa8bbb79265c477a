"""`bench score`: score any model's output videos against ground truth; write a run directory and report (under
torchrun the ranks share the clips: `torchrun --nproc_per_node K -m bench.cli score ...`)."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from bench.cli.common import add_eval_arguments
from bench.cli.output import print_report_status, report_renderer, results_table
from bench.metrics.specs import FRAME_METRICS


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "score", help="score any model's output videos against ground truth; write a run directory and report",
        description="Score generated videos (or frame directories) against ground truth with every metric "
                    "`bench run` reports. Two directories of videos are paired by file stem.")
    parser.add_argument("--pred", type=Path, required=True, metavar="VIDEO|DIR",
                        help="generated video, frame directory, or directory of videos")
    parser.add_argument("--gt", type=Path, required=True, metavar="VIDEO|DIR", help="ground truth, same form as --pred")
    parser.add_argument("--uncertainty", type=Path, metavar="NPY|DIR", help="per-pixel scale u: T x H x W .npy or "
                        "a directory of H x W .npy (batch: <stem>.npy or <stem>/ per video)")
    parser.add_argument("--audio", type=Path, metavar="WAV", help="driving audio (.wav or a video with sound; "
                        "batch: a directory of <stem>.*); checked and recorded in the manifest")
    parser.add_argument("--sync-expert", type=Path, metavar="CKPT",
                        help="a `bench train --model syncnet` checkpoint: adds lse_c_local / lse_d_local")
    parser.add_argument("--metric", metavar="NAME",
                        help=f"print this metric per frame, one line each ({', '.join(FRAME_METRICS)})")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="run directory (default runs/score-STEM-TIME, with -2, -3 ... when taken)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the unfinished run in --out (same inputs and settings): score only the "
                             "clips it lacks")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="bootstrap seed")
    parser.add_argument("--no-networks", action="store_true", help="skip LPIPS, FID and LMD (no pretrained weights)")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_eval_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from bench.harness.shard import env_rank, quiet_unless_main

    if args.metric and env_rank() > 0:  # under torchrun, rank 0 alone prints the per-frame values
        return 0
    return quiet_unless_main(lambda: _run(args))  # under torchrun, rank 0 alone speaks


def _run(args: argparse.Namespace) -> int:
    from bench.config import EvalConfig
    from bench.harness.external import ScoreError, score, score_metric
    from bench.harness.rundir import read_summary

    if args.metric:
        extra = [flag for flag, value in (("--uncertainty", args.uncertainty), ("--audio", args.audio),
                                          ("--out", args.out), ("--sync-expert", args.sync_expert),
                                          ("--resume", args.resume or None))
                 if value is not None]
        if extra:
            raise ScoreError(f"--metric prints per-frame values only; drop {', '.join(extra)}")
        for value in score_metric(args.metric, args.pred, args.gt):
            print(repr(value))
        return 0
    config = EvalConfig(networks=(), official_sync=False) if args.no_networks else EvalConfig()
    if args.fid_every:
        config = dataclasses.replace(config, fid_every=args.fid_every)
    run_dir = score(args.pred, args.gt, args.out, args.uncertainty, args.audio, config=config, seed=args.seed,
                    report=report_renderer(args), progress=not args.no_progress, sync_expert=args.sync_expert,
                    resume=args.resume)
    if run_dir is None:  # a rank other than 0 under torchrun: it scored its clips, rank 0 wrote the run
        return 0
    summary = read_summary(run_dir)
    pose = "unknown" if args.no_networks else "estimated on the ground truth"  # with LMD's face mesh
    print(f"\n{args.pred} scored against {args.gt} (region: whole frame; pose: {pose}):")
    print(results_table(summary))
    print(f"\nrun directory: {run_dir}")
    print_report_status(run_dir)
    return 0


"""`bench score`: score any model's output videos, against ground truth (``--gt``) or without it (reference-free
metrics only); write a run directory and report (under torchrun the ranks share the clips:
`torchrun --nproc_per_node K -m bench.cli score ...`)."""
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
        "score", help="score any model's output videos (with or without ground truth); write a run directory "
                      "and report",
        description="Score generated videos (or frame directories) against ground truth with every metric "
                    "`bench run` reports; two directories of videos are paired by file stem. Without --gt, the "
                    "metrics that need no reference: lip sync, identity (--source), sharpness, face stability, "
                    "FID/FVD against --real.")
    parser.add_argument("--pred", type=Path, required=True, metavar="VIDEO|DIR",
                        help="generated video, frame directory, or directory of videos")
    parser.add_argument("--gt", type=Path, metavar="VIDEO|DIR",
                        help="ground truth, same form as --pred (omit it to score without ground truth)")
    parser.add_argument("--uncertainty", type=Path, metavar="NPY|DIR", help="per-pixel scale u: T x H x W .npy or "
                        "a directory of H x W .npy (batch: <stem>.npy or <stem>/ per video)")
    parser.add_argument("--audio", type=Path, metavar="WAV", help="driving audio (.wav or a video with sound; "
                        "batch: a directory of <stem>.*); checked and recorded in the manifest")
    parser.add_argument("--source", type=Path, metavar="IMAGE|VIDEO|DIR",
                        help="identity source for csim (one image or video for every clip, or batch: a directory "
                             "of <stem>.*); with --gt it replaces the ground truth's first frame")
    parser.add_argument("--real", type=Path, metavar="DIR",
                        help="without --gt: a folder of real videos for the real side of FID / FVD (features "
                             "cached by content)")
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
    from bench.harness.external import ScoreError, score, score_metric
    from bench.harness.rundir import read_summary

    if args.gt is None:
        return _run_noref(args)
    if args.real is not None:
        raise ScoreError("--real is for scoring without --gt: with ground truth, FID and FVD compare with it")
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
    config = _config(args)
    run_dir = score(args.pred, args.gt, args.out, args.uncertainty, args.audio, config=config, seed=args.seed,
                    report=report_renderer(args), progress=not args.no_progress, sync_expert=args.sync_expert,
                    resume=args.resume, source=args.source)
    if run_dir is None:  # a rank other than 0 under torchrun: it scored its clips, rank 0 wrote the run
        return 0
    summary = read_summary(run_dir)
    pose = "unknown" if args.no_networks else "estimated on the ground truth"  # with LMD's face mesh
    print(f"\n{args.pred} scored against {args.gt} (region: whole frame; pose: {pose}):")
    print(results_table(summary))
    print(f"\nrun directory: {run_dir}")
    print_report_status(run_dir)
    return 0


def _config(args: argparse.Namespace) -> Any:
    from bench.config import EvalConfig

    config = EvalConfig(networks=(), official_sync=False) if args.no_networks else EvalConfig()
    return dataclasses.replace(config, fid_every=args.fid_every) if args.fid_every else config


def _run_noref(args: argparse.Namespace) -> int:
    """`bench score --pred ...` without --gt: reference-free metrics only."""
    from bench.harness.external import ScoreError
    from bench.harness.external_noref import NOREF_FRAME_METRICS, score_metric_noref, score_noref
    from bench.harness.rundir import read_summary

    if args.uncertainty is not None:
        raise ScoreError(f"{args.uncertainty}: --uncertainty needs --gt (calibration compares the map with the "
                         "error against the ground truth)")
    if args.metric:
        if args.metric not in NOREF_FRAME_METRICS:
            raise ScoreError(f"--metric {args.metric} needs --gt; without ground truth only "
                             f"{', '.join(NOREF_FRAME_METRICS)} are per-frame metrics")
        extra = [flag for flag, value in (("--audio", args.audio), ("--out", args.out), ("--real", args.real),
                                          ("--sync-expert", args.sync_expert), ("--resume", args.resume or None))
                 if value is not None]
        if extra:
            raise ScoreError(f"--metric prints per-frame values only; drop {', '.join(extra)}")
        for value in score_metric_noref(args.metric, args.pred, args.source, _config(args)):
            print(repr(value))
        return 0
    run_dir = score_noref(args.pred, args.out, args.audio, args.source, args.real, config=_config(args),
                          seed=args.seed, report=report_renderer(args), progress=not args.no_progress,
                          sync_expert=args.sync_expert, resume=args.resume)
    if run_dir is None:  # a rank other than 0 under torchrun
        return 0
    summary = read_summary(run_dir)
    pose = "unknown" if args.no_networks else "estimated on the generated frames"
    print(f"\n{args.pred} scored without ground truth (pose: {pose}):")
    print(results_table(summary))
    print(f"\nrun directory: {run_dir}")
    print_report_status(run_dir)
    return 0

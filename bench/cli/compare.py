"""`bench compare RUN_A RUN_B`: paired per-metric differences between two run directories."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.cli.common import positive_int


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("compare", help="paired per-metric differences between two run directories")
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--resamples", type=positive_int, default=2000, help="bootstrap resamples over shared clips")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--allow-different-data", action="store_true",
                        help="compare runs whose manifests record different data hashes")


def run(args: argparse.Namespace) -> int:
    from bench.harness.compare import compare_runs, format_comparison

    table = compare_runs(args.run_a, args.run_b, resamples=args.resamples, seed=args.seed,
                         allow_different_data=args.allow_different_data)
    print(format_comparison(table))
    return 0

"""`bench compare RUN_DIR RUN_DIR...`: paired per-metric differences against a baseline run; `--report`
renders them as an HTML comparison report into the reports folder."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.cli.common import positive_int


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "compare", help="paired per-metric differences of run directories against a baseline run (--report: HTML)")
    parser.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR", help="two or more run directories")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="the run every other run is compared against (default: the first)")
    parser.add_argument("--report", action="store_true",
                        help="render an HTML comparison report into the reports folder and update its index.html")
    parser.add_argument("--out", type=Path, default=None, help="the report's HTML file (implies --report)")
    parser.add_argument("--reports", type=Path, default=None,
                        help="the reports folder (default: reports/ in the current directory; implies --report)")
    parser.add_argument("--resamples", type=positive_int, default=2000, help="bootstrap resamples over shared clips")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--allow-different-data", action="store_true",
                        help="compare runs whose manifests record different data hashes")


def run(args: argparse.Namespace) -> int:
    from bench.harness.compare import compare, format_comparisons

    result = compare(args.runs, baseline=args.baseline, resamples=args.resamples, seed=args.seed,
                     allow_different_data=args.allow_different_data)
    print(format_comparisons(result))
    if args.report or args.out is not None or args.reports is not None:
        from bench.report.index import compare_meta, publish

        parameters = {"run_dirs": [str(r.path.resolve()) for r in result.runs],
                      "baseline": str(result.baseline.path.resolve()), "resamples": args.resamples,
                      "seed": args.seed, "allow_different_data": args.allow_different_data}
        out = publish("compare", parameters, compare_meta(result.runs, result.baseline),
                      reports_dir=args.reports, out=args.out)
        print(f"report: {out}")
    return 0

"""`bench experiment NAME`: run an experiment's grid of `bench run`s over seeds and test its claims."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.cli.common import positive_int
from bench.config import PRESETS


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("experiment", help="run a declared experiment (a grid of runs over seeds) and "
                                                    "test its claims with paired statistics")
    parser.add_argument("name", nargs="?", help="the experiment (see --list)")
    parser.add_argument("--list", action="store_true", help="list the experiments")
    parser.add_argument("--preset", default="quick", choices=PRESETS)
    parser.add_argument("--data", default="synth", help="'synth' or a dataset directory")
    parser.add_argument("--seeds", type=positive_int, default=3, help="seeds per run (at least 2; default 3)")
    parser.add_argument("--out", type=Path, help="experiment directory (default experiments/NAME-PRESET); "
                                                 "rerun the same command to continue a killed experiment")
    parser.add_argument("--jobs", type=positive_int, default=1,
                        help="runs in parallel processes (one GPU each when GPUs are present)")
    parser.add_argument("--no-report", dest="report", action="store_false",
                        help="skip the comparison report (claims first, then the first seed's runs side by side, or "
                             "every seed's run for an experiment of one run), rendered by default into the reports "
                             "folder and listed in its index.html")
    parser.add_argument("--report", action="store_true", default=True, help=argparse.SUPPRESS)  # the default; old scripts pass it
    parser.add_argument("--reports", type=Path, metavar="DIR", help="the reports folder to list it in (default reports/)")


def run(args: argparse.Namespace) -> int:
    from bench.harness.experiment import ExperimentError, list_experiments, run_experiment

    if args.list or not args.name:
        if not args.list:
            raise ExperimentError("name an experiment, or pass --list")
        for name, description in list_experiments().items():
            print(f"{name:10s} {description}")
        return 0
    result = run_experiment(args.name, preset=args.preset, data=args.data, seeds=args.seeds, out=args.out,
                            jobs=args.jobs)
    width = max(len(c["claim"]) for c in result["claims"])
    print(f"\n{args.name} ({args.preset} preset, {args.seeds} seeds): claims, {result['correction']}")
    for claim in result["claims"]:
        print(f"  {claim['claim']:{width}s}  {claim['verdict']}")
    print("\nper metric (effect > 0 means the claim holds):")
    for test in result["tests"]:
        ci = "" if not test["ci95"] else f" [{test['ci95'][0]:+.4g}, {test['ci95'][1]:+.4g}]"
        effect = "n/a" if test["effect"] is None else f"{test['effect']:+.4g}"
        print(f"  {test['metric']:14s} {effect}{ci}  {test['verdict']}  ({test['claim']})")
    out = Path(result["runs"][0]["run_dir"]).parents[1]
    print(f"\nexperiment directory: {out} (experiment.json, claims.md, runs/)")
    if args.report:
        print(f"report: {_report(result, out, args.reports)}")
    return 0


def _report(result: dict, out: Path, reports: Path | None) -> Path:
    """The compare notebook over the first seed's runs with the claims on top, published to the reports folder
    (listed in its index.html) like a `bench compare --report`."""
    from bench.harness.compare import compare
    from bench.report.index import compare_meta, publish

    first_seed = min(r["seed"] for r in result["runs"])
    first = [Path(r["run_dir"]) for r in result["runs"] if r["seed"] == first_seed]
    if len(first) < 2:  # an experiment of one run (dynamics): its seeds side by side, the first as the baseline
        first = [Path(r["run_dir"]) for r in sorted(result["runs"], key=lambda r: r["seed"])]
    comparison = compare(first, resamples=500)
    meta = {**compare_meta(comparison.runs, comparison.baseline), "kind": "experiment",
            "title": f"{result['name']} experiment ({result['preset']}, {result['seeds']} seeds)"}
    parameters = {"run_dirs": [str(p.resolve()) for p in first], "baseline": str(first[0].resolve()),
                  "resamples": 500, "experiment": str((out / "experiment.json").resolve())}
    return publish("compare", parameters, meta, reports_dir=reports)

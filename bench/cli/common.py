"""What several subcommands share: argument types, the run/train model options, and result printing.

Imports only the standard library and torch-free bench modules: `bench --help` builds every parser.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.api import UNCERTAINTY_MODES
from bench.config import POSE_BINS, PRESETS, RunConfig, preset_config
from bench.metrics import specs


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (0 or a negative count would be silently ignored or misread)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def yaw_edges(text: str) -> tuple[float, float]:
    from bench.config import pose_bins

    try:
        low, high = (float(part) for part in text.split(","))
        pose_bins((low, high))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected two increasing degrees in (0, 90) like 15,30 ({error})") from None
    return low, high


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """What `run` and `train` share: which model, preset, data, seed and uncertainty mode."""
    parser.add_argument("--model", required=True, help="model name (see `bench ls`)")
    parser.add_argument("--preset", default="quick", choices=PRESETS)
    parser.add_argument("--data", default="synth", help="'synth' (embedded generator) or a dataset directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--uncertainty", choices=UNCERTAINTY_MODES, help="uncertainty training mode (default: the preset's)")
    parser.add_argument("--gan-weight", type=float, help="weight of the LSGAN term (default: the preset's)")
    parser.add_argument("--sync-weight", type=float,
                        help="weight of the sync expert's term (default: the preset's; bench run trains the expert)")
    parser.add_argument("--sync-expert", type=Path, help="a syncnet checkpoint for the sync loss")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The preset's config with the command line's overrides (shared by `run` and `train`)."""
    from bench.models import model_class

    model_class(args.model)  # fail fast on a typo, before any data work
    config = preset_config(args.preset, model=args.model, seed=args.seed)
    config = replace(config, data=replace(config.data, source=args.data))
    if args.uncertainty:
        config = replace(config, net=replace(config.net, uncertainty=args.uncertainty))
    for flag in ("gan_weight", "sync_weight"):
        if getattr(args, flag, None) is not None:
            config = replace(config, net=replace(config.net, **{flag: getattr(args, flag)}))
    if getattr(args, "sync_expert", None):
        if not args.sync_expert.is_file():
            from bench.harness.run import RunError

            raise RunError(f"{args.sync_expert}: sync expert checkpoint not found")
        config = replace(config, train=replace(config.train, sync_expert=str(args.sync_expert.resolve())))
    if getattr(args, "yaw_bins", None):
        config = replace(config, eval=replace(config.eval, yaw_edges=args.yaw_bins))
    if getattr(args, "steps", None):
        config = replace(config, train=replace(config.train, steps=args.steps))
    if getattr(args, "save_every", None):
        config = replace(config, train=replace(config.train, save_every=args.save_every))
    return config


def _fmt(entry: dict[str, Any] | None, digits: int = 3) -> str:
    if not entry or entry.get("value") is None or not math.isfinite(entry["value"]):
        return "n/a"
    text = f"{entry['value']:.{digits}f}"
    if entry.get("ci95"):
        lo, hi = entry["ci95"]
        text += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return text


def _arrow(name: str, entry: dict[str, Any]) -> str:
    """The table's direction (summary.json's only for a metric the table does not know); · for none."""
    higher = specs.higher_is_better(name) if specs.spec(name) else entry.get("higher_is_better")
    return {True: "↑", False: "↓"}.get(higher, "·")


def results_table(summary: dict[str, Any]) -> str:
    """Plain-text table: metric (↑/↓ its better direction, · none), overall (95% CI), per pose bin, copyref floor."""
    bins = [name for name, _, _ in POSE_BINS]
    floor = summary.get("floor", {}).get("metrics", {})
    header = ["metric", "all (95% CI)", *bins] + (["copyref floor"] if floor else [])
    rows = []
    for name, entry in summary["metrics"].items():
        row = [f"{name} {_arrow(name, entry)}", _fmt(entry)]
        row += [_fmt(summary["by_pose"].get(b, {}).get(name)) for b in bins]
        if floor:
            row.append(_fmt({"value": floor.get(name, {}).get("value")}))
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_report_status(run_dir: Path) -> None:
    """After the results table: the report's path, or one warning line on stderr when only the report failed.

    The exit status stays 0 then: the measurements are written and printed; the warning says how to
    render the report again.
    """
    from bench.harness.rundir import report_failure

    warning = report_failure(run_dir)
    if warning:
        print(warning, file=sys.stderr)
    elif (Path(run_dir) / "report.html").is_file():
        print(f"report: {Path(run_dir).resolve() / 'report.html'}")


def report_renderer(args: argparse.Namespace) -> Any:
    """The report step a run hands its directory to: ``render_report``, or None with --no-report."""
    if args.no_report:
        return None
    from bench.report.render import render_report

    return render_report

"""Printing a run's results: the metric table, the report's status, and the report step a run is handed."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from bench.config import POSE_BINS
from bench.metrics import specs


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

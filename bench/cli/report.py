"""`bench report RUN_DIR [--notebook run|calibration] [--out FILE]`: render a run directory's reports."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

NOTEBOOKS = ("run", "calibration")  # bench.report.render.RUN_NOTEBOOKS (kept torch-free here for --help)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("report", help="render a run directory's report again (e.g. after it failed), or "
                                                "its calibration and wild-pose report")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--notebook", choices=NOTEBOOKS, default="run",
                        help="run: the run's report (recorded in its manifest); calibration: calibration by pose "
                             "bin, failure detection, worst frames, recalibration")
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="write the HTML here (default: report.html / calibration.html in the run directory); "
                             "the executed notebook goes beside it")


def run(args: argparse.Namespace) -> int:
    from bench.report.render import render_run_notebook, rerender_report

    if args.notebook == "run" and args.out is None:
        print(f"report: {rerender_report(args.run_dir)}")
    else:
        print(f"report: {render_run_notebook(args.run_dir, args.notebook, args.out)}")
    return 0

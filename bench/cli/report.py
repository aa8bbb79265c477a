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
                        help="write the HTML here (default: the run's report.html; the calibration report goes to "
                             "the reports folder); the executed notebook goes beside it")
    parser.add_argument("--reports", type=Path, metavar="DIR",
                        help="the reports folder the calibration report is listed in (default reports/)")


def run(args: argparse.Namespace) -> int:
    from bench.report.render import check_run_dir, render_run_notebook, rerender_report

    if args.notebook == "run":
        path = rerender_report(args.run_dir) if args.out is None else render_run_notebook(args.run_dir, "run", args.out)
    else:  # published like a comparison: into the reports folder and its index.html (or to --out)
        from bench.report.index import publish, run_meta

        run = check_run_dir(args.run_dir)
        path = publish("calibration", {"run_dir": str(run)}, run_meta(run, "calibration", "calibration and wild pose"),
                       reports_dir=args.reports, out=args.out, cwd=run)
    print(f"report: {path}")
    return 0

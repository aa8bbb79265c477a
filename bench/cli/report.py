"""`bench report RUN_DIR`: render a run directory's HTML report again (e.g. after it failed)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("report", help="render a run directory's HTML report again (e.g. after it failed)")
    parser.add_argument("run_dir", type=Path)


def run(args: argparse.Namespace) -> int:
    from bench.report.render import rerender_report

    print(f"report: {rerender_report(args.run_dir)}")
    return 0

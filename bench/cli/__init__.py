"""The `bench` command line: one module per subcommand, the only code in talkbench that prints.

Each subcommand module has ``add_parser(commands)`` (argument definitions; torch-free, so `bench --help`
and `bench ls` load no model or metric stack) and ``run(args) -> int``. Expected failures (every
``BenchError``) print one line and exit 2; no tracebacks.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from bench.cli import compare, data, experiment, ls, report, run, score, train, weights

# The order `bench --help` lists them in.
COMMANDS = {"run": run, "train": train, "ls": ls, "report": report, "compare": compare, "weights": weights,
            "score": score, "data": data, "experiment": experiment}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="talkbench: talking-face generation benchmark")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS.values():
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from bench.errors import EXPECTED_ERRORS

    try:
        return COMMANDS[args.command].run(args)
    except EXPECTED_ERRORS as error:
        if args.verbose:
            raise
        print(f"bench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `bench score --metric psnr ... | head`: the reader left, nothing to report
        sys.stdout = open(os.devnull, "w")
        return 0


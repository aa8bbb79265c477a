"""`bench ls`: the models, as the registry names them (nothing is imported)."""
from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any) -> None:
    commands.add_parser("ls", help="list the models")


def run(args: argparse.Namespace) -> int:
    from bench.models import MODELS

    for name, target in MODELS.items():
        print(f"{name:10s} {target}")
    return 0

"""The one kind of failure the CLI reports as a line (bad input, missing files or weights), as opposed to bugs.

Every expected error type in talkbench derives from ``BenchError`` (and keeps its older builtin base,
ValueError or RuntimeError, for callers that catch those). This module imports nothing, so any
module may use it and the CLI can catch every expected error without importing the modules that
raise them.
"""
from __future__ import annotations


class BenchError(Exception):
    """An expected failure whose message is one line naming the file and the problem: the CLI exits 2."""


EXPECTED_ERRORS: tuple[type[Exception], ...] = (BenchError,)

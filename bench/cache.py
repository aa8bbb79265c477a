"""Where talkbench keeps what it makes once and reuses: data, checkpoints, metric weights.

The one resolver for ``$TALKBENCH_CACHE`` (default ``~/.cache/talkbench``); ``~`` is expanded and an
empty value counts as unset, so every part of talkbench agrees on the same directory.
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$TALKBENCH_CACHE`` (with ``~`` expanded), else ``~/.cache/talkbench``."""
    base = os.environ.get("TALKBENCH_CACHE", "").strip()
    return Path(base).expanduser() if base else Path.home() / ".cache" / "talkbench"

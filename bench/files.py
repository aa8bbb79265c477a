"""File plumbing every layer shares: the one atomic write, the one hasher, JSON without NaN.

Every file talkbench writes for a user (run directories, checkpoints, clips, weights, reports,
partial results) goes through ``atomic_open``: the bytes go to a temporary file beside the target,
are flushed to disk, and only then renamed over it, so a kill or a full disk at any moment leaves
either the old file or the new one, never a torn one.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

import numpy as np

__all__ = ["atomic_open", "atomic_write", "file_sha256", "jsonable", "locked", "stable_hash", "write_json"]


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it replaces ``path``.

    ``mode`` is "wb" or "w" (UTF-8). On any exception (KeyboardInterrupt included) the temporary file
    is removed and ``path`` is left as it was.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode 'wb' or 'w', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make results unreadable to a group sharing them
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically; returns the path."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w") as handle:
        handle.write(data)
    return Path(path)


def jsonable(value: Any) -> Any:
    """JSON has no NaN or inf: they become null (numpy scalars become Python numbers)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(path: str | Path, payload: Any) -> None:
    """A run-directory JSON file (manifest, summary): two-space indent, keys in the order given, NaN as null."""
    atomic_write(path, json.dumps(jsonable(payload), indent=2, sort_keys=False, allow_nan=False) + "\n")


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stable_hash(payload: Any, length: int = 12) -> str:
    """Cache key of a JSON-able payload: the first ``length`` hex digits of sha256 over its sorted JSON."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def without_legacy(settings: dict[str, Any], added_later: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` without each setting of ``added_later`` that holds its legacy value (the one every earlier
    cached artefact was made with), so a cache key made from them stays what it was before the setting existed."""
    return {name: value for name, value in settings.items()
            if not (name in added_later and value == added_later[name])}


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive advisory lock (flock) on ``path`` (created if missing) for the block: one process
    at a time makes what several would otherwise make twice (e.g. parallel runs needing the same cached
    checkpoint). Without flock (not POSIX) there is no lock; atomic renames still keep every file whole."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

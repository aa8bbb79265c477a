"""Ground-truth work cached by content: what a metric computes from the ground-truth frames alone.

Scoring a second model on the same test set repeats, for the ground truth, exactly the work done for the
first (Inception features for FID, the face mesh for LMD). Each batch's result is stored under
``$TALKBENCH_CACHE/metrics/<kind>/`` keyed by a hash of the batch's bytes (dtype, shape and values as
scored), the network's weights digest and the settings that change the numbers (resize, memory layout,
device type, library versions), so a hit returns what the computation would have returned.

An entry holds its key and a sha256 of its arrays: an entry that cannot be read, or whose key, checksum or
shapes disagree, is ignored (logged) and rebuilt, never trusted. Writes are atomic (``bench.files``).
"""
from __future__ import annotations

import hashlib
import io
import logging
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from bench.cache import cache_root
from bench.files import atomic_open, stable_hash

log = logging.getLogger(__name__)

FORMAT = "talkbench-gt-cache/1"


def default_dir() -> Path:
    """Where ground-truth work lives: ``$TALKBENCH_CACHE/metrics``."""
    return cache_root() / "metrics"


def content_hash(array: torch.Tensor | np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes (a tensor is read on the CPU, as laid out row-major)."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().contiguous().numpy()
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes, bytes); kept on the module after the first call."""
    cached = getattr(module, "_talkbench_weights_digest", None)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(content_hash(tensor).encode())
    value = digest.hexdigest()
    module._talkbench_weights_digest = value  # a plain attribute: not part of the state dict
    return value


def _checksum(arrays: Mapping[str, np.ndarray]) -> str:
    return hashlib.sha256("".join(f"{name}:{content_hash(arrays[name])}" for name in sorted(arrays)).encode()).hexdigest()


def _fits(shape: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    return len(shape) == len(expected) and all(e is None or s == e for s, e in zip(shape, expected))


class GroundTruthCache:
    """Per-batch results of one computation (``kind``) under fixed ``settings`` (JSON-able, weights digest in it).

    ``hits`` / ``misses`` / ``rejected`` count lookups (rejected: an entry was there but not trusted).
    """

    def __init__(self, kind: str, settings: Mapping[str, Any], root: Path | None = None) -> None:
        self.kind = kind
        self.settings = stable_hash(dict(settings), length=64)
        self.root = Path(root) if root is not None else default_dir()
        self.hits = self.misses = self.rejected = 0

    def key(self, frames: torch.Tensor | np.ndarray) -> str:
        return stable_hash({"format": FORMAT, "kind": self.kind, "settings": self.settings,
                            "frames": content_hash(frames)}, length=64)

    def path(self, key: str) -> Path:
        return self.root / self.kind / key[:2] / f"{key}.npz"

    def load(self, key: str, shapes: Mapping[str, tuple[int | None, ...]]) -> dict[str, np.ndarray] | None:
        """The entry's arrays if it exists, is intact and has the expected shapes (None: any size); else None."""
        path = self.path(key)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: np.array(data[name]) for name in data.files}
            meta = {name: str(arrays.pop(name)) for name in ("_key", "_checksum")}
            problem = None
            if meta["_key"] != key:
                problem = "its key differs"
            elif set(arrays) != set(shapes) or not all(_fits(arrays[n].shape, s) for n, s in shapes.items()):
                problem = "its arrays have other names or shapes"
            elif meta["_checksum"] != _checksum(arrays):
                problem = "its checksum does not match"
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            problem = f"it cannot be read ({type(error).__name__})"
        if problem is not None:
            log.warning("ignoring cache entry %s: %s; recomputing", path, problem)
            self.rejected += 1
            self.misses += 1
            return None
        self.hits += 1
        return arrays

    def store(self, key: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Write the entry atomically; a cache that cannot be written only costs the next run the work."""
        arrays = {name: np.ascontiguousarray(value) for name, value in arrays.items()}
        buffer = io.BytesIO()
        np.savez(buffer, _key=np.array(key), _checksum=np.array(_checksum(arrays)), **arrays)
        try:
            with atomic_open(self.path(key), "wb") as handle:
                handle.write(buffer.getvalue())
        except OSError as error:
            log.warning("could not write cache entry %s: %s", self.path(key), error)

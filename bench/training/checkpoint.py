"""Checkpoint files: written atomically, read with ``weights_only=True``, rebuilt into a model from their config.

Kept apart from the training loop so that what only loads checkpoints (the critics' sync expert, the
lip-sync scorer, ``bench run``) does not import the loop, and the loop does not import them back.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.config import RunConfig
from bench.errors import BenchError
from bench.files import atomic_open
from bench.models import build_model


class CheckpointError(BenchError, ValueError):
    pass


# How often to log and save changes no number a run computes: a resumed run may change them. Nor do the
# evaluation's settings and the preset's name change what is trained (the checkpoint cache key leaves them out):
# a run killed mid-training resumes after an upgrade that changed an evaluation default.
_RESUME_FREE = {("train", "log_every"), ("train", "save_every")}
_RESUME_FREE_SECTIONS = {"eval", "preset"}


def check_same_run(saved: dict[str, Any], config: RunConfig, path: Path) -> None:
    """Resume only the run the checkpoint belongs to: another config would silently mix two runs."""
    current = config.to_dict()
    differ = []
    for section, value in current.items():
        if section in _RESUME_FREE_SECTIONS:
            continue
        old = saved.get(section)
        if isinstance(value, dict) and isinstance(old, dict):
            differ += [f"{section}.{key}" for key in sorted(set(value) | set(old))
                       if (section, key) not in _RESUME_FREE and _plain(value.get(key)) != _plain(old.get(key))]
        elif _plain(value) != _plain(old):
            differ.append(section)
    if differ:
        raise CheckpointError(f"{path}: was written by another run configuration ({', '.join(differ)} differ); "
                              "resume with the same settings or choose another --out")


def _plain(value: Any) -> Any:
    """Tuples and lists compare equal (the checkpoint keeps JSON-like data)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> None:
    """Write atomically: a kill mid-write leaves the previous file intact."""
    with atomic_open(path) as handle:
        torch.save(checkpoint, handle)


def load_checkpoint(path: str | Path, map_location: torch.device | str = "cpu") -> tuple[nn.Module, RunConfig, dict]:
    """Rebuild a model from a checkpoint alone (its config says which model and how big)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign files
        raise CheckpointError(f"{path}: not a readable talkbench checkpoint ({type(error).__name__})") from None
    if not isinstance(checkpoint, dict) or "config" not in checkpoint or "model" not in checkpoint:
        raise CheckpointError(f"{path}: not a talkbench checkpoint (no model/config entries)")
    config = RunConfig.from_dict(checkpoint["config"])
    model = build_model(config.model, config.net)
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit model '{config.model}' ({first})") from None
    return model, config, checkpoint

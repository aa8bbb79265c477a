"""One training loop for every trainable model, and checkpoints that load without flags.

A model takes part by defining ``training_loss(batch) -> (loss, logs)``. A checkpoint holds the
model and optimiser state, the step, the sampler's RNG state and the full run config as plain data,
so ``torch.load(..., weights_only=True)`` reads it and nothing else is needed to rebuild the model.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from bench.config import RunConfig
from bench.frames import ClipTensors, TrainSampler
from bench.models import build_model

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    pass


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train(model: nn.Module, clips: list[ClipTensors], config: RunConfig, device: torch.device | str = "cpu",
          progress: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``model`` for ``config.train.steps`` steps; returns the model and the checkpoint dict."""
    torch.manual_seed(config.seed)
    model.to(device).train()
    settings = config.train
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, settings.steps))
    sampler = TrainSampler(clips, config.net.n_refs, seed=config.seed)
    started = time.perf_counter()
    bar = tqdm(range(settings.steps), desc=f"train {config.model}", unit="step", disable=not progress, leave=False)
    logs: dict[str, float] = {}
    for step in bar:
        batch = sampler.sample(settings.batch_size, device)
        loss, logs = model.training_loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        schedule.step()
        if step % settings.log_every == 0 or step == settings.steps - 1:
            bar.set_postfix({key: f"{value:.4f}" for key, value in logs.items()})
            log.debug("step %d %s", step, logs)
    bar.close()
    elapsed = time.perf_counter() - started
    log.info("trained %s for %d steps in %.1f s (%s)", config.model, settings.steps, elapsed,
             ", ".join(f"{k}={v:.4f}" for k, v in logs.items()))
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": schedule.state_dict(),
        "sampler": sampler.state_dict(),
        "step": settings.steps,
        "config": config.to_dict(),
        "final_logs": dict(logs),
        "train_seconds": elapsed,
    }
    return model, checkpoint


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(checkpoint, tmp)
    tmp.replace(path)


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

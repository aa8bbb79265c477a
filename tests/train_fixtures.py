"""Tiny in-memory training data and config shared by the training tests."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench.config import ModelConfig, RunConfig, TrainConfig
from bench.data.frames import ClipTensors


def fake_clips(n_clips: int = 2, frames: int = 12, size: int = 16) -> list[ClipTensors]:
    gen = torch.Generator().manual_seed(123)
    clips = []
    for index in range(n_clips):
        clips.append(ClipTensors(
            clip_id=f"c{index}", identity="id0", stratum="frontal",
            frames=torch.randint(0, 256, (frames, 3, size, size), generator=gen, dtype=torch.uint8),
            mel=torch.randn(frames, 80, 16, generator=gen),
            yaw=np.zeros(frames, np.float32), pitch=np.zeros(frames, np.float32), roll=np.zeros(frames, np.float32),
        ))
    return clips


def tiny_config(steps: int = 6, **train) -> RunConfig:
    base = RunConfig(model="julnet", preset="smoke", net=ModelConfig(image_size=16, n_refs=2, channels=8))
    return replace(base, train=TrainConfig(steps=steps, batch_size=3, lr=1e-3, save_every=1, log_every=1, **train))


def train_sync_expert(out: Path) -> Path:
    """A tiny trained syncnet checkpoint at the fixtures' resolution (16 px), as `bench train` writes it."""
    from bench.models import build_model
    from bench.training.loop import train

    config = replace(tiny_config(steps=2), model="syncnet")
    torch.manual_seed(0)
    train(build_model("syncnet", config.net), fake_clips(), config, progress=False, out_dir=out)
    return out / "final.pt"

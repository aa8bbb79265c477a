"""Run configuration: one dataclass tree, presets, and a stable hash for caching checkpoints."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bench.api import ModelConfig  # the model protocol's config lives in bench.api; re-exported here
from bench.data.synth.dataset import SynthConfig

__all__ = ["DataConfig", "EvalConfig", "ModelConfig", "PRESETS", "POSE_BINS", "RunConfig", "TrainConfig",
           "pose_bin", "pose_bins", "preset_config", "stable_hash"]

PRESETS = ("smoke", "quick", "paper")
POSE_BINS = (("frontal", 0.0, 15.0), ("moderate", 15.0, 30.0), ("extreme", 30.0, 90.0))


@dataclass(frozen=True)
class DataConfig:
    """Where the clips come from: the embedded generator (with its settings) or a dataset directory."""

    source: str = "synth"  # "synth" or a dataset directory in the clip format
    synth: SynthConfig = field(default_factory=SynthConfig)  # used when source == "synth"


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 500
    batch_size: int = 16
    lr: float = 5e-4
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    grad_accum: int = 1  # micro-batches per optimiser step
    log_every: int = 25
    save_every: int = 100  # last.pt is rewritten this often
    compile: bool = False  # torch.compile the training step
    sync_expert: str = ""  # a trained syncnet checkpoint, needed when net.sync_weight > 0 (bench run supplies one)


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = 32
    samples_per_bin: int = 2
    bootstrap: int = 1000
    sparsification_step: float = 0.01
    sparsification_metric: str = "mae"  # or "rmse": the error measured on the pixels kept
    spearman_stride: int = 16  # every 16th generated pixel in raster order: a fixed, stated subsample
    networks: tuple[str, ...] = ("lpips", "fid", "lmd")  # metrics that need provisioned weights or MediaPipe
    fid_every: int = 5  # FID on every 5th frame: Inception at 299 px dominates CPU evaluation time
    yaw_edges: tuple[float, float] = (15.0, 30.0)  # |yaw| bin edges: frontal | moderate | extreme
    sync: str = "local"  # "local": LSE with the project's own SyncNet expert (trained, cached); "none"
    sync_steps: int = 1000  # training steps of that expert
    sync_lr: float = 2e-4  # its learning rate (5e-4 leaves it on the BCE's ln 2 plateau at 1000 steps)
    official_sync: bool = True  # also lse_c / lse_d with the official SyncNet, when its weights are provisioned


@dataclass(frozen=True)
class RunConfig:
    model: str = "julnet"
    preset: str = "quick"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    net: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        parts = {"data": DataConfig, "net": ModelConfig, "train": TrainConfig, "eval": EvalConfig}
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if f.name == "data":
                value = {**value, "synth": SynthConfig(**value.get("synth", {}))}
            if f.name == "eval":  # JSON turns tuples into lists
                value = {k: tuple(v) if k in ("networks", "yaw_edges") else v for k, v in value.items()}
            kwargs[f.name] = parts[f.name](**value) if f.name in parts else value
        return cls(**kwargs)


def preset_config(preset: str, model: str = "julnet", seed: int = 0) -> RunConfig:
    """The settings of a named preset. ``paper`` is declared for GPUs and not run on CPU."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    base = RunConfig(model=model, preset=preset, seed=seed)
    if preset == "smoke":
        return replace(
            base,
            data=DataConfig(synth=SynthConfig(size=64, seconds=0.8, identities=2, train_clips=3,
                                              test_clips_per_stratum=1)),
            net=ModelConfig(image_size=32, n_refs=2, channels=16),
            train=TrainConfig(steps=6, batch_size=4, log_every=2),
            eval=replace(base.eval, bootstrap=100, samples_per_bin=1, networks=("lpips", "lmd"), sync_steps=4),
        )
    if preset == "paper":
        return replace(
            base,
            data=DataConfig(synth=SynthConfig(size=256, seconds=4.0, identities=24, train_clips=600,
                                              test_clips_per_stratum=40)),
            net=ModelConfig(image_size=256, n_refs=5, channels=64, perceptual_weight=10.0, gan_weight=1.0,
                            sync_weight=0.1),
            train=TrainConfig(steps=200_000, batch_size=24, lr=1e-4),
        )
    return base


def stable_hash(payload: Any, length: int = 12) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def pose_bins(yaw_edges: tuple[float, float] = (15.0, 30.0)) -> tuple[tuple[str, float, float], ...]:
    """The three |yaw| bins for configurable edges (the names stay frontal, moderate, extreme)."""
    low, high = yaw_edges
    if not 0.0 < low < high < 90.0:
        raise ValueError(f"yaw bin edges must satisfy 0 < low < high < 90, got {low}, {high}")
    return (("frontal", 0.0, low), ("moderate", low, high), ("extreme", high, 90.0))


def pose_bin(abs_yaw: float, bins: tuple[tuple[str, float, float], ...] = POSE_BINS) -> str:
    """Name of the |yaw| bin a frame falls into (the last bin is closed above); "unknown" for NaN (no pose label)."""
    if abs_yaw != abs_yaw:  # NaN: external videos carry no pose labels yet
        return "unknown"
    for index, (name, low, high) in enumerate(bins):
        if low <= abs_yaw < high or (index == len(bins) - 1 and abs_yaw == high):
            return name
    return "out_of_range"

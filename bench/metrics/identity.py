"""Identity preservation (CSIM): cosine similarity of ArcFace embeddings, generated frame vs source identity.

The network is InsightFace's ArcFace backbone (``arcface_torch`` IResNet: 18/34/50/100/200 layers, 112 x 112
RGB input scaled to [-1, 1], 512-d output after the ``features`` BatchNorm1d), written in the official key
layout so the user's own ``backbone.pth`` (e.g. ms1mv3_arcface_r100) loads by key and shape; the depth is
read off the keys. No registry package ships ArcFace weights (see README), so the file comes from
``bench weights fetch --from-file arcface=PATH``, read with weights_only=True.

Inputs are face crops. ArcFace was trained on 5-point similarity-aligned crops; the crops here are resized
(antialiased bilinear) without that alignment, which lowers absolute similarities a little compared with an
aligned pipeline (see the README on comparability).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BenchError

log = logging.getLogger(__name__)

INPUT_SIZE = 112
EMBEDDING_DIM = 512
DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 200: (6, 26, 60, 6)}


class IdentityWeightsError(BenchError, ValueError):
    """The file is not a usable ArcFace IResNet state dict; the message names the file and what is wrong."""


# ----------------------------------------------------------------------------------------------- network

def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """BN -> conv3x3 -> BN -> PReLU -> conv3x3 (stride) -> BN, plus the (1x1 conv + BN) shortcut."""

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = _conv3x3(cin, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (self.downsample(x) if self.downsample is not None else x)


class IResNet(nn.Module):
    """arcface_torch's IResNet (inference: dropout is the identity); B x 3 x 112 x 112 in [-1, 1] -> B x 512."""

    def __init__(self, depth: int = 100) -> None:
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"IResNet depth must be one of {sorted(DEPTHS)}, got {depth}")
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        cin = 64
        for index, (planes, blocks) in enumerate(zip((64, 128, 256, 512), DEPTHS[depth]), start=1):
            downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride=2, bias=False), nn.BatchNorm2d(planes, eps=1e-5))
            layers = [IBasicBlock(cin, planes, 2, downsample)] + [IBasicBlock(planes, planes) for _ in range(blocks - 1)]
            self.add_module(f"layer{index}", nn.Sequential(*layers))
            cin = planes
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.fc = nn.Linear(512 * 7 * 7, EMBEDDING_DIM)
        self.features = nn.BatchNorm1d(EMBEDDING_DIM, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.features(self.fc(torch.flatten(self.bn2(x), 1)))


# ----------------------------------------------------------------------------------------------- weights

def depth_of(state: Mapping[str, Any]) -> int:
    """The IResNet depth whose blocks per stage match the keys (layerN.M.conv1.weight)."""
    counts = []
    for stage in range(1, 5):
        blocks = {k.split(".")[1] for k in state if k.startswith(f"layer{stage}.") and k.endswith(".conv1.weight")}
        counts.append(len(blocks))
    for depth, layers in DEPTHS.items():
        if tuple(counts) == layers:
            return depth
    raise ValueError(f"blocks per stage {tuple(counts)} match no IResNet depth {sorted(DEPTHS)}")


def normalise_state(state: Any, path: Path | str) -> tuple[int, dict[str, torch.Tensor]]:
    """(depth, complete float32 state dict) of an official IResNet file, or one IdentityWeightsError naming it."""
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise IdentityWeightsError(f"{path}: expected a state dict (name -> tensor), found {type(state).__name__}")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        depth = depth_of(state)
    except ValueError as error:
        raise IdentityWeightsError(f"{path}: not an ArcFace IResNet state dict ({error})") from None
    expected = IResNet(depth).state_dict()
    missing = sorted(k for k in expected if k not in state and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in state if k not in expected)
    wrong = sorted(f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
                   if k in state and state[k].shape != v.shape)
    if missing or unexpected or wrong:
        raise IdentityWeightsError(f"{path}: not the IResNet-{depth} layout (missing {missing[:3]}, unexpected "
                                   f"{unexpected[:3]}, wrong shapes {wrong[:3]})")
    out = {k: (state[k].float() if state[k].is_floating_point() else state[k]).clone() if k in state
           else torch.tensor(0, dtype=torch.long) for k in expected}
    return depth, out


def load_arcface(path: str | Path | None = None, device: str | torch.device = "cpu") -> IResNet:
    """The ArcFace IResNet in eval mode, from ``path`` or the weights cache (``bench weights fetch --from-file
    arcface=PATH``); read with weights_only=True, checked key by key and shape by shape."""
    if path is None:
        from bench.weights import store as weights
        path = weights.require("arcface")
    path = Path(path).expanduser()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise IdentityWeightsError(f"{path}: no such file") from None
    except Exception as error:  # arbitrary bytes fail anywhere in the unpickler (UnpicklingError, struct.error, ...)
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise IdentityWeightsError(f"{path}: cannot be read as a plain state dict with torch.load(weights_only=True) "
                                   f"({first})") from None
    depth, state = normalise_state(state, path)
    model = IResNet(depth)
    model.load_state_dict(state, strict=True)
    log.info("loaded ArcFace IResNet-%d from %s", depth, path)
    return model.to(device).eval().requires_grad_(False)


# ----------------------------------------------------------------------------------------------- metric

Crops = np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor]


def preprocess(crops: Crops) -> torch.Tensor:
    """N x H x W x 3 uint8 RGB face crops (or a list of H x W x 3 crops of any sizes) -> N x 3 x 112 x 112 in
    [-1, 1] ((x / 255 - 0.5) / 0.5, as arcface_torch)."""
    if isinstance(crops, (list, tuple)):  # crops of different sizes: each resized on its own
        return torch.cat([preprocess(crop) for crop in crops]) if crops else \
            torch.zeros(0, 3, INPUT_SIZE, INPUT_SIZE)
    x = torch.as_tensor(np.asarray(crops) if not isinstance(crops, torch.Tensor) else crops)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
        raise ValueError(f"expected N x H x W x 3 uint8 RGB crops, got {x.dtype} {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float() / 255.0
    if tuple(x.shape[2:]) != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)
    return (x - 0.5) / 0.5


@torch.no_grad()
def embed(model: nn.Module, crops: Crops, batch_size: int = 32) -> torch.Tensor:
    """L2-normalised N x 512 float64 embeddings of N face crops."""
    x = preprocess(crops)
    device = next(model.parameters()).device
    out = [model(chunk.to(device)).double().cpu() for chunk in x.split(batch_size)]
    emb = torch.cat(out) if out else torch.zeros(0, EMBEDDING_DIM, dtype=torch.float64)
    return F.normalize(emb, dim=1)


def source_embedding(model: nn.Module, source: Crops) -> torch.Tensor:
    """The identity of one or more source crops: the normalised mean of their embeddings (512,)."""
    return F.normalize(embed(model, source).mean(0), dim=0)


def csim(model: nn.Module, frames: Crops, source: Crops) -> np.ndarray:
    """Per-frame cosine similarity (in [-1, 1], higher keeps identity better) of T face crops with the source
    identity (one crop, or several averaged)."""
    return (embed(model, frames) @ source_embedding(model, source)).numpy()

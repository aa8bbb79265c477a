"""The uncertainty head and the uncertainty-weighted reconstruction loss.

Lun2 (``joint`` mode) adds the histogram KL of ``bench.blocks.histogram``. The head predicts ``s = log u`` per pixel, u being the scale of a Laplace distribution of the
per-pixel error. Lun1 (the paper's uncertainty-weighted L1) is ``mean(|y_hat - y| * exp(-s) + s)``,
whose minimiser over s is ``u = |y_hat - y|``: the map learns to predict the error. The absolute
error is averaged over colour channels first, so one scale serves the three channels of a pixel.
"""
from __future__ import annotations

import math
import torch
from torch import nn

from bench.api import UNCERTAINTY_MODES
from bench.blocks.histogram import histogram_kl

__all__ = ["UNCERTAINTY_MODES", "UncertaintyHead", "reconstruction_loss", "uncertainty_l1"]


class UncertaintyHead(nn.Module):
    """A small conv head on decoder features; plugs into any generator without changing it."""

    def __init__(self, in_channels: int, hidden: int | None = None, init_scale: float = 0.05) -> None:
        super().__init__()
        hidden = hidden or max(8, in_channels // 2)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(hidden, 1, 3, padding=1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.constant_(self.net[-1].bias, math.log(init_scale))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # Clamp keeps exp(-s) finite early in training; u in [~2e-4, ~7] covers [0, 1] images.
        return self.net(features).clamp(-8.5, 2.0)


def uncertainty_l1(pred: torch.Tensor, target: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Lun1: L1 weighted by the predicted inverse scale, plus the log-scale penalty."""
    error = (pred - target).abs().mean(dim=1, keepdim=True)
    return (error * torch.exp(-log_scale) + log_scale).mean()


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, log_scale: torch.Tensor, mode: str,
                        region: torch.Tensor | None = None, lun2_weight: float = 1.0,
                        hist_bins: int = 11) -> tuple[torch.Tensor, dict[str, float]]:
    """The generator's pixel loss for an ``uncertainty`` mode, with values worth logging.

    none: plain L1. lun1: Lun1 only. joint: Lun1 + lun2_weight * Lun2, the histogram KL of
    ``bench.blocks.histogram``, taken over ``region`` (H x W bool: the generated pixels) when given,
    because pixels passed through from the input have zero error and would swamp both histograms.
    """
    l1 = (pred - target).abs().mean()
    if mode == "none":
        return l1, {"l1": l1.item()}
    if mode not in UNCERTAINTY_MODES:
        raise ValueError(f"unknown uncertainty mode {mode!r}; choose one of {', '.join(UNCERTAINTY_MODES)}")
    lun1 = uncertainty_l1(pred, target, log_scale)
    if mode == "lun1":
        return lun1, {"l1": l1.item(), "lun1": lun1.item()}
    error = (pred - target).abs().mean(dim=1).flatten(1)
    scale = torch.exp(log_scale).flatten(1)
    if region is not None:
        keep = region.flatten()
        error, scale = error[:, keep], scale[:, keep]
    lun2 = histogram_kl(error, scale, bins=hist_bins)
    return lun1 + lun2_weight * lun2, {"l1": l1.item(), "lun1": lun1.item(), "lun2": lun2.item()}

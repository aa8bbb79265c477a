"""Floors every generator must beat: copyref (a reference frame unchanged) and pasteref."""
from __future__ import annotations

import math

import torch
from torch import nn

from bench.api import ModelConfig
from bench.blocks.masks import mouth_mask


class CopyRef(nn.Module):
    """No parameters, no training; the uncertainty map is a constant (it knows nothing)."""

    kind = "reference"  # declared capabilities (bench.api): a floor, nothing to train
    trainable = False

    def __init__(self, config: ModelConfig, constant_scale: float = 0.1) -> None:
        super().__init__()
        self.config = config
        self.log_scale = math.log(constant_scale)

    def forward(self, audio: torch.Tensor, masked: torch.Tensor, refs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pred = refs[:, 0]
        return pred, torch.full_like(pred[:, :1], self.log_scale)


class PasteRef(CopyRef):
    """pasteref: the given (unmasked) pixels plus the first reference's pixels in the mask.

    A stronger floor than copyref for inpainting generators, which pass the given pixels through:
    a generator that loses to pasteref does worse than pasting a reference's lower half into the frame.
    """

    def forward(self, audio: torch.Tensor, masked: torch.Tensor, refs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = mouth_mask(*masked.shape[-2:], device=masked.device)
        pred = masked * (1.0 - mask) + refs[:, 0] * mask
        return pred, torch.full_like(pred[:, :1], self.log_scale)

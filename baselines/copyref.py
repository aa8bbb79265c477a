"""copyref: the floor every generator must beat. It returns the first reference frame unchanged."""
from __future__ import annotations

import math

import torch
from torch import nn

from bench.config import ModelConfig


class CopyRef(nn.Module):
    """No parameters, no training; the uncertainty map is a constant (it knows nothing)."""

    trainable = False

    def __init__(self, config: ModelConfig, constant_scale: float = 0.1) -> None:
        super().__init__()
        self.config = config
        self.log_scale = math.log(constant_scale)

    def forward(self, audio: torch.Tensor, masked: torch.Tensor, refs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pred = refs[:, 0]
        return pred, torch.full_like(pred[:, :1], self.log_scale)

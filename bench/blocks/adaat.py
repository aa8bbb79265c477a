"""AdaAT (DINet's adaptive affine transformation), shared by JULNet and the DINet baseline."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class AdaAT(nn.Module):
    """Adaptive affine transformation: a per-channel similarity warp of feature maps.

    Parameters come from a condition vector; the last layer starts at zero so training starts
    from the identity warp. Ranges: scale in (0.5, 1.5), rotation within +-45 degrees,
    translation within +-0.5 of the feature map's half-size.
    """

    def __init__(self, cond_dim: int, channels: int, hidden: int = 128) -> None:
        super().__init__()
        self.channels = channels
        self.mlp = nn.Sequential(nn.Linear(cond_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 4 * channels))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def transforms(self, cond: torch.Tensor, batch: int) -> torch.Tensor:
        """(batch * channels) x 2 x 3 affine matrices from the condition vector."""
        raw = torch.tanh(self.mlp(cond).view(batch * self.channels, 4))
        scale = 1.0 + 0.5 * raw[:, 0]
        angle = (math.pi / 4) * raw[:, 1]
        shift = 0.5 * raw[:, 2:]
        cos, sin = scale * torch.cos(angle), scale * torch.sin(angle)
        return torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)

    @staticmethod
    def warp(features: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = features.shape
        grid = F.affine_grid(theta, [batch * channels, 1, height, width], align_corners=False)
        flat = features.reshape(batch * channels, 1, height, width)
        warped = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False)
        warped = warped.view(batch, channels, height, width)
        # Keep the caller's layout: concatenating a channels_last map with an NCHW one falls back to a
        # slow strided copy (and the next convolution converts again), in the forward and the backward.
        if channels > 1 and not features.is_contiguous() and features.is_contiguous(memory_format=torch.channels_last):
            return warped.contiguous(memory_format=torch.channels_last)
        return warped

    def forward(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.warp(features, self.transforms(cond, features.shape[0]))

"""The full-resolution reference path: a generator's output as a correction over the aligned references.

A reference frame's lower half is already right almost everywhere but the mouth (the ``pasteref`` floor
scores well for that reason), yet a decoder that paints every generated pixel from features at S/4 blurs
it. This head lets any generator keep that detail: from the decoder's last features it predicts, per
reference, a dense flow that warps the reference's pixels onto the target (head motion, jaw), and a
per-pixel softmax over [warped references..., the decoder's own RGB]. The output is that blend, so the
network copies aligned pixels where they are right and paints where they are not (the mouth).

At initialisation the flows are zero and the blend leans on the references (the decoder's RGB starts at
``generated_share`` of the weight), so training starts from an average of pasted references, i.e. near
the floors, and learns the mouth and the alignment from there.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ReferencePixelPath"]


class ReferencePixelPath(nn.Module):
    """``path(features, refs, rgb) -> (blended, weights)`` on B x C x S x S features and B x R x 3 x S x S refs."""

    def __init__(self, in_channels: int, n_refs: int, max_shift: float = 0.25, generated_share: float = 0.1) -> None:
        super().__init__()
        self.n_refs = n_refs
        self.max_shift = max_shift  # flow bound, in normalised coordinates ([-1, 1] spans the image)
        self.flow = nn.Conv2d(in_channels, 2 * n_refs, 3, padding=1)
        self.blend = nn.Conv2d(in_channels, n_refs + 1, 3, padding=1)
        nn.init.zeros_(self.flow.weight)
        nn.init.zeros_(self.flow.bias)
        nn.init.zeros_(self.blend.weight)
        # softmax([0] * R + [b]) gives the decoder's RGB the share p when b = log(p R / (1 - p)).
        with torch.no_grad():
            self.blend.bias.zero_()
            self.blend.bias[-1] = math.log(generated_share * n_refs / (1.0 - generated_share))

    def forward(self, features: torch.Tensor, refs: torch.Tensor,
                rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        warped = self.warp(features, refs)
        weights = torch.softmax(self.blend(features).float(), dim=1)  # B x (R + 1) x S x S
        blended = (weights[:, :self.n_refs, None] * warped).sum(1) + weights[:, self.n_refs:] * rgb
        return blended, weights

    def warp(self, features: torch.Tensor, refs: torch.Tensor) -> torch.Tensor:
        """The references' pixels moved by their predicted flows: B x R x 3 x S x S."""
        batch, n_refs, _, height, width = refs.shape
        if n_refs != self.n_refs:
            raise ValueError(f"the reference path was built for {self.n_refs} references, got {n_refs}")
        flow = self.max_shift * torch.tanh(self.flow(features).float())
        flow = flow.reshape(batch * n_refs, 2, height, width).permute(0, 2, 3, 1)
        grid = _identity_grid(height, width, features.device) + flow
        flat = refs.reshape(batch * n_refs, 3, height, width).contiguous()
        warped = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return warped.view(batch, n_refs, 3, height, width)


def _identity_grid(height: int, width: int, device: torch.device) -> torch.Tensor:
    """1 x H x W x 2 sampling grid of pixel centres (x, y) in [-1, 1], as ``affine_grid`` with align_corners=False."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=device, dtype=torch.float32) * 2 + 1) / width - 1
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)[None]

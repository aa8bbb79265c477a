"""JULNet, first version: AdaAT deformation of reference features driven by audio, plus an uncertainty head.

Data flow (S = image size):
  masked target  -> source encoder -> features at S, S/2, S/4 (skips for the decoder)
  R references   -> reference encoder (stacked on channels, as DINet) -> features at S/4
  mel window     -> audio encoder -> vector
  [pooled source, pooled reference, audio] -> AdaAT: one scale, rotation and translation per
      reference feature channel, applied with a sampling grid (DINet's Adaptive Affine Transformation)
  [source S/4, warped reference] -> residual blocks -> decoder with source skips -> RGB and log-scale;
  the RGB output fills the masked region, the given pixels pass through unchanged (inpainting).
Losses: the reconstruction loss of ``bench.blocks.uncertainty`` (L1, Lun1 or Lun1 + Lun2), plus by config
weight the VGG perceptual loss, the LSGAN term and the sync expert's term (``bench.training.critics``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.api import ModelConfig
from bench.blocks.adaat import AdaAT
from bench.blocks.generator import InpaintingGenerator
from bench.blocks.uncertainty import UncertaintyHead

__all__ = ["AdaAT", "AudioEncoder", "JULNet", "ResBlock", "conv_block"]  # AdaAT: shared, from bench.blocks


def conv_block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
        nn.GroupNorm(max(1, out_channels // 8), out_channels),
        nn.LeakyReLU(0.2),
    )


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_block(channels, channels), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.body(x), 0.2)


class AudioEncoder(nn.Module):
    """80 x 16 mel window -> feature vector."""

    def __init__(self, out_dim: int, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            conv_block(1, width, stride=(2)),  # 40 x 8
            conv_block(width, width * 2, stride=2),  # 20 x 4
            conv_block(width * 2, width * 2, stride=2),  # 10 x 2
            nn.AdaptiveAvgPool2d((5, 1)),
            nn.Flatten(),
            nn.Linear(width * 2 * 5, out_dim),
            nn.LeakyReLU(0.2),
        )

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.net(mel.unsqueeze(1))


class JULNet(InpaintingGenerator):

    channels_last = True  # trains in channels_last on CPU: a step takes ~0.8x the time, gradients as precise

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.source_1 = conv_block(3, c)
        self.source_2 = conv_block(c, 2 * c, stride=2)
        self.source_4 = nn.Sequential(conv_block(2 * c, 2 * c, stride=2), ResBlock(2 * c))
        self.reference_1 = conv_block(3 * config.n_refs, c)
        self.reference_2 = conv_block(c, 2 * c, stride=2)
        self.reference_4 = nn.Sequential(conv_block(2 * c, 2 * c, stride=2), ResBlock(2 * c))
        audio_dim = 4 * c
        self.audio = AudioEncoder(audio_dim)
        self.adaat = AdaAT(2 * c + 2 * c + audio_dim, 2 * c)
        self.fuse = nn.Sequential(conv_block(4 * c, 4 * c), ResBlock(4 * c), ResBlock(4 * c))
        self.up_2 = conv_block(4 * c + 2 * c + 2 * c, 2 * c)
        self.up_1 = conv_block(2 * c + c + c, c)
        self.to_rgb = nn.Conv2d(c, 3, 3, padding=1)
        self.uncertainty = UncertaintyHead(c)
        self.add_reference_path(c)

    def forward(self, audio: torch.Tensor, masked: torch.Tensor, refs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        src1 = self.source_1(masked)
        src2 = self.source_2(src1)
        src4 = self.source_4(src2)
        ref1 = self.reference_1(refs.flatten(1, 2))
        ref2 = self.reference_2(ref1)
        ref4 = self.reference_4(ref2)
        sound = self.audio(audio)
        cond = torch.cat([src4.mean((2, 3)), ref4.mean((2, 3)), sound], dim=1)
        theta = self.adaat.transforms(cond, ref4.shape[0])
        # The same per-channel transforms warp the S/4 and S/2 reference features (grids are
        # resolution-free), so the decoder gets aligned reference detail at two scales.
        x = self.fuse(torch.cat([src4, self.adaat.warp(ref4, theta)], dim=1))
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        x = self.up_2(torch.cat([x, src2, self.adaat.warp(ref2, theta)], dim=1))
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        x = self.up_1(torch.cat([x, src1, ref1], dim=1))
        return self.compose(masked, self.to_rgb(x), x, refs)

"""DINet-style generator (Zhang et al., AAAI 2023: Deformation Inpainting Network), for the talkbench protocol.

Kept from DINet:
  * a source encoder on the masked frame and a reference encoder on the R references stacked on
    channels, each a 7 x 7 conv then two conv + average-pool down blocks, to S/4;
  * an alignment encoder over [source, reference] S/4 features: 3 x 3, two 11 x 11 and two 7 x 7
    conv blocks with down blocks in between (large receptive field to find the motion), globally
    average-pooled and concatenated with the audio feature into the AdaAT condition;
  * AdaAT (adaptive affine transformation: one scale, rotation and translation per feature
    channel) warping the reference features at ONE scale (S/4), between residual blocks;
  * an inpainting decoder of its own: [source S/4, warped reference] -> conv -> upsample+conv blocks
    with a residual block -> 7 x 7 conv -> sigmoid. No skip connections.
  * BatchNorm + ReLU blocks, as DINet.

Different from DINet:
  * audio: DINet uses DeepSpeech character-logit features (29 x 9 frames per video frame); DeepSpeech
    0.1 needs TensorFlow 1.15, which no current Python runs, so this model reads the protocol's
    80 x 16 log-mel window instead, with a 1-D conv encoder over time (mel bins as channels),
    the same shape of encoder DINet puts on its DeepSpeech sequence;
  * DINet works on a mouth-region crop and pastes the result back into the face; here the input is
    the whole frame with the lower half blanked, and the output is composited as JULNet's (the given
    pixels pass through, the network fills the blanked half);
  * widths are half DINet's at the same base (``channels=64`` gives 32/64/128 at S, S/2, S/4 and
    64 in the alignment encoder; DINet has 64/128/256 and 128) so it costs about what JULNet costs;
  * AdaAT is JULNet's module, shared as ``bench.blocks.adaat`` (zero-initialised to the identity warp;
    scale in (0.5, 1.5), rotation within +-45 degrees) rather than DINet's wider ranges (scale in (0, 2), any rotation);
  * the plug-in ``UncertaintyHead`` on the last decoder features; the LSGAN, VGG perceptual and sync
    losses are the shared ones (``bench.training.critics``, ``bench.blocks.perceptual``), set by config weights.

How it differs from ``julnet`` in this repository (the point of having it): JULNet conditions AdaAT on
pooled encoder features directly, warps reference features at two scales (S/4 and S/2) with the same
transforms, and feeds its decoder source skips at S/2 and S plus unwarped full-resolution reference
features; DINet conditions AdaAT on a dedicated large-kernel alignment encoder, warps once at S/4,
and decodes from S/4 alone, so everything the output shows passes through the warped S/4 features.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.api import ModelConfig
from bench.blocks.adaat import AdaAT
from bench.blocks.generator import InpaintingGenerator
from bench.blocks.uncertainty import UncertaintyHead


def same_block(in_channels: int, out_channels: int, kernel: int = 3) -> nn.Sequential:
    """Size-preserving conv -> BatchNorm -> ReLU (DINet's SameBlock2d)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU())


def down_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Conv -> BatchNorm -> ReLU -> 2 x 2 average pool (DINet's DownBlock2d); odd sizes round up."""
    return nn.Sequential(same_block(in_channels, out_channels), nn.AvgPool2d(2, ceil_mode=True))


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(same_block(channels, channels), nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


class UpBlock(nn.Module):
    """Upsample to a given size, then conv -> BatchNorm -> ReLU (DINet's UpBlock2d)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = same_block(in_channels, out_channels)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


def alignment_encoder(in_channels: int, width: int, size: int) -> nn.Sequential:
    """DINet's transformation encoder, its depth set by the S/4 size: down blocks until at most 2 x 2."""
    layers: list[nn.Module] = [same_block(in_channels, width)]
    stage = 0
    while size > 2:
        kernels = {0: (11, 11), 1: (7, 7)}.get(stage, (3,))
        layers += [same_block(width, width, k) for k in kernels]
        layers.append(down_block(width, width))
        size = (size + 1) // 2
        stage += 1
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


class MelEncoder1d(nn.Module):
    """80 x 16 mel window -> vector: 1-D convs over time with the mel bins as channels."""

    def __init__(self, out_dim: int, width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = 80
        for stride in (1, 2, 2, 2):  # 16 -> 16, 8, 4, 2 time steps
            layers += [nn.Conv1d(previous, width, 3, stride=stride, padding=1, bias=False),
                       nn.BatchNorm1d(width), nn.ReLU()]
            previous = width
        self.convs = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(width, out_dim), nn.ReLU())

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(mel).mean(dim=2))


class DINet(InpaintingGenerator):
    """``model(audio, masked, refs) -> (pred, log_scale)``; see the module docstring."""

    channels_last = True  # trains in channels_last on CPU: a step takes ~0.8x the time, gradients as precise

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        w1, w2, w4 = max(4, c // 2), c, 2 * c
        align = c
        quarter = (((config.image_size + 1) // 2) + 1) // 2
        self.source = nn.ModuleList([same_block(3, w1, 7), down_block(w1, w2), down_block(w2, w4)])
        self.reference = nn.Sequential(same_block(3 * config.n_refs, w1, 7), down_block(w1, w2), down_block(w2, w4))
        self.align = alignment_encoder(2 * w4, align, quarter)
        self.audio = MelEncoder1d(align, width=align)
        self.appearance_in = nn.Sequential(ResBlock(w4), ResBlock(w4))
        self.adaat = AdaAT(2 * align, w4)
        self.appearance_out = nn.Sequential(ResBlock(w4), ResBlock(w4))
        self.merge = same_block(2 * w4, w2)
        self.up_2 = UpBlock(w2, w2)
        self.res_2 = ResBlock(w2)
        self.up_1 = UpBlock(w2, w1)
        self.to_rgb = nn.Conv2d(w1, 3, 7, padding=3)
        self.uncertainty = UncertaintyHead(w1)
        self.add_reference_path(w1)

    def forward(self, audio: torch.Tensor, masked: torch.Tensor, refs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sizes = []
        src = masked
        for block in self.source:
            src = block(src)
            sizes.append(src.shape[-2:])
        ref = self.reference(refs.flatten(1, 2))
        cond = torch.cat([self.align(torch.cat([src, ref], dim=1)), self.audio(audio)], dim=1)
        ref = self.appearance_out(self.adaat(self.appearance_in(ref), cond))
        x = self.merge(torch.cat([src, ref], dim=1))
        x = self.res_2(self.up_2(x, sizes[1]))
        features = self.up_1(x, sizes[0])
        return self.compose(masked, self.to_rgb(features), features, refs)

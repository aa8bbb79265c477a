"""Wav2Lip-style generator (Prajwal et al., ACM MM 2020), rebuilt for the talkbench protocol.

Kept from Wav2Lip:
  * the face input: the masked target (lower half blanked) and one reference frame of the same
    identity stacked on channels (6 channels); Wav2Lip uses a single reference, so only ``refs[:, 0]``
    is used even when the protocol hands over R of them;
  * a face encoder of stride-2 conv blocks with residual conv blocks, down to a 1 x 1 bottleneck
    (the last block's kernel equals the remaining spatial size, as Wav2Lip's 3 x 3 -> 1 x 1 at 96 px);
  * an audio encoder over the 80 x 16 mel window with Wav2Lip's stride pattern
    ((3, 1), 3, (3, 2), then a 3 x 3 valid conv) to a 1 x 1 embedding as wide as the face bottleneck;
  * a U-Net decoder: transposed convs from the concatenated [audio, face] bottleneck back to full
    resolution, concatenating the face-encoder features of every level (skip connections), then
    an output conv block and a sigmoid;
  * conv -> BatchNorm -> ReLU blocks with identity residuals; channel widths doubling per level
    (at ``channels=64`` the widths are Wav2Lip's: 16 at full resolution, capped at 512).

Adapted: the depth follows ``image_size`` (stride-2 levels until the map is at most 4 x 4, so 32,
64, 96 and 256 px all work); one residual block per level instead of Wav2Lip's 1-3 (CPU budget); no
normalisation on the 1 x 1 layers, so a batch of one still trains; the output is composited as
JULNet's (given pixels pass through, the network fills the blanked half) and the plug-in
``UncertaintyHead`` reads the last decoder features.

Wav2Lip's other two losses are the shared ones of ``bench.training.critics``, switched on by config
(``net.gan_weight``, ``net.sync_weight``; both off in the CPU presets): an LSGAN discriminator on the
lower half (Wav2Lip's visual-quality discriminator is a BCE GAN on the lower half; this one is least
squares, as DINet's and JULNet's) and -log P(in sync) from the frozen ``syncnet`` expert on five
consecutive generated frames (Wav2Lip's weights are 0.07 and 0.03).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.api import ModelConfig
from bench.blocks.generator import InpaintingGenerator
from bench.blocks.uncertainty import UncertaintyHead

BOTTLENECK_SIZE = 4  # downsample while the face map is larger than this


class ConvBlock(nn.Module):
    """Conv -> BatchNorm -> ReLU, optionally adding the input back before the ReLU (Wav2Lip's block)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int | tuple[int, int] = 3,
                 stride: int | tuple[int, int] = 1, padding: int = 1, residual: bool = False,
                 norm: bool = True) -> None:
        super().__init__()
        if residual and (in_channels != out_channels or stride != 1):
            raise ValueError("a residual block keeps channels and size")
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=not norm)
        self.norm = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm(self.conv(x))
        return F.relu(out + x if self.residual else out)


class UpBlock(nn.Module):
    """Transposed conv -> BatchNorm -> ReLU that lands exactly on the skip connection's size."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 2,
                 padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x, output_size=list(size))))


def level_sizes(image_size: int, smallest: int = BOTTLENECK_SIZE) -> list[int]:
    """Spatial size of each encoder level: halve (rounding up) until at most ``smallest``."""
    sizes = [image_size]
    while sizes[-1] > smallest:
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


class MelEncoder(nn.Module):
    """80 x 16 mel window -> ``out_channels`` x 1 x 1, with Wav2Lip's audio stride pattern."""

    def __init__(self, out_channels: int, base: int) -> None:
        super().__init__()
        widths = [2 * base, 4 * base, 8 * base, 16 * base]
        strides: list[int | tuple[int, int]] = [1, (3, 1), 3, (3, 2)]  # 80x16 -> 80x16, 27x16, 9x6, 3x3
        layers: list[nn.Module] = []
        previous = 1
        for width, stride in zip(widths, strides):
            layers += [ConvBlock(previous, width, stride=stride), ConvBlock(width, width, residual=True)]
            previous = width
        layers += [ConvBlock(previous, out_channels, padding=0, norm=False),  # 3x3 -> 1x1
                   ConvBlock(out_channels, out_channels, kernel=1, padding=0, norm=False)]
        self.net = nn.Sequential(*layers)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.net(mel.unsqueeze(1))


class Wav2Lip(InpaintingGenerator):
    """``model(audio, masked, refs) -> (pred, log_scale)``; see the module docstring."""


    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        base = max(4, config.channels // 4)
        cap = 32 * base
        self.sizes = level_sizes(config.image_size)
        enc = [min(base * 2 ** i, cap) for i in range(len(self.sizes))]
        dec = [min(2 * w, cap) for w in enc]
        bottleneck = min(2 * enc[-1], cap)
        self.encoder = nn.ModuleList()
        for level, width in enumerate(enc):
            first = (ConvBlock(6, width, kernel=7, padding=3) if level == 0
                     else ConvBlock(enc[level - 1], width, stride=2))
            self.encoder.append(nn.Sequential(first, ConvBlock(width, width, residual=True)))
        self.face_bottleneck = nn.Sequential(
            ConvBlock(enc[-1], bottleneck, kernel=self.sizes[-1], padding=0, norm=False),
            ConvBlock(bottleneck, bottleneck, kernel=1, padding=0, norm=False))
        self.audio = MelEncoder(bottleneck, base)
        # Deepest decoder level: from the 1 x 1 [audio, face] code to the last encoder size.
        self.first_up = UpBlock(2 * bottleneck, dec[-1], kernel=self.sizes[-1], stride=1, padding=0)
        self.ups = nn.ModuleList(UpBlock(dec[i + 1] + enc[i + 1], dec[i]) for i in range(len(enc) - 1))
        self.refine = nn.ModuleList(ConvBlock(d, d, residual=True) for d in dec)
        hidden = 2 * base
        self.output_block = ConvBlock(dec[0] + enc[0], hidden)
        self.to_rgb = nn.Conv2d(hidden, 3, 1)
        self.uncertainty = UncertaintyHead(hidden)
        self.add_reference_path(hidden, n_refs=1)  # Wav2Lip reads one reference frame, its pixel path too

    def forward(self, audio: torch.Tensor, masked: torch.Tensor, refs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([masked, refs[:, 0]], dim=1)
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        code = torch.cat([self.audio(audio), self.face_bottleneck(x)], dim=1)
        x = self.refine[-1](self.first_up(code, skips[-1].shape[-2:]))
        x = torch.cat([x, skips[-1]], dim=1)
        for level in range(len(self.ups) - 1, -1, -1):
            x = self.refine[level](self.ups[level](x, skips[level].shape[-2:]))
            x = torch.cat([x, skips[level]], dim=1)
        features = self.output_block(x)
        return self.compose(masked, self.to_rgb(features), features, refs)

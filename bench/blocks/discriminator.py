"""The LSGAN frame discriminator every generator trains against, and the least-squares losses.

Choices where the papers leave room (JULNet names an LSGAN adversarial loss; DINet uses an LSGAN
frame discriminator; Wav2Lip a visual-quality discriminator on the lower half of the face):

* the discriminator sees the lower half of the frame only: the protocol passes the upper half
  through unchanged, so the generated half is the only part that can differ from a real frame;
* a PatchGAN: 4 x 4 stride-2 convs with LeakyReLU(0.2), widths doubling from ``channels`` (capped
  at 8 x), down to a map of at most 4 pixels on its shorter side, then a 3 x 3 conv to one score
  per patch. No normalisation layers: BatchNorm statistics would differ between the real and the
  fake pass and between DDP ranks;
* least-squares targets 1 (real) and 0 (fake); the discriminator's loss is halved, as in LSGAN.
"""
from __future__ import annotations

import torch
from torch import nn

from bench.api import generated_height, generated_rows

PATCH_MIN_SIDE = 4


def generated_half(frames: torch.Tensor) -> torch.Tensor:
    """... x H x W -> ... x (H - H//2) x W: the rows the protocol blanks and the generator fills."""
    return frames[..., generated_rows(frames.shape[-2]), :]


class FrameDiscriminator(nn.Module):
    """PatchGAN on the generated half of a frame: B x 3 x S x S in [0, 1] -> B x 1 x h x w scores."""

    def __init__(self, image_size: int, channels: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width_in, width, side = 3, channels, generated_height(image_size)
        while True:
            layers += [nn.Conv2d(width_in, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            side //= 2
            width_in, width = width, min(width * 2, 8 * channels)
            if side <= PATCH_MIN_SIDE:
                break
        layers.append(nn.Conv2d(width_in, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(generated_half(frames) * 2.0 - 1.0)


def lsgan_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((real_scores.float() - 1.0).pow(2).mean() + fake_scores.float().pow(2).mean())


def lsgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    return (fake_scores.float() - 1.0).pow(2).mean()

"""The protocol's mask as tensors: the torch side of ``bench.api.generated_rows``."""
from __future__ import annotations

import torch

from bench.api import generated_rows


def mouth_mask(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """1 x 1 x H x W: 1 where the protocol blanks the target (``bench.api.generated_rows``), 0 where it is given."""
    mask = torch.zeros(1, 1, height, width, device=device)
    mask[..., generated_rows(height), :] = 1.0
    return mask


def mask_lower_half(frames: torch.Tensor) -> torch.Tensor:
    """The frames with the generated rows blanked: the ``masked`` input of the protocol."""
    return frames * (1.0 - mouth_mask(*frames.shape[-2:], device=frames.device))

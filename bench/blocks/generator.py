"""The base class every inpainting generator shares (JULNet, Wav2Lip, DINet): composite, plug-in head, loss."""
from __future__ import annotations

import torch
from torch import nn

from bench.api import Critic
from bench.blocks.masks import mouth_mask
from bench.blocks.reference_path import ReferencePixelPath
from bench.blocks.uncertainty import reconstruction_loss

__all__ = ["InpaintingGenerator"]


class InpaintingGenerator(nn.Module):
    """The tail every generator shares: the inpainting composite, the plug-in head and the pixel loss.

    Subclasses set ``self.config`` (a ModelConfig) and ``self.uncertainty`` (an UncertaintyHead on
    their last decoder features), call ``self.add_reference_path(channels)`` with those features' width,
    and end ``forward`` with ``return self.compose(masked, rgb, features, refs)``.
    """

    kind = "generator"  # declared capabilities (bench.api)
    trainable = True
    # A speed hint, not a capability: train in channels_last memory on CPU too (bench.training.loop.memory_format).
    # Set by the models whose gradients it leaves at float rounding (julnet, dinet); Wav2Lip's gradients came
    # out ~1000x further from a float64 reference in channels_last on CPU (worst: its audio encoder's
    # BatchNorm), so it stays NCHW.
    channels_last = False

    def __init__(self) -> None:
        super().__init__()
        # An instance attribute, not a class one: a class-level None would shadow the registered submodule.
        self.reference_path: ReferencePixelPath | None = None
        # set by compose() in training, with config.blend_entropy and config.decoder_weight
        self._blend_entropy: torch.Tensor | None = None
        self._decoder_rgb: torch.Tensor | None = None

    def add_reference_path(self, channels: int, n_refs: int | None = None) -> None:
        """The full-resolution reference path on ``channels``-wide last features, when the config asks for it,
        over the first ``n_refs`` references (default all of them)."""
        if self.config.reference_path:
            self.reference_path = ReferencePixelPath(channels, n_refs or self.config.n_refs)

    def compose(self, masked: torch.Tensor, rgb_logits: torch.Tensor, features: torch.Tensor,
                refs: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        # Inpainting, as DINet: the given (unmasked) pixels pass through, the network fills the mask,
        # with the reference path as a blend of aligned reference pixels and its own RGB.
        mask = mouth_mask(*masked.shape[-2:], device=masked.device)
        fill = torch.sigmoid(rgb_logits)
        # kept for training_loss, which sees only the output: the blend's entropy and the decoder's own RGB
        self._blend_entropy, self._decoder_rgb = None, None
        if self.reference_path is not None and refs is not None:
            if self.training and self.config.decoder_weight:
                self._decoder_rgb = fill
            fill, weights = self.reference_path(features, refs[:, :self.reference_path.n_refs], fill)
            if self.training and self.config.blend_entropy:
                self._blend_entropy = -(weights * torch.log(weights.clamp_min(1e-8))).sum(1)  # B x S x S
        pred = masked * (1.0 - mask) + fill * mask
        log_scale = self.uncertainty(features)
        if self.config.uncertainty == "none":
            log_scale = torch.zeros_like(log_scale)  # no trained head: an uninformative map
        return pred, log_scale

    def training_loss(self, batch: dict[str, torch.Tensor],
                      critics: Critic | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Pixel loss (+ VGG perceptual) (+ the critics' adversarial and sync terms, when given)."""
        pred, log_scale = self(batch["audio"], batch["masked"], batch["refs"])
        region = mouth_mask(*pred.shape[-2:], device=pred.device)[0, 0].bool()
        loss, logs = reconstruction_loss(pred, batch["target"], log_scale, self.config.uncertainty, region=region,
                                         lun2_weight=self.config.lun2_weight, hist_bins=self.config.hist_bins)
        if self._blend_entropy is not None:
            # over the generated pixels outside the target's mouth box (all of them when the batch has no boxes):
            # there the warped references are right and one should be copied; in the mouth, which no reference
            # shows right, the blend may still mix in the decoder's painting (forced sharp everywhere, it never did)
            keep = region.expand_as(self._blend_entropy)
            if "mouth" in batch:
                keep = keep & (batch["mouth"][:, 0] < 0.5)
            blend_entropy = self._blend_entropy[keep].mean()
            loss = loss + self.config.blend_entropy * blend_entropy
            logs["blend_entropy"] = blend_entropy.item()
        if self._decoder_rgb is not None:
            decoder_l1 = (self._decoder_rgb - batch["target"]).abs()[..., region].mean()
            loss = loss + self.config.decoder_weight * decoder_l1
            logs["decoder_l1"] = decoder_l1.item()
        if self.config.mouth_weight and "mouth" in batch:
            mouth = batch["mouth"]
            mouth_l1 = ((pred - batch["target"]).abs() * mouth).sum() / (3.0 * mouth.sum()).clamp_min(1.0)
            loss = loss + self.config.mouth_weight * mouth_l1
            logs["mouth_l1"] = mouth_l1.item()
        if self.config.perceptual_weight:
            perceptual = self._perceptual(pred.device)(pred, batch["target"])
            loss = loss + self.config.perceptual_weight * perceptual
            logs["perceptual"] = perceptual.item()
        if critics is not None:
            extra, extra_logs = critics.generator_terms(pred, batch)
            loss = loss + extra
            logs.update(extra_logs)
        return loss, logs

    def _perceptual(self, device: torch.device) -> nn.Module:
        # Built on first use and kept out of the state dict: it is frozen, provisioned weights.
        if getattr(self, "_vgg", None) is None:
            from bench.blocks.perceptual import VGGPerceptual

            object.__setattr__(self, "_vgg", VGGPerceptual().to(device))
        return self._vgg

"""What judges a generator besides its pixel loss: an LSGAN discriminator and a frozen lip-sync expert.

``Critics`` is built by the training loop from the config (``net.gan_weight``, ``net.sync_weight``,
``train.sync_expert``) and handed to ``model.training_loss(batch, critics)``, which adds
``critics.generator_terms(pred, batch)`` to its loss. The discriminator is trained in step with the
generator: after each generator update the loop calls ``discriminator_step``, which replays the
(real, generated) pairs of that update's micro-batches. It has its own Adam and schedule, is wrapped
in DDP of its own when the generator is (gradients averaged once per step), and its state travels in
the generator's checkpoint so resume stays exact. The sync expert is a trained ``syncnet``
checkpoint, frozen; its term is Wav2Lip's: -log P(in sync) of five consecutive generated frames and
the mel window of the middle one (the batches come from ``WindowSampler``).
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.config import RunConfig
from bench.blocks.discriminator import FrameDiscriminator, lsgan_discriminator_loss, lsgan_generator_loss

PROBABILITY_EPS = 1e-6


class _DiscriminatorLoss(nn.Module):
    """``forward(real, fake) -> loss`` so DDP's hooks see the discriminator's whole step."""

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return lsgan_discriminator_loss(self.discriminator(real), self.discriminator(fake))


def load_sync_expert(path: str | Path, image_size: int, device: torch.device) -> nn.Module:
    """A trained ``syncnet`` checkpoint at the generator's resolution, frozen and in eval mode."""
    from bench.training.checkpoint import CheckpointError, load_checkpoint

    model, config, _ = load_checkpoint(path, device)
    if config.model != "syncnet":
        raise CheckpointError(f"{path}: the sync expert must be a 'syncnet' checkpoint, not '{config.model}'")
    if config.net.image_size != image_size:
        raise CheckpointError(f"{path}: the sync expert was trained at {config.net.image_size} px, "
                              f"the generator trains at {image_size} px")
    model.to(device).eval().requires_grad_(False)
    return model


class Critics:
    """The discriminator (trained here) and the sync expert (frozen) of one generator's training run."""

    def __init__(self, config: RunConfig, device: torch.device, distributed: bool = False) -> None:
        net = config.net
        self.gan_weight, self.sync_weight = net.gan_weight, net.sync_weight
        self.discriminator: nn.Module | None = None
        self.expert: nn.Module | None = None
        self._pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        if self.gan_weight > 0:
            self.discriminator = FrameDiscriminator(net.image_size, net.channels).to(device)
            self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=config.train.lr,
                                              betas=(0.5, 0.999), foreach=True)  # bit-identical, fewer calls
            self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(1, config.train.steps))
            self.runner: nn.Module = _DiscriminatorLoss(self.discriminator)
            if distributed:
                ids = [device.index] if device.type == "cuda" else None
                self.runner = nn.parallel.DistributedDataParallel(self.runner, device_ids=ids)
        if self.sync_weight > 0:
            if not config.train.sync_expert:
                raise ValueError("net.sync_weight > 0 needs a trained sync expert: pass --sync-expert "
                                 "PATH (a `bench train --model syncnet` checkpoint at the same image size)")
            self.expert = load_sync_expert(config.train.sync_expert, net.image_size, device)

    def generator_terms(self, pred: torch.Tensor,
                        batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted adversarial and sync terms of the generator's loss (zero when both are off)."""
        total = pred.new_zeros(())
        logs: dict[str, float] = {}
        if self.discriminator is not None:
            self._pairs.append((batch["target"].detach(), pred.detach()))
            params = list(self.discriminator.parameters())
            for param in params:  # the generator's backward must not touch the discriminator
                param.requires_grad_(False)
            try:
                adversarial = lsgan_generator_loss(self.discriminator(pred))
            finally:
                for param in params:
                    param.requires_grad_(True)
            total = total + self.gan_weight * adversarial
            logs["gan_g"] = adversarial.item()
        if self.expert is not None:
            mel = batch["sync_mel"]
            windows = pred.reshape(mel.shape[0], -1, *pred.shape[1:])
            probability = self.expert.sync_probability(mel, windows).float().clamp(PROBABILITY_EPS, 1.0)
            sync = -torch.log(probability).mean()
            total = total + self.sync_weight * sync
            logs["sync"] = sync.item()
        return total, logs

    def discriminator_step(self, autocast: Any = None, grad_clip: float = 0.0) -> dict[str, float]:
        """One discriminator update over the pairs the last generator update produced."""
        if self.discriminator is None or not self._pairs:
            self._pairs.clear()
            return {}
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for index, (real, fake) in enumerate(self._pairs):
            sync = contextlib.nullcontext()
            if isinstance(self.runner, nn.parallel.DistributedDataParallel) and index < len(self._pairs) - 1:
                sync = self.runner.no_sync()
            with sync, autocast or contextlib.nullcontext():
                loss = self.runner(real, fake) / len(self._pairs)
                loss.backward()
            total += loss.item()
        if grad_clip:
            nn.utils.clip_grad_norm_(self.discriminator.parameters(), grad_clip, foreach=True)
        self.optimizer.step()
        self.schedule.step()
        self._pairs.clear()
        return {"gan_d": total}

    def state_dict(self) -> dict[str, Any]:
        if self.discriminator is None:
            return {}
        return {"discriminator": self.discriminator.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.schedule.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.discriminator is None:
            return
        if not state:
            raise ValueError("the checkpoint has no discriminator state (it was trained with gan_weight = 0)")
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["scheduler"])

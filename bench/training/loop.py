"""One training loop for every trainable model, checkpoints that load without flags, exact resume, DDP.

A model takes part by defining ``training_loss(batch) -> (loss, logs)``; a generator's also takes
the run's ``Critics`` (``bench.training.critics``: the LSGAN discriminator, trained here in step with it, and
the frozen sync expert) when ``net.gan_weight`` or ``net.sync_weight`` is set. A checkpoint holds model,
optimiser and scheduler state, the sampler's and torch's RNG states, the step and the full run
config as plain data, so ``torch.load(..., weights_only=True)`` reads it and nothing else is needed
to rebuild the model or to continue training bit-exactly (on CPU with a fixed seed).

DDP is keyed on torchrun's environment (``WORLD_SIZE``/``RANK``/``LOCAL_RANK``) and is a no-op
without it: each rank draws its own batches (seed + rank), gradients are averaged, only rank 0
writes files. On CUDA the loop uses bf16 autocast; on CUDA every model, on CPU those that ask for it
(``memory_format``), train in channels_last memory; ``compile`` is optional.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from bench.api import capabilities
from bench.training.checkpoint import CheckpointError, check_same_run, load_checkpoint, save_checkpoint  # noqa: F401  (re-exported)
from bench.config import RunConfig
from bench.errors import BenchError
from bench.training.critics import Critics
from bench.training.distributed import DistInfo, init_distributed, pick_device  # noqa: F401  (re-exported)
from bench.data.frames import ClipTensors, TrainSampler, WindowSampler

log = logging.getLogger(__name__)


class TrainError(BenchError, ValueError):
    """A training request that cannot run (one line: what and why)."""


class _LossModule(nn.Module):
    """Routes ``training_loss`` through ``forward`` so DDP's gradient hooks are armed each step."""

    def __init__(self, model: nn.Module, critics: Critics | None = None) -> None:
        super().__init__()
        self.model = model
        object.__setattr__(self, "critics", critics)  # not a submodule: the discriminator has its own DDP

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        if self.critics is None:
            return self.model.training_loss(batch)
        return self.model.training_loss(batch, self.critics)


def _rng_state() -> dict[str, torch.Tensor]:
    return {"torch": torch.get_rng_state()}


def _optimiser(model: nn.Module, config: RunConfig) -> tuple[torch.optim.Optimizer, Any]:
    settings = config.train
    # foreach: one call per step for all parameters instead of ~6 per tensor; bit-identical on CPU
    # (the same kernels per tensor), and what torch picks by default on CUDA anyway
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay,
                                 foreach=True)
    steps = max(1, settings.steps)
    warmup = round(settings.warmup * settings.steps)
    if warmup <= 0:
        return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)

    def factor(step: int) -> float:  # linear warm-up over `warmup` steps times the same cosine decay
        return min(1.0, (step + 1) / warmup) * 0.5 * (1.0 + math.cos(math.pi * min(step, steps) / steps))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def memory_format(model: nn.Module, device: torch.device) -> torch.memory_format:
    """The layout a model trains in: channels_last on CUDA; on CPU where the model asks for it.

    oneDNN's NHWC convolutions beat its NCHW ones on CPU too: a quick-preset training step takes about
    0.8x the time for julnet and dinet (``benchmarks/bench_quick_preset.py``), whose gradients stay as close
    to a float64 reference as in NCHW. Models opt in with a ``channels_last = True`` class attribute (a speed
    hint, not a capability); Wav2Lip does not (its gradients lose precision in NHWC on CPU),
    nor does the sync expert (its small convolutions gain nothing).
    """
    if device.type == "cuda" or getattr(type(model), "channels_last", False):
        return torch.channels_last
    return torch.contiguous_format


def train(model: nn.Module, clips: list[ClipTensors], config: RunConfig, device: torch.device | str = "cpu",
          progress: bool = True, out_dir: str | Path | None = None, resume: bool = False,
          stop_after: int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Train to ``config.train.steps``; returns the model and the final checkpoint dict.

    With ``out_dir``, rank 0 rewrites ``last.pt`` every ``save_every`` steps and writes ``final.pt``
    at the end (and TensorBoard scalars under ``out_dir/tb``). ``resume`` continues from
    ``out_dir/last.pt``. ``stop_after`` ends the run early after that many steps (as a kill would),
    leaving ``last.pt`` for a later resume.
    """
    device = torch.device(device)
    info = init_distributed(device)
    settings = config.train
    torch.manual_seed(config.seed)
    layout = memory_format(model, device)
    model = model.to(device).train().to(memory_format=layout)
    optimizer, schedule = _optimiser(model, config)
    declared = capabilities(model)
    critics = None
    if declared.generator and (config.net.gan_weight > 0 or config.net.sync_weight > 0):
        critics = Critics(config, device, distributed=info.enabled)
    # A model that trains on other batches (SyncNet: in-sync and shifted pairs) names its sampler;
    # the sync expert's loss needs windows of consecutive frames.
    default_sampler = WindowSampler if critics is not None and critics.expert is not None else TrainSampler
    sampler_class = declared.sampler_class or default_sampler
    sampler = sampler_class(clips, config.net.n_refs, seed=config.seed + info.rank)
    step = 0
    out = Path(out_dir) if out_dir else None
    if resume:
        if out is None or not (out / "last.pt").is_file():
            raise CheckpointError(f"{out}: nothing to resume (no last.pt)")
        state = torch.load(out / "last.pt", map_location=device, weights_only=True)
        check_same_run(state.get("config", {}), config, out / "last.pt")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
        sampler.load_state_dict(state["sampler"])
        if critics is not None:
            critics.load_state_dict(state.get("critics", {}))
        torch.set_rng_state(state["rng"]["torch"])
        step = int(state["step"])
        log.info("resumed %s at step %d from %s", config.model, step, out / "last.pt")

    runner: nn.Module = _LossModule(model, critics)
    if info.enabled:
        runner = nn.parallel.DistributedDataParallel(runner, device_ids=[device.index] if device.type == "cuda" else None)
    if settings.compile:
        runner = torch.compile(runner)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else contextlib.nullcontext())
    writer = None
    if out is not None and info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"), purge_step=step if resume else None)

    def checkpoint() -> dict[str, Any]:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict(),
                "sampler": sampler.state_dict(), "rng": _rng_state(), "step": step, "config": config.to_dict(),
                "critics": critics.state_dict() if critics is not None else {}}

    end = settings.steps if stop_after is None else min(settings.steps, stop_after)
    bar = tqdm(total=settings.steps, initial=step, desc=f"train {config.model}", unit="step",
               disable=not (progress and info.is_main), leave=False)
    logs: dict[str, float] = {}
    started, frames_seen = time.perf_counter(), 0
    while step < end:
        optimizer.zero_grad(set_to_none=True)
        for micro in range(settings.grad_accum):
            batch = sampler.sample(settings.batch_size, device)
            sync = contextlib.nullcontext()
            if info.enabled and micro < settings.grad_accum - 1:
                sync = runner.no_sync()  # all-reduce once per optimiser step
            with sync, autocast:
                loss, logs = runner(batch)
                (loss / settings.grad_accum).backward()
            frames_seen += settings.batch_size * info.world_size
        if settings.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip, foreach=True)  # bit-identical, fewer calls
        optimizer.step()
        schedule.step()
        if critics is not None:
            logs.update(critics.discriminator_step(autocast, settings.grad_clip))
        step += 1
        bar.update(1)
        if step % settings.log_every == 0 or step == end:
            rate = frames_seen / max(time.perf_counter() - started, 1e-9)
            bar.set_postfix({key: f"{value:.4f}" for key, value in logs.items()})
            if writer is not None:
                for key, value in logs.items():
                    writer.add_scalar(f"loss/{key}", value, step)
                writer.add_scalar("lr", schedule.get_last_lr()[0], step)
                writer.add_scalar("throughput/frames_per_s", rate, step)
        if out is not None and info.is_main and (step % settings.save_every == 0 or step == end):
            save_checkpoint(checkpoint(), out / "last.pt")
    bar.close()
    elapsed = time.perf_counter() - started
    state = checkpoint()
    if device.type == "cpu":  # back to NCHW: on CPU it then evaluates bit-exactly as its checkpoint loaded anew
        model.to(memory_format=torch.contiguous_format)
    state["final_logs"] = dict(logs)
    state["train_seconds"] = elapsed
    if step >= settings.steps and out is not None and info.is_main:
        save_checkpoint(state, out / "final.pt")
    if writer is not None:
        writer.close()
    log.info("trained %s to step %d in %.1f s (%s)", config.model, step, elapsed,
             ", ".join(f"{k}={v:.4f}" for k, v in logs.items()))
    return model, state

"""The quick preset's training cost (issue 15): each model's training step, the reference path against the loop's.

Step mode (default): for each model, two training set-ups built from the same seed on the quick preset's
data run alternately in one process, so that machine noise hits both alike:

* ``reference``: the path before issue 15's speed work: NCHW memory, Adam and gradient clipping one
  tensor at a time, each batch row converted to floats on its own and AdaAT's warp returning NCHW maps;
* ``current``: what ``bench.training.loop.train`` does now: its ``memory_format`` (channels_last for the
  models that ask for it: julnet, dinet), foreach Adam and clipping, the samplers' batched conversion, the
  layout-keeping warp.

It prints the median wall and CPU (process) time per step and their ratios current / reference. On a busy
machine read the CPU-time ratio with one thread (``--threads 1``): a two-thread step loses much of its
wall time waiting for a descheduled thread.

End-to-end mode (``--end-to-end``): runs ``bench run --model julnet`` at the quick preset from an empty cache
(a temporary ``$TALKBENCH_CACHE``; weights from ``$TALKBENCH_WEIGHTS`` or the usual place) and prints the
stage times of its manifest against the 300 s goal.

    python benchmarks/bench_quick_preset.py [--models julnet,syncnet] [--rounds 8] [--steps 3] [--threads 1]
    python benchmarks/bench_quick_preset.py --end-to-end [--preset quick]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from bench.blocks import adaat
from bench.blocks.masks import mask_lower_half
from bench.config import RunConfig, preset_config, sync_expert_config
from bench.data.frames import TrainSampler
from bench.data.load import load_data, prepare_split
from bench.models import build_model, model_class
from bench.training.loop import memory_format

GOAL_S = 300.0
_current_warp = adaat.AdaAT.warp


def _reference_warp(features: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """AdaAT's warp before issue 15: always an NCHW result."""
    batch, channels, height, width = features.shape
    grid = F.affine_grid(theta, [batch * channels, 1, height, width], align_corners=False)
    flat = features.reshape(batch * channels, 1, height, width)
    warped = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return warped.view(batch, channels, height, width)


class _ReferenceSampler(TrainSampler):
    """TrainSampler's draws with the batch assembled as before issue 15: each row converted, then concatenated."""

    def sample(self, batch_size: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        from bench.api import MIN_REF_GAP

        picks = torch.randint(len(self.clips), (batch_size,), generator=self.generator)
        parts = []
        for index in picks.tolist():
            clip = self.clips[index]
            n = clip.n_frames
            target = torch.randint(n, (1,), generator=self.generator)
            offsets = torch.randint(max(1, n - 2 * MIN_REF_GAP + 1), (1, self.n_refs), generator=self.generator)
            refs = (target + MIN_REF_GAP + offsets) % n
            frames = clip.frames[target].to(device).float() / 255.0
            parts.append({"audio": clip.mel[target].to(device), "masked": mask_lower_half(frames),
                          "refs": clip.frames[refs].to(device).float() / 255.0, "target": frames})
        return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}


def _config(model: str) -> RunConfig:
    config = preset_config("quick", model=model)
    if model == "syncnet":  # as bench run trains the expert
        config = sync_expert_config(config)
    return config


def _setup(model_name: str, config: RunConfig, clips: list, reference: bool) -> Callable[[], None]:
    """One training step (sample, loss, backward, clip, Adam) of a model built from the seed."""
    device = torch.device("cpu")
    model = build_model(model_name, config.net, seed=config.seed).train()
    layout = torch.contiguous_format if reference else memory_format(model, device)
    model = model.to(memory_format=layout)
    foreach = False if reference else True
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr, foreach=foreach)
    own = getattr(model_class(model_name), "sampler_class", None)
    sampler_class = own or (_ReferenceSampler if reference else TrainSampler)
    sampler = sampler_class(clips, config.net.n_refs, seed=config.seed)
    params = list(model.parameters())

    def step() -> None:
        adaat.AdaAT.warp = staticmethod(_reference_warp if reference else _current_warp)
        try:
            batch = sampler.sample(config.train.batch_size, device)
            optimizer.zero_grad(set_to_none=True)
            loss, _ = model.training_loss(batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.train.grad_clip, foreach=foreach)
            optimizer.step()
        finally:
            adaat.AdaAT.warp = staticmethod(_current_warp)

    return step


def bench_steps(models: list[str], rounds: int, steps: int) -> None:
    for name in models:
        config = _config(name)
        clips = prepare_split(load_data(config, progress=False), "train", config.net.image_size, progress=False)
        runs = {"reference": _setup(name, config, clips, True), "current": _setup(name, config, clips, False)}
        for step in runs.values():  # warm-up: allocator, oneDNN primitive caches
            step()
            step()
        wall: dict[str, list[float]] = {key: [] for key in runs}
        cpu: dict[str, list[float]] = {key: [] for key in runs}
        for _ in range(rounds):
            for key, step in runs.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                for _ in range(steps):
                    step()
                wall[key].append((time.perf_counter() - started) / steps)
                cpu[key].append((time.process_time() - started_cpu) / steps)
        ratio_wall = statistics.median(c / r for c, r in zip(wall["current"], wall["reference"]))
        ratio_cpu = statistics.median(c / r for c, r in zip(cpu["current"], cpu["reference"]))
        print(f"{name:8s} ms/step wall: reference {statistics.median(wall['reference']) * 1e3:7.1f}  "
              f"current {statistics.median(wall['current']) * 1e3:7.1f}  ratio {ratio_wall:.3f} | cpu: reference "
              f"{statistics.median(cpu['reference']) * 1e3:7.1f}  current {statistics.median(cpu['current']) * 1e3:7.1f}"
              f"  ratio {ratio_cpu:.3f}", flush=True)


def bench_end_to_end(seed: int, preset: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TALKBENCH_CACHE": str(Path(tmp) / "cache")}
        if "TALKBENCH_WEIGHTS" not in os.environ and os.environ.get("TALKBENCH_CACHE"):
            env["TALKBENCH_WEIGHTS"] = str(Path(os.environ["TALKBENCH_CACHE"]) / "weights")
        out = Path(tmp) / "run"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bench.cli", "run", "--model", "julnet", "--preset", preset,
                        "--seed", str(seed), "--out", str(out), "--no-progress"], env=env, check=True)
        total = time.perf_counter() - started
        timings = json.loads((out / "manifest.json").read_text())["timings"]
    stages = ", ".join(f"{key} {value:.0f} s" for key, value in timings.items())
    verdict = "met" if total <= GOAL_S else f"{total - GOAL_S:.0f} s over"
    goal = f"; goal {GOAL_S:.0f} s: {verdict}" if preset == "quick" else ""
    print(f"bench run --model julnet --preset {preset} from an empty cache: {total:.0f} s ({stages}; the rest is "
          f"start-up){goal}; load average {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="julnet,syncnet", help="comma-separated trainable models")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="steps per variant and round")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--end-to-end", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="quick", help="end-to-end mode's preset (smoke: a check of the script)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
          flush=True)
    if args.end_to_end:
        bench_end_to_end(args.seed, args.preset)
    else:
        bench_steps(args.models.split(","), args.rounds, args.steps)


if __name__ == "__main__":
    main()

"""Held-out sync accuracy and training time of the lip-sync expert at the quick preset (synthetic data).

Trains ``syncnet`` exactly as `bench run` does (the quick preset's config with the expert's steps and lr,
the shared training loop, ``SyncNet.sampler_class``), then scores the test split:

- sync accuracy: ``sync_probability > 0.5`` on a balanced, fixed set of in-sync and shifted (>= 5 frames)
  pairs (``make_sync_batch`` with ``group=1`` and a fixed generator), plus its threshold-free AUC;
- ``lse_c_local`` on the ground-truth test clips, on the same clips with the audio shifted by
  ``--shift`` frames, and how many clips' AV offset comes out as 0 (the expert's ceiling and floor).

``--old`` also trains the previous design (five lower halves stacked on channels, BCE only) in the same
process, so the time ratio is measured under the same machine load.

Usage: python benchmarks/bench_sync_expert.py [--seeds 0 1 2] [--old] [--steps N] [--lr LR] [--no-mirror]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baselines.syncnet import EmbeddingNorm, SyncNet, SyncSampler, make_sync_batch  # noqa: E402
from baselines.wav2lip import ConvBlock, MelEncoder, level_sizes  # noqa: E402
from bench.api import SYNC_WINDOW, ModelConfig, generated_rows  # noqa: E402
from bench.config import RunConfig, preset_config, sync_expert_config  # noqa: E402
from bench.data.load import load_data, prepare_split  # noqa: E402
from bench.metrics.sync import clip_sync  # noqa: E402
from bench.models import build_model  # noqa: E402
from bench.training.loop import train  # noqa: E402

EVAL_SEED = 1234


class OldSyncNet(nn.Module):
    """The previous design, for the side-by-side: 15 x S/2 x S stacked lower halves, BCE only."""

    kind, trainable, sampler_class = "sync_expert", True, SyncSampler

    def __init__(self, config: ModelConfig, embed_dim: int = 128) -> None:
        super().__init__()
        base = max(4, config.channels // 2)
        cap = 16 * base
        sizes = level_sizes((config.image_size + 1) // 2)
        widths = [min(base * 2 ** i, cap) for i in range(len(sizes))]
        layers: list[nn.Module] = [ConvBlock(3 * SYNC_WINDOW, widths[0], kernel=7, padding=3),
                                   ConvBlock(widths[0], widths[0], stride=(1, 2)),
                                   ConvBlock(widths[0], widths[0], residual=True)]
        for level in range(1, len(sizes)):
            layers += [ConvBlock(widths[level - 1], widths[level], stride=2),
                       ConvBlock(widths[level], widths[level], residual=True)]
        layers += [ConvBlock(widths[-1], cap, kernel=sizes[-1], padding=0, norm=False), nn.Conv2d(cap, embed_dim, 1)]
        self.visual = nn.Sequential(*layers)
        self.audio = nn.Sequential(MelEncoder(16 * base, max(2, base // 2)), nn.Conv2d(16 * base, embed_dim, 1))
        self.visual_norm, self.audio_norm = EmbeddingNorm(embed_dim), EmbeddingNorm(embed_dim)

    def forward(self, mel: torch.Tensor, frames5: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        crops = frames5[..., generated_rows(frames5.shape[-2]), :].flatten(1, 2)
        visual = F.normalize(self.visual_norm(self.visual(crops).flatten(1)), dim=1)
        return visual, F.normalize(self.audio_norm(self.audio(mel).flatten(1)), dim=1)

    def sync_probability(self, mel: torch.Tensor, frames5: torch.Tensor) -> torch.Tensor:
        visual, audio = self(mel, frames5)
        return (1.0 + (visual * audio).sum(dim=1)) / 2.0

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        prob = self.sync_probability(batch["mel"], batch["frames"]).clamp(1e-6, 1 - 1e-6)
        label = batch["label"]
        loss = -(label * torch.log(prob) + (1.0 - label) * torch.log1p(-prob)).mean()
        return loss, {"bce": loss.item()}


class OldSampler(SyncSampler):
    group = 1  # the old stream: every row picks its own clip
    mirror = False  # and no mirrored windows


OldSyncNet.sampler_class = OldSampler


def expert_config(seed: int, steps: int | None, lr: float | None, warmup: float | None = None) -> RunConfig:
    """The config `bench run` trains the expert with (``bench.config.sync_expert_config``), optionally re-scheduled."""
    config = sync_expert_config(preset_config("quick", seed=seed), steps=steps)
    return replace(config, train=replace(config.train, lr=lr or config.train.lr,
                                         warmup=config.train.warmup if warmup is None else warmup))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counted half."""
    pos, neg = scores[labels > 0.5], scores[labels < 0.5]
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


@torch.no_grad()
def pair_scores(model: nn.Module, clips: list, pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """sync_probability and label of a fixed, balanced set of in-sync and shifted pairs of ``clips``."""
    batch = make_sync_batch(clips, pairs, torch.Generator().manual_seed(EVAL_SEED))
    probs = torch.cat([model.sync_probability(mel, frames) for mel, frames in
                       zip(batch["mel"].split(256), batch["frames"].split(256))]).numpy()
    return probs, batch["label"].numpy()


@torch.no_grad()
def score(model: nn.Module, test_clips: list, pairs: int, shift: int, train_clips: list) -> dict[str, float]:
    model.eval()
    probs, labels = pair_scores(model, test_clips, pairs)
    train_probs, train_labels = pair_scores(model, train_clips, pairs // 2)
    gt, shifted, zero = [], [], 0
    for clip in test_clips:
        result = clip_sync(model, clip.frames, clip.mel)
        gt.append(result.lse_c)
        zero += int(result.offset == 0)
        shifted.append(clip_sync(model, clip.frames, torch.roll(clip.mel, shift, dims=0)).lse_c)
    return {"acc": float(((probs > 0.5) == (labels > 0.5)).mean()), "auc": auc(probs, labels),
            "train_acc": float(((train_probs > 0.5) == (train_labels > 0.5)).mean()),
            "lse_c_gt": float(np.mean(gt)), "lse_c_shift": float(np.mean(shifted)), "offset0": zero / len(test_clips)}


def step_seconds(train_clips: list, steps: int, rounds: int) -> dict[str, float]:
    """Median seconds per training step of each design, timed in alternating blocks (same load for both)."""
    config = expert_config(0, None, None)
    runs = {}
    for name in ("new", "old"):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = (SyncNet if name == "new" else OldSyncNet)(config.net).train()
        runs[name] = (model, model.sampler_class(train_clips, seed=0), torch.optim.Adam(model.parameters(), lr=1e-4))
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (model, sampler, optimizer) in runs.items():
            started = time.perf_counter()
            for _ in range(steps):  # the loop's work per step: batch, loss, backward, update
                optimizer.zero_grad(set_to_none=True)
                loss, _ = model.training_loss(sampler.sample(config.train.batch_size))
                loss.backward()
                optimizer.step()
            times[name].append((time.perf_counter() - started) / steps)
    return {name: float(np.median(values)) for name, values in times.items()}


def run_one(name: str, seed: int, args: argparse.Namespace, train_clips: list, test_clips: list) -> dict[str, float]:
    config = expert_config(seed, args.old_steps if name == "old" else args.steps,
                           args.old_lr if name == "old" else args.lr, 0.0 if name == "old" else args.warmup)
    if name == "old":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = OldSyncNet(config.net)
    else:
        model = build_model("syncnet", config.net, seed=seed)
        assert isinstance(model, SyncNet)
    started = time.perf_counter()
    model, _ = train(model, train_clips, config, "cpu", progress=False)
    seconds = time.perf_counter() - started
    if args.save:
        Path(args.save).mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), Path(args.save) / f"{name}-seed{seed}.pt")
    result = score(model, test_clips, args.pairs, args.shift, train_clips)
    result.update(seconds=seconds, steps=config.train.steps, lr=config.train.lr)
    print(f"{name:>3} seed {seed}: acc {result['acc']:.3f}  auc {result['auc']:.3f}  "
          f"train acc {result['train_acc']:.3f}  "
          f"lse_c_local gt {result['lse_c_gt']:.3f} / shifted {result['lse_c_shift']:.3f}  "
          f"offset 0 on {result['offset0']:.2f} of clips  train {seconds:.1f} s "
          f"({config.train.steps} steps, lr {config.train.lr:g}, warm-up {config.train.warmup:g}, "
          f"load {os.getloadavg()[0]:.1f})", flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--old", action="store_true", help="also train the previous design, same process")
    parser.add_argument("--steps", type=int, default=None, help="default: the quick preset's eval.sync_steps")
    parser.add_argument("--lr", type=float, default=None, help="default: the quick preset's eval.sync_lr")
    parser.add_argument("--warmup", type=float, default=None,
                        help="lr warm-up as a fraction of the steps (default: the quick preset's eval.sync_warmup)")
    parser.add_argument("--no-mirror", action="store_true",
                        help="train without mirrored windows (the expert before revision 1), for the side-by-side")
    parser.add_argument("--old-steps", type=int, default=1000)
    parser.add_argument("--old-lr", type=float, default=2e-4)
    parser.add_argument("--pairs", type=int, default=2000, help="held-out pairs (half in sync)")
    parser.add_argument("--time-only", action="store_true", help="only the per-step time of both designs")
    parser.add_argument("--save", default="", help="write each trained state dict to this directory")
    parser.add_argument("--shift", type=int, default=25,
                        help="audio roll in frames for the floor row (beyond the +-15 offset search)")
    args = parser.parse_args()
    if args.no_mirror:
        SyncSampler.mirror = False
    torch.set_num_threads(max(1, torch.get_num_threads()))
    config = expert_config(0, None, None)
    print(f"cpu threads {torch.get_num_threads()}, load average {os.getloadavg()}", flush=True)
    dataset = load_data(config, progress=False)
    train_clips = prepare_split(dataset, "train", config.net.image_size, progress=False)
    test_clips = prepare_split(dataset, "test", config.net.image_size, progress=False)
    if args.old or args.time_only:
        per_step = step_seconds(train_clips, steps=10, rounds=5)
        print(f"seconds per training step: new {per_step['new']:.3f}, old {per_step['old']:.3f}, "
              f"ratio {per_step['new'] / per_step['old']:.2f}x (alternating blocks, load {os.getloadavg()[0]:.1f})",
              flush=True)
        if args.time_only:
            return 0
    results: dict[str, list[dict[str, float]]] = {"new": [], "old": []}
    for seed in args.seeds:
        results["new"].append(run_one("new", seed, args, train_clips, test_clips))
        if args.old:
            results["old"].append(run_one("old", seed, args, train_clips, test_clips))
    for name, rows in results.items():
        if rows:
            acc = [r["acc"] for r in rows]
            print(f"{name}: accuracy mean {np.mean(acc):.3f} (min {min(acc):.3f}) over seeds {args.seeds}; "
                  f"train {np.mean([r['seconds'] for r in rows]):.1f} s mean")
    if results["old"]:
        ratio = np.mean([n["seconds"] / o["seconds"] for n, o in zip(results["new"], results["old"])])
        print(f"training time new / old: {ratio:.2f}x (same process, load average now {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

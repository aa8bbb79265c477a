"""GPU training performance of JULNet at 256x256: fp32 eager vs bf16 + channels_last (+ torch.compile).

Run on a CUDA machine:
    python benchmarks/gpu_train_perf.py [--steps 200] [--batch 15] [--pixel-only] [--out PERFORMANCE.md]
Prints step time, frames/s and peak memory per setting and the speed-ups over fp32 eager, and
appends a dated section naming the GPU to the output file. A step is the paper preset's: the
generator (joint uncertainty loss + LSGAN + sync-expert terms; the VGG perceptual loss is left out,
as its weights need `bench weights fetch`, which an offline GPU box may not have), then the
discriminator update. The sync expert is an untrained ``syncnet`` at 256 px (its cost, not its
judgement, is measured). ``--pixel-only`` times the generator's reconstruction step alone. Batches
are random tensors of the protocol's shapes (the data pipeline is not what is measured). On CPU it
refuses to run.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.config import ModelConfig, RunConfig  # noqa: E402
from bench.training.critics import Critics  # noqa: E402
from bench.data.frames import WINDOW  # noqa: E402
from bench.models import build_model  # noqa: E402


def batch(size: int, batch_size: int, n_refs: int, device: torch.device, channels_last: bool) -> dict:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return {
        "audio": torch.randn(batch_size, 80, 16, device=device),
        "masked": torch.rand(batch_size, 3, size, size, device=device).contiguous(memory_format=fmt),
        "refs": torch.rand(batch_size, n_refs, 3, size, size, device=device),
        "target": torch.rand(batch_size, 3, size, size, device=device).contiguous(memory_format=fmt),
        "sync_mel": torch.randn(max(1, batch_size // WINDOW), 80, 16, device=device),
    }


def critics_for(config: ModelConfig, device: torch.device) -> Critics:
    """The paper preset's discriminator, plus an untrained 256-px sync expert put in place of a trained one."""
    critics = Critics(RunConfig(net=config), device)
    expert = build_model("syncnet", config).to(device).eval().requires_grad_(False)
    critics.expert, critics.sync_weight = expert, 0.1
    return critics


def measure(name: str, steps: int, batch_size: int, bf16: bool, channels_last: bool, compile_: bool,
            pixel_only: bool = False) -> dict:
    device = torch.device("cuda")
    config = ModelConfig(image_size=256, n_refs=5, channels=64, uncertainty="joint",
                         gan_weight=0.0 if pixel_only else 1.0)
    torch.manual_seed(0)
    model = build_model("julnet", config).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    critics = None if pixel_only else critics_for(config, device)
    loss_fn = torch.compile(model.training_loss) if compile_ else model.training_loss

    def step_fn(data: dict) -> tuple:
        return loss_fn(data) if critics is None else loss_fn(data, critics)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    data = batch(256, batch_size, config.n_refs, device, channels_last)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    warmup = min(20, steps // 4)
    torch.cuda.reset_peak_memory_stats()
    for i in range(steps + warmup):
        if i == warmup:
            torch.cuda.synchronize()
            started = time.perf_counter()
        with autocast:
            loss, _ = step_fn(data)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if critics is not None:
            critics.discriminator_step(autocast)
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / steps
    return {"name": name, "step_ms": 1000 * seconds, "frames_per_s": batch_size / seconds,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30, "loss": float(loss)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=15, help="frames per step (3 windows of 5 for the sync loss)")
    parser.add_argument("--pixel-only", action="store_true", help="time the reconstruction step alone")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("PERFORMANCE.md"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_train_perf: no CUDA device; run this on a GPU machine", file=sys.stderr)
        return 2
    settings = [("fp32 eager", False, False, False), ("bf16 + channels_last", True, True, False)]
    if not args.no_compile:
        settings.append(("bf16 + channels_last + compile", True, True, True))
    results = [measure(name, args.steps, args.batch, *flags, pixel_only=args.pixel_only) for name, *flags in settings]
    base = results[0]["step_ms"]
    gpu = torch.cuda.get_device_name()
    losses = "reconstruction loss only" if args.pixel_only else "joint + LSGAN + sync losses, discriminator step"
    lines = [f"\n## JULNet training at 256x256 ({losses}), batch {args.batch}, {args.steps} steps — {gpu}, "
             f"torch {torch.__version__}, {dt.date.today()}\n",
             "| setting | step (ms) | frames/s | peak memory (GiB) | speed-up vs fp32 eager |",
             "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['name']} | {r['step_ms']:.1f} | {r['frames_per_s']:.1f} | {r['peak_gib']:.2f} | "
                     f"{base / r['step_ms']:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(args.out, "a") as handle:
        handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""GPU training performance of JULNet at 256x256: fp32 eager vs bf16 + channels_last (+ torch.compile).

Run on a CUDA machine:  python benchmarks/gpu_train_perf.py [--steps 200] [--batch 16] [--out PERFORMANCE.md]
Prints step time, frames/s and peak memory per setting and the speed-ups over fp32 eager, and
appends a dated section naming the GPU to the output file. Batches are random tensors of the
protocol's shapes (the data pipeline is not what is measured). On CPU it refuses to run.
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
from bench.config import ModelConfig  # noqa: E402
from bench.models import build_model  # noqa: E402


def batch(size: int, batch_size: int, n_refs: int, device: torch.device, channels_last: bool) -> dict:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return {
        "audio": torch.randn(batch_size, 80, 16, device=device),
        "masked": torch.rand(batch_size, 3, size, size, device=device).contiguous(memory_format=fmt),
        "refs": torch.rand(batch_size, n_refs, 3, size, size, device=device),
        "target": torch.rand(batch_size, 3, size, size, device=device).contiguous(memory_format=fmt),
    }


def measure(name: str, steps: int, batch_size: int, bf16: bool, channels_last: bool, compile_: bool) -> dict:
    device = torch.device("cuda")
    config = ModelConfig(image_size=256, n_refs=5, channels=64, uncertainty="joint")
    torch.manual_seed(0)
    model = build_model("julnet", config).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    step_fn = torch.compile(model.training_loss) if compile_ else model.training_loss
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
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / steps
    return {"name": name, "step_ms": 1000 * seconds, "frames_per_s": batch_size / seconds,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30, "loss": float(loss)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("PERFORMANCE.md"))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_train_perf: no CUDA device; run this on a GPU machine", file=sys.stderr)
        return 2
    settings = [("fp32 eager", False, False, False), ("bf16 + channels_last", True, True, False)]
    if not args.no_compile:
        settings.append(("bf16 + channels_last + compile", True, True, True))
    results = [measure(name, args.steps, args.batch, *flags) for name, *flags in settings]
    base = results[0]["step_ms"]
    gpu = torch.cuda.get_device_name()
    lines = [f"\n## JULNet training at 256x256, batch {args.batch}, {args.steps} steps — {gpu}, "
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

"""What MKL's strict reproducible mode (set by ``import bench``) costs a CPU training step.

Times julnet's training step at the quick preset's size (64 px, batch 16, random data) in fresh
processes with ``MKL_CBWR=AUTO,STRICT`` (talkbench's default) and ``MKL_CBWR=AUTO`` (MKL's own),
interleaved so that machine noise hits both alike, and prints the medians and their ratio.

    python benchmarks/bench_mkl_strict.py [--rounds 3] [--steps 20]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

_STEP_TIMER = """
import sys, time
import torch
from bench.config import preset_config
from bench.models import build_model
config = preset_config("quick")
model = build_model("julnet", config.net, seed=0).train()
opt = torch.optim.Adam(model.parameters(), lr=1e-4)
g = torch.Generator().manual_seed(0)
size, refs, batch = config.net.image_size, config.net.n_refs, config.train.batch_size
data = {"audio": torch.randn(batch, 80, 16, generator=g), "target": torch.rand(batch, 3, size, size, generator=g),
        "refs": torch.rand(batch, refs, 3, size, size, generator=g)}
data["masked"] = data["target"].clone(); data["masked"][..., size // 2:, :] = 0
def step():
    opt.zero_grad(set_to_none=True)
    loss, _ = model.training_loss(data)
    loss.backward()
    opt.step()
for _ in range(3):
    step()
start = time.perf_counter()
for _ in range(int(sys.argv[1])):
    step()
print((time.perf_counter() - start) / int(sys.argv[1]) * 1000)
"""


def time_step(mode: str, steps: int) -> float:
    env = {**os.environ, "MKL_CBWR": mode}
    out = subprocess.run([sys.executable, "-c", _STEP_TIMER, str(steps)], env=env, capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"AUTO,STRICT": [], "AUTO": []}
    for _ in range(args.rounds):
        for mode in times:
            times[mode].append(time_step(mode, args.steps))
    strict, default = (statistics.median(times[m]) for m in ("AUTO,STRICT", "AUTO"))
    print(f"julnet training step, quick preset size, {args.rounds} rounds x {args.steps} steps (median ms/step):")
    print(f"  MKL_CBWR=AUTO,STRICT (talkbench): {strict:8.1f}")
    print(f"  MKL_CBWR=AUTO (MKL's default):    {default:8.1f}")
    print(f"  strict / default: {strict / default:.3f}")


if __name__ == "__main__":
    main()

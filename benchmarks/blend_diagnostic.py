"""What a generator's reference path does on the test split: how peaked its blend is, and what other blends give.

For each checkpoint (a generator with the reference path), on every other frame of the test split of the data it
was trained on, with the evaluation's fixed references, it prints:

* the blend's mean weight on each pixel's likeliest source (1 / (R + 1) is uniform), the decoder's mean share and
  the mean entropy (nats), all over the generated rows;
* LPIPS (AlexNet, provisioned weights) and PSNR over the generated rows of: the model's output (the soft blend);
  each pixel's likeliest source alone (a hard blend, same flows); the decoder's own RGB; the first reference
  pasted (the ``pasteref`` floor).

    python benchmarks/blend_diagnostic.py CHECKPOINT [CHECKPOINT ...] [--threads 1]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.blocks.masks import mouth_mask  # noqa: E402
from bench.data.frames import eval_reference_indices, make_batch  # noqa: E402
from bench.data.load import load_data, prepare_split  # noqa: E402
from bench.metrics.lpips import build_lpips  # noqa: E402
from bench.training.checkpoint import load_checkpoint  # noqa: E402


class _Capture:
    """Keeps the last call of a reference path: its inputs (features, refs, rgb) and its blend weights."""

    def __init__(self, path: torch.nn.Module) -> None:
        self.inputs: tuple[torch.Tensor, ...] = ()
        self.weights = torch.empty(0)
        path.register_forward_hook(self._keep)

    def _keep(self, module: torch.nn.Module, args: tuple, output: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.inputs, self.weights = args, output[1]


@torch.no_grad()
def diagnose(checkpoint: Path) -> dict[str, float]:
    model, config, _ = load_checkpoint(checkpoint)
    model.eval()
    path = getattr(model, "reference_path", None)
    if path is None:
        raise SystemExit(f"{checkpoint}: the model has no reference path")
    capture = _Capture(path)
    lpips = build_lpips(device="cpu")
    clips = prepare_split(load_data(config, progress=False), "test", config.net.image_size, progress=False)
    sums: dict[str, list[float]] = {}
    for clip in clips:
        targets = list(range(0, clip.n_frames, 2))
        refs = [eval_reference_indices(clip.n_frames, config.net.n_refs, t) for t in targets]
        batch = make_batch(clip, targets, refs)
        output, _ = model(batch["audio"], batch["masked"], batch["refs"])
        (features, path_refs, rgb), weights = capture.inputs, capture.weights
        sources = torch.cat([path.warp(features, path_refs), rgb[:, None]], dim=1)  # B x (R + 1) x 3 x S x S
        pick = weights.argmax(1, keepdim=True)[:, :, None].expand(-1, -1, 3, -1, -1)
        mask = mouth_mask(*output.shape[-2:])
        region = mask[0, 0].bool()
        given = batch["masked"] * (1 - mask)
        variants = {"soft blend (the model)": output, "likeliest source": given + sources.gather(1, pick)[:, 0] * mask,
                    "decoder RGB": given + rgb * mask, "first reference pasted": given + batch["refs"][:, 0] * mask}
        rows = {"weight of the likeliest source": weights.max(1).values[:, region].mean(),
                "decoder share": weights[:, -1][:, region].mean(),
                "entropy (nats)": -(weights * weights.clamp_min(1e-8).log()).sum(1)[:, region].mean()}
        for name, image in variants.items():
            mse = ((image - batch["target"]) ** 2)[..., region].mean((1, 2))
            rows[f"{name}: LPIPS"] = lpips(image * 2 - 1, batch["target"] * 2 - 1).mean()
            rows[f"{name}: PSNR of the generated rows"] = (10 * torch.log10(1.0 / mse.clamp_min(1e-12))).mean()
        for name, value in rows.items():
            sums.setdefault(name, []).append(float(value) * len(targets))
        sums.setdefault("frames", []).append(len(targets))
    frames = float(np.sum(sums.pop("frames")))
    return {name: float(np.sum(values)) / frames for name, values in sums.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for checkpoint in args.checkpoints:
        print(checkpoint)
        for name, value in diagnose(checkpoint).items():
            print(f"  {name}: {value:.4f}")


if __name__ == "__main__":
    main()

"""`bench train`: train one model (resumable; under torchrun it trains with DDP)."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from bench.cli.common import add_model_arguments, config_from_args, positive_int

log = logging.getLogger("bench")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("train", help="train a model (resumable; runs under torchrun for DDP)")
    add_model_arguments(parser)
    parser.add_argument("--steps", type=positive_int, help="total optimiser steps (default: the preset's)")
    parser.add_argument("--out", type=Path, help="output directory (default runs/train/MODEL-PRESET-seedN)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/last.pt when it exists (else start): rerun the same command after a kill")
    parser.add_argument("--save-every", type=positive_int, metavar="N",
                        help="rewrite OUT/last.pt every N steps (default: the preset's)")


def run(args: argparse.Namespace) -> int:
    from bench.api import capabilities
    from bench.config import sync_expert_config
    from bench.data.load import load_data, prepare_split
    from bench.models import build_model, model_class
    from bench.training.distributed import init_distributed, pick_device
    from bench.training.loop import TrainError, train

    config = config_from_args(args)
    declared = capabilities(model_class(args.model))
    if declared.kind == "sync_expert":  # the expert `bench run` trains and caches
        config = sync_expert_config(config, steps=args.steps)
    out = args.out or Path("runs") / "train" / f"{args.model}-{args.preset}-seed{args.seed}"
    is_generator = declared.generator
    if config.net.sync_weight > 0 and not config.train.sync_expert and is_generator:
        raise TrainError("--sync-weight > 0 needs --sync-expert PATH (train one: bench train --model syncnet)")
    blocker = next((path for path in (out, *out.parents) if path.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise TrainError(f"{out}: cannot train into it: {blocker} is a file, not a directory; choose another --out")
    if not args.resume and (out / "last.pt").exists():
        raise TrainError(f"{out}: already holds a training run; pass --resume to continue it or choose another --out")
    # With --resume the same command line starts the run and continues it after a kill.
    resume = args.resume and (out / "last.pt").is_file()
    if args.resume and not resume:
        log.info("%s: no last.pt yet, starting from step 0", out)
    device = pick_device()
    info = init_distributed(device)
    if info.enabled and not info.is_main:
        import torch.distributed as dist

        dist.barrier()  # rank 0 generates or checks the data first
    dataset = load_data(config, progress=not args.no_progress and info.is_main)
    if info.enabled and info.is_main:
        import torch.distributed as dist

        dist.barrier()
    model = build_model(args.model, config.net, seed=config.seed)
    if not capabilities(model).trainable:
        raise TrainError(f"model '{args.model}' has no parameters to train")
    clips = prepare_split(dataset, "train", config.net.image_size, progress=False)
    train(model, clips, config, device, progress=not args.no_progress, out_dir=out, resume=resume)
    if info.is_main:
        print(f"checkpoint: {out / 'final.pt'}")
    return 0

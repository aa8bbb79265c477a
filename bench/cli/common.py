"""What several subcommands share: argument types and the run/train model options.

Imports only the standard library and torch-free bench modules: `bench --help` builds every parser.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from bench.api import UNCERTAINTY_MODES
from bench.errors import BenchError
from bench.config import PRESETS, RunConfig, preset_config


class UsageError(BenchError, ValueError):
    """A command line that cannot run as given (one line: which argument and why)."""


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (0 or a negative count would be silently ignored or misread)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def yaw_edges(text: str) -> tuple[float, float]:
    from bench.config import pose_bins

    try:
        low, high = (float(part) for part in text.split(","))
        pose_bins((low, high))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected two increasing degrees in (0, 90) like 15,30 ({error})") from None
    return low, high


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """What `run` and `train` share: which model, preset, data, seed and uncertainty mode."""
    parser.add_argument("--model", required=True, help="model name (see `bench ls`)")
    parser.add_argument("--preset", default="quick", choices=PRESETS)
    parser.add_argument("--data", default="synth", help="'synth' (embedded generator) or a dataset directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--still", action="store_true",
                        help="synthetic heads that only sway (no within-clip head turns or camera motion): the old data")
    parser.add_argument("--uncertainty", choices=UNCERTAINTY_MODES, help="uncertainty training mode (default: the preset's)")
    parser.add_argument("--gan-weight", type=float, help="weight of the LSGAN term (default: the preset's)")
    parser.add_argument("--sync-weight", type=float,
                        help="weight of the sync expert's term (default: the preset's; bench run trains the expert)")
    parser.add_argument("--sync-expert", type=Path, help="a syncnet checkpoint for the sync loss")
    parser.add_argument("--mouth-weight", type=float, help="weight of the L1 term on the mouth box (default: the preset's)")
    parser.add_argument("--blend-entropy", type=float,
                        help="weight of the reference path's blend entropy: copy one source per pixel (default: the preset's)")
    parser.add_argument("--decoder-weight", type=float,
                        help="weight of an L1 on the decoder's own RGB before the reference path's blend (default: the preset's)")
    parser.add_argument("--no-reference-path", action="store_true",
                        help="the decoder paints every generated pixel (no blend of warped reference pixels)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """What `run` and `score` share about evaluation."""
    parser.add_argument("--fid-every", type=positive_int, metavar="N",
                        help="FID on every N-th frame (default 1: every frame, as pytorch-fid computes it; "
                             "summary.json records the stride as the FID entries' frame_stride)")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The preset's config with the command line's overrides (shared by `run` and `train`)."""
    from bench.models import model_class

    model_class(args.model)  # fail fast on a typo, before any data work
    config = preset_config(args.preset, model=args.model, seed=args.seed)
    config = replace(config, data=replace(config.data, source=args.data))
    if getattr(args, "still", False):
        config = replace(config, data=replace(config.data, synth=config.data.synth.still()))
    if args.uncertainty:
        config = replace(config, net=replace(config.net, uncertainty=args.uncertainty))
    if getattr(args, "no_reference_path", False):
        config = replace(config, net=replace(config.net, reference_path=False))
    for flag in ("gan_weight", "sync_weight", "mouth_weight", "blend_entropy", "decoder_weight"):
        if getattr(args, flag, None) is not None:
            config = replace(config, net=replace(config.net, **{flag: getattr(args, flag)}))
    if getattr(args, "sync_expert", None):
        if not args.sync_expert.is_file():
            raise UsageError(f"{args.sync_expert}: sync expert checkpoint not found")
        config = replace(config, train=replace(config.train, sync_expert=str(args.sync_expert.resolve())))
    if getattr(args, "yaw_bins", None):
        config = replace(config, eval=replace(config.eval, yaw_edges=args.yaw_bins))
    if getattr(args, "fid_every", None):
        config = replace(config, eval=replace(config.eval, fid_every=args.fid_every))
    if getattr(args, "steps", None):
        config = replace(config, train=replace(config.train, steps=args.steps))
    if getattr(args, "save_every", None):
        config = replace(config, train=replace(config.train, save_every=args.save_every))
    return config

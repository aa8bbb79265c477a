"""The `bench` command line. Expected failures print one line and exit 2; no tracebacks."""
from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from bench.config import PRESETS, POSE_BINS, RunConfig, preset_config
from bench.api import UNCERTAINTY_MODES, capabilities
from bench.cli.args import add_score_cli, add_weights_cli

log = logging.getLogger("bench")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="talkbench: talking-face generation benchmark")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="train (or load) a model, evaluate it, write a run directory and report")
    _model_arguments(run)
    run.add_argument("--checkpoint", type=Path, help="evaluate this checkpoint instead of training")
    run.add_argument("--out", type=Path, help="run directory (default runs/MODEL-PRESET-TIME)")
    run.add_argument("--yaw-bins", type=_yaw_edges, metavar="LOW,HIGH",
                     help="|yaw| edges of the frontal / moderate / extreme bins (default 15,30)")
    run.add_argument("--no-report", action="store_true", help="skip the HTML report")

    trainer = commands.add_parser("train", help="train a model (resumable; runs under torchrun for DDP)")
    _model_arguments(trainer)
    trainer.add_argument("--steps", type=_positive_int, help="total optimiser steps (default: the preset's)")
    trainer.add_argument("--out", type=Path, help="output directory (default runs/train/MODEL-PRESET-seedN)")
    trainer.add_argument("--resume", action="store_true",
                         help="continue from OUT/last.pt when it exists (else start): rerun the same command after a kill")
    trainer.add_argument("--save-every", type=_positive_int, metavar="N",
                         help="rewrite OUT/last.pt every N steps (default: the preset's)")

    commands.add_parser("ls", help="list the models")

    report = commands.add_parser("report", help="render a run directory's HTML report again (e.g. after it failed)")
    report.add_argument("run_dir", type=Path)

    compare = commands.add_parser("compare", help="paired per-metric differences between two run directories")
    compare.add_argument("run_a", type=Path)
    compare.add_argument("run_b", type=Path)
    compare.add_argument("--resamples", type=_positive_int, default=2000, help="bootstrap resamples over shared clips")
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--allow-different-data", action="store_true",
                         help="compare runs whose manifests record different data hashes")

    add_weights_cli(commands)
    add_score_cli(commands)

    data = commands.add_parser("data", help="datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    synth = data_commands.add_parser("synth", help="generate (or find cached) synthetic talking heads")
    synth.add_argument("--preset", default="quick", choices=PRESETS, help="the preset whose data to make")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--out", type=Path, help="write here instead of the cache")
    synth.add_argument("--workers", type=_positive_int, default=2)
    sheet = data_commands.add_parser("sheet", help="a contact-sheet PNG of a dataset")
    sheet.add_argument("dataset", nargs="?", default="synth", help="'synth' (quick preset data) or a directory")
    sheet.add_argument("--out", type=Path, default=Path("contact_sheet.png"))
    sheet.add_argument("--frames", type=_positive_int, default=6)
    return parser


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    """What `run` and `train` share: which model, preset, data, seed and uncertainty mode."""
    parser.add_argument("--model", required=True, help="model name (see `bench ls`)")
    parser.add_argument("--preset", default="quick", choices=PRESETS)
    parser.add_argument("--data", default="synth", help="'synth' (embedded generator) or a dataset directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--uncertainty", choices=UNCERTAINTY_MODES, help="uncertainty training mode (default: the preset's)")
    parser.add_argument("--gan-weight", type=float, help="weight of the LSGAN term (default: the preset's)")
    parser.add_argument("--sync-weight", type=float,
                        help="weight of the sync expert's term (default: the preset's; bench run trains the expert)")
    parser.add_argument("--sync-expert", type=Path, help="a syncnet checkpoint for the sync loss")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (0 or a negative count would be silently ignored or misread)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _yaw_edges(text: str) -> tuple[float, float]:
    from bench.config import pose_bins

    try:
        low, high = (float(part) for part in text.split(","))
        pose_bins((low, high))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected two increasing degrees in (0, 90) like 15,30 ({error})") from None
    return low, high


def _fmt(entry: dict[str, Any] | None, digits: int = 3) -> str:
    if not entry or entry.get("value") is None or not math.isfinite(entry["value"]):
        return "n/a"
    text = f"{entry['value']:.{digits}f}"
    if entry.get("ci95"):
        lo, hi = entry["ci95"]
        text += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return text


def results_table(summary: dict[str, Any]) -> str:
    """Plain-text table: metric, overall (95% CI), per pose bin, and the copyref floor."""
    bins = [name for name, _, _ in POSE_BINS]
    floor = summary.get("floor", {}).get("metrics", {})
    header = ["metric", "all (95% CI)", *bins] + (["copyref floor"] if floor else [])
    rows = []
    for name, entry in summary["metrics"].items():
        arrow = "↑" if entry.get("higher_is_better") else "↓"
        row = [f"{name} {arrow}", _fmt(entry)] + [_fmt(summary["by_pose"].get(b, {}).get(name)) for b in bins]
        if floor:
            row.append(_fmt({"value": floor.get(name, {}).get("value")}))
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _config_from_args(args: argparse.Namespace) -> RunConfig:
    """The preset's config with the command line's overrides (shared by `run` and `train`)."""
    from bench.models import model_class

    model_class(args.model)  # fail fast on a typo, before any data work
    config = preset_config(args.preset, model=args.model, seed=args.seed)
    config = replace(config, data=replace(config.data, source=args.data))
    if args.uncertainty:
        config = replace(config, net=replace(config.net, uncertainty=args.uncertainty))
    for flag in ("gan_weight", "sync_weight"):
        if getattr(args, flag, None) is not None:
            config = replace(config, net=replace(config.net, **{flag: getattr(args, flag)}))
    if getattr(args, "sync_expert", None):
        if not args.sync_expert.is_file():
            from bench.harness.run import RunError

            raise RunError(f"{args.sync_expert}: sync expert checkpoint not found")
        config = replace(config, train=replace(config.train, sync_expert=str(args.sync_expert.resolve())))
    if getattr(args, "yaw_bins", None):
        config = replace(config, eval=replace(config.eval, yaw_edges=args.yaw_bins))
    if getattr(args, "steps", None):
        config = replace(config, train=replace(config.train, steps=args.steps))
    if getattr(args, "save_every", None):
        config = replace(config, train=replace(config.train, save_every=args.save_every))
    return config


def _cmd_run(args: argparse.Namespace) -> int:
    from bench.harness.run import run

    config = _config_from_args(args)
    outcome = run(config, out_dir=args.out, checkpoint=args.checkpoint, progress=not args.no_progress,
                  report=not args.no_report)
    print(f"\n{args.model} ({config.net.uncertainty}) on {args.data} ({args.preset} preset), test split:")
    print(results_table(outcome.summary))
    for note in outcome.summary.get("notes", {}).values():
        print(f"note: {note}")
    if outcome.floor:
        ours = outcome.summary["metrics"]["psnr"]["value"]
        floor = outcome.floor["metrics"]["psnr"]["value"]
        print(f"\nPSNR {args.model}: {ours:.2f} dB   copyref (floor): {floor:.2f} dB")
    print(f"\nrun directory: {outcome.run_dir}")
    print_report_status(outcome.run_dir)
    return 0


def print_report_status(run_dir: Path) -> None:
    """After the results table: the report's path, or one warning line on stderr when only the report failed.

    The exit status stays 0 then: the measurements are written and printed; the warning says how to
    render the report again.
    """
    from bench.harness.rundir import report_failure

    warning = report_failure(run_dir)
    if warning:
        print(warning, file=sys.stderr)
    elif (Path(run_dir) / "report.html").is_file():
        print(f"report: {Path(run_dir).resolve() / 'report.html'}")


def _cmd_report(args: argparse.Namespace) -> int:
    from bench.harness.rundir import rerender_report

    print(f"report: {rerender_report(args.run_dir)}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from bench.models import build_model, model_class
    from bench.harness.run import RunError, load_data, prepare_split
    from bench.training.loop import init_distributed, pick_device, train

    config = _config_from_args(args)
    out = args.out or Path("runs") / "train" / f"{args.model}-{args.preset}-seed{args.seed}"
    is_generator = capabilities(model_class(args.model)).generator
    if config.net.sync_weight > 0 and not config.train.sync_expert and is_generator:
        raise RunError("--sync-weight > 0 needs --sync-expert PATH (train one: bench train --model syncnet)")
    blocker = next((path for path in (out, *out.parents) if path.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise RunError(f"{out}: cannot train into it: {blocker} is a file, not a directory; choose another --out")
    if not args.resume and (out / "last.pt").exists():
        raise RunError(f"{out}: already holds a training run; pass --resume to continue it or choose another --out")
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
        raise RunError(f"model '{args.model}' has no parameters to train")
    clips = prepare_split(dataset, "train", config.net.image_size, progress=False)
    train(model, clips, config, device, progress=not args.no_progress, out_dir=out, resume=resume)
    if info.is_main:
        print(f"checkpoint: {out / 'final.pt'}")
    return 0


def _cmd_ls(args: argparse.Namespace) -> int:
    from bench.models import MODELS

    for name, target in MODELS.items():
        print(f"{name:10s} {target}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from bench.data.clips import open_dataset
    from bench.harness.run import load_data

    if args.data_command == "synth":
        config = preset_config(args.preset, seed=args.seed)
        if args.out:
            from bench.harness.rundir import prepare_run_dir
            from bench.data.synth import generate_dataset

            dataset = generate_dataset(config.data.synth, prepare_run_dir(args.out), workers=args.workers)
        else:
            dataset = load_data(config)
        counts = {s: len(dataset.split(s)) for s in ("train", "test")}
        print(f"dataset: {dataset.root} ({counts['train']} train clips, {counts['test']} test clips)")
        return 0
    from bench.data.synth import contact_sheet

    dataset = load_data(preset_config("quick")) if args.dataset == "synth" else open_dataset(args.dataset)
    path = contact_sheet(dataset, args.out, frames_per_clip=args.frames)
    print(f"contact sheet: {path}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from bench.harness.compare import compare_runs, format_comparison

    table = compare_runs(args.run_a, args.run_b, resamples=args.resamples, seed=args.seed,
                         allow_different_data=args.allow_different_data)
    print(format_comparison(table))
    return 0


def _cmd_weights(args: argparse.Namespace) -> int:
    from bench.weights.store import run_cli

    return run_cli(args)


def _cmd_score(args: argparse.Namespace) -> int:
    from bench.harness.external import run_cli

    return run_cli(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    from bench.errors import EXPECTED_ERRORS

    handlers = {"run": _cmd_run, "train": _cmd_train, "ls": _cmd_ls, "data": _cmd_data,
                "compare": _cmd_compare, "weights": _cmd_weights, "score": _cmd_score, "report": _cmd_report}
    try:
        return handlers[args.command](args)
    except EXPECTED_ERRORS as error:
        if args.verbose:
            raise
        print(f"bench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `bench score --metric psnr ... | head`: the reader left, nothing to report
        sys.stdout = open(os.devnull, "w")
        return 0


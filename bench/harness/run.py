"""`bench run`: data -> checkpoint (trained and cached when missing) -> evaluation -> run directory -> report.

Under torchrun every rank loads the data and the model and scores its share of the clips
(``bench.harness.shard``); rank 0 alone claims and writes the run directory, and gets the outcome.

A dataset with a val split (the synthetic data has one) is evaluated there too, by the same model and
scorer but without the metric networks: its pixels only fit the recalibration maps
(``bench.harness.recalibrate``); no reported metric comes from it.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from bench.api import capabilities
from bench.cache import cache_root
from bench.data.clips import Dataset
from bench.data.load import load_data, prepare_split
from bench.config import RunConfig, net_key_settings, sync_expert_config
from bench.files import file_sha256, locked, stable_hash, without_legacy
from bench.errors import BenchError
from bench.harness.evaluate import EvalResult, evaluate, metric_networks, summarise
from bench.metrics.dynamics import dynamics_block
from bench.harness.recalibrate import add_recalibration
from bench.harness.shard import Ranks
from bench.data.frames import ClipTensors
from bench.harness.sync_eval import sync_networks
from bench.metrics import specs
from bench.models import build_model, model_class
from bench.harness.rundir import (check_run_dir_free, claim_new_run_dir, claim_run_dir, finish_run,
                          mark_failed, new_manifest, release_run_dir, write_json)
from bench.training.checkpoint import load_checkpoint
from bench.training.distributed import pick_device
from bench.training.loop import train

log = logging.getLogger(__name__)


class RunError(BenchError, ValueError):
    pass


# Training settings added after checkpoints were cached, with the value that reproduces the earlier training: at
# that value a setting stays out of the key, so those checkpoints keep their keys.
_TRAIN_ADDED_LATER = {"warmup": 0.0}


def checkpoint_key(config: RunConfig, data_hash: str) -> str:
    train = without_legacy(dataclasses.asdict(config.train), _TRAIN_ADDED_LATER)
    if train["sync_expert"]:  # the expert's content, not where this machine keeps it
        train["sync_expert"] = file_sha256(Path(train["sync_expert"]))
    # revision 0 is the legacy value: checkpoints cached before models declared revisions keep their keys
    return stable_hash(without_legacy({"model": config.model, "net": net_key_settings(config.net), "train": train,
                                       "seed": config.seed, "data": data_hash,
                                       "revision": capabilities(model_class(config.model)).revision}, {"revision": 0}))


@dataclass
class RunOutcome:
    run_dir: Path
    summary: dict[str, Any]
    floor: dict[str, Any] | None
    report: Path | None


def obtain_model(config: RunConfig, dataset: Dataset, checkpoint: Path | None, device: torch.device,
                 progress: bool, ranks: Ranks | None = None) -> tuple[nn.Module, RunConfig, dict[str, Any]]:
    """Load the given checkpoint, or the cached one for this config and data, or train and cache it
    (under torchrun: with DDP, rank 0 writing the checkpoint)."""
    ranks = ranks or Ranks()
    if checkpoint is not None:
        model, saved, _ = load_checkpoint(checkpoint, device)
        if saved.model != config.model:
            raise RunError(f"{checkpoint}: checkpoint is for model '{saved.model}', not '{config.model}'")
        return model.to(device), replace(config, net=saved.net, train=saved.train), {
            "path": str(checkpoint), "sha256": file_sha256(checkpoint), "source": "given"}
    model = build_model(config.model, config.net, seed=config.seed)
    if not capabilities(model).trainable:
        return model.to(device), config, {"path": None, "sha256": None, "source": "none (no parameters)"}
    train_dir = cache_root() / "checkpoints" / f"{config.model}-{checkpoint_key(config, dataset.content_hash)}"
    if ranks.enabled:  # the ranks train together (DDP): a lock held by one rank would stall the others
        return _cached_or_trained(model, config, dataset, train_dir, device, progress, ranks)
    # One process at a time per checkpoint: parallel runs needing the same model (e.g. an experiment's
    # `--jobs N` runs sharing one seed's lip-sync expert) train it once; the others wait and load it.
    with locked(train_dir.with_name(train_dir.name + ".lock")):
        return _cached_or_trained(model, config, dataset, train_dir, device, progress, ranks)


def _cached_or_trained(model: nn.Module, config: RunConfig, dataset: Dataset, train_dir: Path, device: torch.device,
                       progress: bool, ranks: Ranks) -> tuple[nn.Module, RunConfig, dict[str, Any]]:
    final = train_dir / "final.pt"
    if final.is_file():
        log.info("using cached checkpoint %s", final)
        model, _, _ = load_checkpoint(final, device)
        return model.to(device), config, {"path": str(final), "sha256": file_sha256(final), "source": "cache"}
    train_clips = prepare_split(dataset, "train", config.net.image_size, progress)
    resume = (train_dir / "last.pt").is_file()  # an interrupted run of the same config continues
    model, _ = train(model, train_clips, config, device, progress, out_dir=train_dir, resume=resume)
    ranks.barrier()  # rank 0 has written final.pt
    return model, config, {"path": str(final), "sha256": file_sha256(final),
                           "source": "trained (resumed)" if resume else "trained"}


def evaluate_split(model: nn.Module, clips: list[ClipTensors], config: RunConfig, device: torch.device,
                   progress: bool, networks: dict[str, nn.Module], ranks: Ranks | None = None) -> EvalResult | None:
    """The split's result on rank 0 (None on other ranks: each scored its share of the clips)."""
    total = sum(c.n_frames for c in clips)
    return evaluate(model, clips, config.net.n_refs, config.eval, device, progress, total=total, networks=networks,
                    ranks=ranks)


def run(config: RunConfig, out_dir: str | Path | None = None, checkpoint: str | Path | None = None,
        progress: bool = True, report: Callable[[Path], Path] | None = None, floor: bool = True) -> RunOutcome | None:
    """Train or load, evaluate, write the run directory; under torchrun the outcome is rank 0's (others: None)."""
    if capabilities(model_class(config.model)).kind == "sync_expert":  # generators and the copy floors run
        raise RunError(f"model '{config.model}' is not a generator (it scores sync); train it with "
                       f"`bench train --model {config.model}`")
    if config.preset == "paper" and not torch.cuda.is_available():
        raise RunError("the 'paper' preset is declared for GPUs; use --preset quick or smoke on this machine")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    device = pick_device()
    ranks = Ranks.join(device)
    progress = progress and ranks.is_main
    # Check the output first; claim it (created exclusively, manifest "running") once the networks load, so an
    # unusable or taken --out fails before any training; a failure before evaluation removes the claim again.
    if out_dir is not None:
        ranks.on_main(check_run_dir_free, out_dir)
    manifest = ranks.record(new_manifest(config.model, config.to_dict(), config.seed))
    timings: dict[str, float] = {}

    def networks_and_sync() -> tuple[dict[str, nn.Module], dict[str, Any]]:
        built = metric_networks(config.eval, device)  # before any work: missing weights fail fast
        return built, sync_networks(built, config.eval, None, device)  # the official SyncNet, when provisioned

    networks, manifest["sync"] = ranks.together(networks_and_sync)
    default = Path("runs") / f"{config.model}-{config.preset}-{stamp}"
    run_dir = ranks.on_main(lambda: claim_run_dir(out_dir, manifest) if out_dir is not None
                            else claim_new_run_dir(default, manifest))
    try:
        started = time.perf_counter()
        dataset = ranks.main_first(load_data, config, progress)  # rank 0 generates the synthetic data once
        test_clips = ranks.together(prepare_split, dataset, "test", config.net.image_size, progress)
        has_val = bool(dataset.split("val"))
        timings["data_s"] = time.perf_counter() - started
        manifest["data"] = {"source": config.data.source, "hash": dataset.content_hash, "root": str(dataset.root)}

        started = time.perf_counter()
        expert = None
        if config.eval.sync == "local" or (config.net.sync_weight > 0 and not config.train.sync_expert):
            # The project's own SyncNet expert on the same data, trained and cached once: the lip-sync
            # scorer, and the generator's sync loss when that is on and no expert was named.
            # Keyed on what the expert uses (image size, widths, data, training), not on the generator's losses.
            sync_config = sync_expert_config(config)
            expert, _, manifest["sync_expert"] = ranks.together(obtain_model, sync_config, dataset, None, device,
                                                                progress, ranks)
            if config.net.sync_weight > 0 and not config.train.sync_expert:
                config = replace(config, train=replace(config.train, sync_expert=manifest["sync_expert"]["path"]))
        model, config, manifest["checkpoint"] = ranks.together(
            obtain_model, config, dataset, Path(checkpoint) if checkpoint else None, device, progress, ranks)
        manifest["config"] = config.to_dict()
        if config.eval.sync == "local":
            # eval mode, as `bench score --sync-expert` loads it: the embeddings' BatchNorm then uses its running
            # statistics, so a clip's LSE does not depend on which windows share its batch
            networks["sync"] = expert.eval()
        timings["train_s"] = time.perf_counter() - started
    except BaseException:
        if ranks.is_main:
            release_run_dir(run_dir)  # nothing but the claim was written
        raise
    if ranks.is_main:
        write_json(run_dir / "manifest.json", manifest)

    try:
        started = time.perf_counter()
        result = evaluate_split(model, test_clips, config, device, progress, networks, ranks)
        summary = ranks.on_main(_summary, result, config, dataset)
        floor_summary = None
        if floor and config.model != "copyref":
            floor_model = build_model("copyref", config.net).to(device)
            # The floor skips FID (2048-d matrix square roots cost seconds each on a CPU), FVD and the official
            # SyncNet (3-D conv nets at 224 px).
            cheap = {name: net for name, net in networks.items() if name not in ("fid", "fvd", "sync_official")}
            floor_result = evaluate_split(floor_model, test_clips, config, device, progress, cheap, ranks)
            floor_summary = ranks.on_main(summarise, floor_result, "copyref", config.eval, config.seed)
            summary["floor"] = {"model": "copyref", "metrics": floor_summary["metrics"]}
        val_result = None
        # only its pixels are needed: no metric networks
        if ranks.on_main(lambda: result.has_uncertainty) and has_val:
            val_clips = ranks.together(prepare_split, dataset, "val", config.net.image_size, progress)
            val_result = evaluate_split(model, val_clips, config, device, progress, {}, ranks)
        if ranks.is_main:
            add_recalibration(summary, result, val_result)
        timings["eval_s"] = time.perf_counter() - started
    except BaseException as error:
        if ranks.is_main:
            mark_failed(run_dir, manifest, error)
        raise
    if not ranks.is_main:
        return None
    report_path = finish_run(run_dir, manifest, result, summary, timings, report)
    return RunOutcome(run_dir=run_dir, summary=summary, floor=floor_summary, report=report_path)


def _summary(result: EvalResult, config: RunConfig, dataset: Dataset) -> dict[str, Any]:
    summary = summarise(result, config.model, config.eval, config.seed)
    if dataset.manifest.get("pose_labels"):  # real footage (bench data prepare): estimated, not known, poses
        summary.setdefault("notes", {})["real"] = specs.SUMMARY_NOTES["real"].format(
            how=dataset.manifest["pose_labels"])
    dynamics = dynamics_block(result.frames, config.seed)
    if dynamics:  # data with scene events (synthetic conditions): does u notice them?
        summary["dynamics"] = dynamics
    return summary

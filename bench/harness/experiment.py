"""`bench experiment`: the paper's claims as grids of `bench run`s with paired statistics over seeds.

An experiment is a small TOML file in ``bench/harness/experiments/``: ``description``, ``[[runs]]``
(a label, a model and ``net`` / ``train`` overrides of the preset) and ``[[claims]]``. Every run is made
for every seed (checkpoints are cached as for any `bench run`), into ``OUT/runs/<label>-seed<k>``; a run
whose directory is complete and was made from the same configuration is never redone, so a killed
experiment continues with the runs it lacks. The claims are then tested (``bench.harness.claims``)
and written to ``OUT/experiment.json`` and ``OUT/claims.md``.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import os
import shutil
import tomllib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench.api import capabilities
from bench.config import RunConfig, from_dict, net_key_settings, preset_config
from bench.errors import BenchError
from bench.harness.claims import claims_markdown, evaluate_claims
from bench.metrics.dynamics import CONDITION_BITS
from bench.files import stable_hash, without_legacy, write_json
from bench.models import model_class

log = logging.getLogger(__name__)

EXPERIMENT_DIR = Path(__file__).resolve().parent / "experiments"
CLAIM_KINDS = ("pair", "bins", "threshold", "affected")


class ExperimentError(BenchError, ValueError):
    """An experiment that cannot be loaded or run (one line naming the file)."""


@dataclass(frozen=True)
class RunSpec:
    label: str
    model: str
    net: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Claim:
    """One claim over one or more metrics. ``pair``: run ``better`` beats run ``than`` (in each metric's
    better direction); ``bins``: in run ``run``, the metric is higher in pose bin ``higher`` than in ``than``;
    ``threshold``: in run ``run``, the metric is above ``above[metric]`` (or below ``below[metric]``);
    ``affected``: in run ``run``, the metric is higher on frames showing a scene event than on the same clips'
    other frames. ``condition`` limits a claim to the clips of one scene event (synthetic dynamics)."""

    text: str
    kind: str
    metrics: tuple[str, ...]
    better: str = ""
    than: str = ""
    run: str = ""
    higher: str = ""
    above: dict[str, float] = field(default_factory=dict)
    below: dict[str, float] = field(default_factory=dict)
    condition: str = ""


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    runs: tuple[RunSpec, ...]
    claims: tuple[Claim, ...]
    path: Path
    synth: dict[str, Any] = field(default_factory=dict)  # overrides of the synthetic data's settings


def list_experiments() -> dict[str, str]:
    """name -> description of every declared experiment."""
    return {path.stem: load_experiment(path.stem).description for path in sorted(EXPERIMENT_DIR.glob("*.toml"))}


def load_experiment(name: str) -> Experiment:
    path = EXPERIMENT_DIR / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in EXPERIMENT_DIR.glob("*.toml"))
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ExperimentError(f"unknown experiment '{name}'{hint} (known: {', '.join(known)})")
    try:
        raw = tomllib.loads(path.read_text())
        runs = tuple(RunSpec(**run) for run in raw["runs"])
        claims = tuple(Claim(**{**claim, "metrics": tuple(claim["metrics"])}) for claim in raw["claims"])
        synth = dict(raw.get("synth", {}))
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as error:
        raise ExperimentError(f"{path}: not a valid experiment ({type(error).__name__}: {error})") from None
    experiment = Experiment(name, str(raw.get("description", "")), runs, claims, path, synth)
    _check(experiment)
    return experiment


def _check(experiment: Experiment) -> None:
    from bench.metrics import specs

    labels = [run.label for run in experiment.runs]
    problems = [f"run label '{label}' is used twice" for label in set(labels) if labels.count(label) > 1]
    for claim in experiment.claims:
        if claim.kind not in CLAIM_KINDS:
            problems.append(f"claim '{claim.text}': kind must be one of {', '.join(CLAIM_KINDS)}")
        named = [claim.better, claim.than] if claim.kind == "pair" else [claim.run]
        problems += [f"claim '{claim.text}' names no run '{label}'" for label in named if label not in labels]
        problems += [f"claim '{claim.text}': unknown metric '{m}'" for m in claim.metrics if specs.spec(m) is None]
        if claim.condition and claim.condition not in CONDITION_BITS:
            problems.append(f"claim '{claim.text}': unknown condition '{claim.condition}' "
                            f"(known: {', '.join(CONDITION_BITS)})")
        if claim.kind == "threshold":
            problems += [f"claim '{claim.text}': no threshold for '{m}'" for m in claim.metrics
                         if m not in claim.above and m not in claim.below]
    if problems:
        raise ExperimentError(f"{experiment.path}: {problems[0]}")


def run_config(spec: RunSpec, preset: str, data: str, seed: int, synth: dict[str, Any] | None = None) -> RunConfig:
    """The preset's config for ``spec``'s model and seed with its overrides (``synth``: the experiment's)."""
    config = preset_config(preset, model=spec.model, seed=seed)
    try:
        settings = from_dict(type(config.data.synth), {**dataclasses.asdict(config.data.synth), **(synth or {})})
        config = replace(config, data=replace(config.data, source=data, synth=settings),
                         net=replace(config.net, **spec.net), train=replace(config.train, **spec.train))
    except (TypeError, ValueError) as error:
        raise ExperimentError(f"run '{spec.label}': {error}") from None
    return config


def _key(config: RunConfig) -> str:
    # The code revisions of the run's model and of the lip-sync expert that scores it (bench.api): a finished run
    # made by an earlier revision is redone, so a claim never pairs runs judged by different experts. Revision 0 and
    # no revisions at all are the legacy values: runs made before revisions existed keep their keys.
    names = sorted({config.model, "syncnet"})
    revisions = without_legacy({name: capabilities(model_class(name)).revision for name in names},
                               dict.fromkeys(names, 0))
    settings = {**config.to_dict(), "net": net_key_settings(config.net), "revisions": revisions}
    return stable_hash(without_legacy(settings, {"revisions": {}}), length=16)


def _done(run_dir: Path, key: str) -> bool:
    """A finished run of this very configuration (its results written, recorded by ``_run_cell``)."""
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text())
        marker = json.loads((run_dir / "experiment-cell.json").read_text())
    except (OSError, ValueError):
        return False
    return manifest.get("status") in ("scored", "complete") and marker.get("config_key") == key


def _run_cell(config: dict[str, Any], run_dir: str, key: str, threads: int | None, gpu: int | None) -> str:
    """One grid cell (a top-level function: it runs in worker processes too)."""
    import torch

    from bench.harness.run import run

    if threads:
        torch.set_num_threads(threads)
    if gpu is not None:  # pick_device reads LOCAL_RANK: one GPU per worker
        os.environ["LOCAL_RANK"] = str(gpu)
    path = Path(run_dir)
    if path.exists():  # an unfinished cell of an earlier, killed experiment: it restarts
        shutil.rmtree(path)
    run(from_dict(RunConfig, config), out_dir=path, progress=False, report=None, floor=False)
    write_json(path / "experiment-cell.json", {"config_key": key})
    return run_dir


@dataclass
class Cell:
    label: str
    seed: int
    config: RunConfig
    run_dir: Path
    key: str
    status: str = "planned"  # planned | reused | ran | failed


def plan(experiment: Experiment, preset: str, data: str, seeds: int, out: Path) -> list[Cell]:
    cells = []
    for seed in range(seeds):
        for spec in experiment.runs:
            config = run_config(spec, preset, data, seed, experiment.synth)
            cells.append(Cell(spec.label, seed, config, out / "runs" / f"{spec.label}-seed{seed}", _key(config)))
    return cells


def run_experiment(name: str, preset: str = "quick", data: str = "synth", seeds: int = 3,
                   out: str | Path | None = None, jobs: int = 1) -> dict[str, Any]:
    """Run (or continue) an experiment and test its claims; returns what ``OUT/experiment.json`` holds."""
    experiment = load_experiment(name)
    if seeds < 2:
        raise ExperimentError(f"--seeds {seeds}: a verdict never comes from a single seed; use 2 or more")
    out = Path(out) if out is not None else Path("experiments") / f"{name}-{preset}"
    if out.exists() and not out.is_dir():
        raise ExperimentError(f"{out}: --out is an existing file, not a directory")
    if experiment.synth and data != "synth":
        raise ExperimentError(f"{experiment.path}: this experiment needs the synthetic data it configures "
                              f"({', '.join(experiment.synth)}); run it without --data {data}")
    cells = plan(experiment, preset, data, seeds, out)
    todo = []
    for cell in cells:
        if _done(cell.run_dir, cell.key):
            cell.status = "reused"
        else:
            todo.append(cell)
    log.info("%s: %d run(s), %d already done", name, len(cells), len(cells) - len(todo))
    _run_cells(todo, jobs)
    result = evaluate_claims(experiment, cells)
    result.update(name=name, description=experiment.description, preset=preset, data=data, seeds=seeds,
                  runs=[{"label": c.label, "seed": c.seed, "run_dir": str(c.run_dir), "status": c.status}
                        for c in cells])
    write_json(out / "experiment.json", result)
    (out / "claims.md").write_text(claims_markdown(result))
    return result


def _run_cells(cells: list[Cell], jobs: int) -> None:
    if not cells:
        return
    if jobs <= 1:
        for cell in cells:
            log.info("run %s seed %d -> %s", cell.label, cell.seed, cell.run_dir)
            _run_cell(dataclasses.asdict(cell.config), str(cell.run_dir), cell.key, None, None)
            cell.status = "ran"
        return
    import torch

    gpus = torch.cuda.device_count()
    threads = None if gpus else max(1, (os.cpu_count() or 1) // jobs)
    # spawn: each worker imports torch afresh (a forked parent's threads and CUDA state do not survive a fork)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_run_cell, dataclasses.asdict(cell.config), str(cell.run_dir), cell.key, threads,
                               index % gpus if gpus else None): cell for index, cell in enumerate(cells)}
        failed = []
        for future, cell in futures.items():
            try:
                future.result()
                cell.status = "ran"
            except BaseException as error:  # the other runs go on; the claims that need this one are untestable
                cell.status = "failed"
                failed.append(f"{cell.label} seed {cell.seed}: {type(error).__name__}: {error}")
    if failed:
        raise ExperimentError(f"{len(failed)} run(s) failed (the finished ones are kept; rerun to continue): "
                              f"{failed[0]}")

"""The run directory: one schema that the CLI, notebooks and tests all read.

  manifest.json   config, seed, versions, git sha, data and checkpoint hashes, timings, status
                  ("running" while work is under way, "scored" once results are written and the
                  report is rendering, "complete" once every file is written, "failed" with "error")
  frames.parquet  one row per (clip, frame): ids, pose labels, pose bin, per-frame metrics
  summary.json    {"model", "metrics": {name: {value, ci95, higher_is_better, n}}, "by_pose": {...}}
  curves.npz      sparsification curves: fraction, model_<group>, oracle_<group>
  samples.npz     a few frames per pose bin: gt, pred, error, uncertainty, clip_id, frame, yaw
  report.html     the rendered notebook
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

RUN_FILES = ("manifest.json", "frames.parquet", "summary.json", "curves.npz", "samples.npz", "report.html")
_PACKAGES = ("talkbench", "torch", "numpy", "pandas", "scipy", "pyarrow", "papermill", "nbconvert", "seaborn")


class RunDirError(ValueError):
    pass


def check_run_dir_free(path: str | Path) -> Path:
    """Refuse a directory that already holds files (never overwrite a run)."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise RunDirError(f"{path}: output directory already exists and is not empty; choose another --out")
    return path


def prepare_run_dir(path: str | Path) -> Path:
    """Create a fresh run directory (see ``check_run_dir_free``)."""
    path = check_run_dir_free(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_sha() -> str | None:
    """The source tree's commit (with "-dirty" when it has local changes), or None outside git."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _jsonable(value: Any) -> Any:
    """JSON has no NaN or inf: they become null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(path: str | Path, payload: Any) -> None:
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_jsonable(payload), indent=2, sort_keys=False, allow_nan=False) + "\n")
    tmp.replace(path)


def new_manifest(model: str, config: dict[str, Any], seed: int) -> dict[str, Any]:
    return {
        "status": "running",
        "model": model,
        "config": config,
        "seed": seed,
        "versions": package_versions(),
        "git_sha": git_sha(),
        "data": {},
        "checkpoint": {"path": None, "sha256": None},
        "timings": {},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def mark_failed(run_dir: Path, manifest: dict[str, Any], error: BaseException) -> None:
    manifest.update(status="failed", error=f"{type(error).__name__}: {error}")
    write_json(run_dir / "manifest.json", manifest)


def finish_run(run_dir: Path, manifest: dict[str, Any], result: Any, summary: dict[str, Any],
               timings: dict[str, float], report: bool) -> Path | None:
    """Write the results (an EvalResult), then the report: status "scored", then "complete".

    Any failure marks the manifest "failed" with the error and re-raises; files already written stay.
    Returns the report's path, or None without a report.
    """
    try:
        result.frames.to_parquet(run_dir / "frames.parquet", index=False)
        if result.clips is not None:
            result.clips.to_parquet(run_dir / "clips.parquet", index=False)
        np.savez(run_dir / "curves.npz", fraction=result.fractions, **result.curves)
        if result.samples:
            np.savez(run_dir / "samples.npz", **result.samples)
        write_json(run_dir / "summary.json", summary)
        manifest.update(status="scored", timings=timings)  # results written; the report is the last step
        write_json(run_dir / "manifest.json", manifest)
        report_path = None
        if report:
            from bench.report import render_report

            started = time.perf_counter()
            report_path = render_report(run_dir)
            timings["report_s"] = time.perf_counter() - started
        manifest.update(status="complete", timings=timings)
        write_json(run_dir / "manifest.json", manifest)
        return report_path
    except BaseException as error:
        mark_failed(run_dir, manifest, error)
        raise


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise RunDirError(f"{path}: no summary.json (is this a run directory?)")
    return json.loads(path.read_text())

"""`bench score`'s per-clip partial results in the run directory, and the checks behind `--resume`.

``partial/<clip_id>.npz`` holds one clip's scorer state (``bench.harness.scorer_state``: frame and clip rows,
calibration state, FID features, sample candidates) and its lip-sync record. Each is written as soon
as its clip is scored, to a temporary file renamed into place, so a file that exists is complete and a
failure or a kill loses only the clip under way. The summary is always built from these states, in
clip order, so a resumed run writes the same summary.json as an uninterrupted one. ``--resume`` checks
that the inputs and settings are those the manifest recorded, then scores only the clips still missing.
"""
from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.files import atomic_open, jsonable
from bench.harness.external_inputs import ScoreError
from bench.harness.rundir import check_schema

log = logging.getLogger(__name__)

PARTIAL_DIR = "partial"
MODEL_NAME = "external"
# What must not change between a run and its --resume: manifest entry -> how the refusal names it.
RESUME_CHECKS = {
    "inputs": "the input files (sha256 over them)",
    "clips": "the clips (pairs, frame counts, sizes or rates)",
    "settings": "the settings (input paths, evaluation config)",
    "seed": "--seed",
    "audio": "--audio",
    "sync networks": "the lip-sync networks (--sync-expert, official SyncNet weights)",
    "pose": "the pose estimation (--no-networks)",
}


def partial_path(run_dir: Path, clip_id: str) -> Path:
    return Path(run_dir) / PARTIAL_DIR / f"{clip_id}.npz"


def write_partial(run_dir: Path, clip_id: str, state: dict[str, np.ndarray], sync: dict[str, Any]) -> Path:
    """Save one clip's state and lip-sync record atomically (temporary file, fsync, rename)."""
    path = partial_path(run_dir, clip_id)
    path.parent.mkdir(exist_ok=True)
    record = np.array(json.dumps({"clip_id": clip_id, "sync": jsonable(sync)}))
    with atomic_open(path) as handle:
        np.savez_compressed(handle, clip=record, **state)
    return path


def read_partial(run_dir: Path, clip_id: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """(state, lip-sync record) of a clip scored before, or None when there is no usable file."""
    path = partial_path(run_dir, clip_id)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            state = {key: data[key] for key in data.files}
        record = json.loads(str(state.pop("clip")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        log.warning("%s: unreadable partial result (%s); scoring the clip again", path, error)
        return None
    if record.get("clip_id") != clip_id:
        log.warning("%s: holds clip %r, not %r; scoring the clip again", path, record.get("clip_id"), clip_id)
        return None
    return state, record["sync"]


def has_partials(run_dir: Path) -> bool:
    directory = Path(run_dir) / PARTIAL_DIR
    return directory.is_dir() and any(directory.glob("*.npz"))


def clean_temporary(run_dir: Path) -> None:
    """Remove the temporary files a killed run left (partial results, manifest, report being written)."""
    for directory in (Path(run_dir), Path(run_dir) / PARTIAL_DIR):
        if directory.is_dir():
            for path in directory.glob("*.tmp"):
                if path.is_file():
                    path.unlink(missing_ok=True)


def _recorded(run_dir: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((Path(run_dir) / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def resume_hint(out_dir: Path) -> str:
    """Appended to "not empty" when ``out_dir`` holds an unfinished `bench score` run."""
    manifest = _recorded(out_dir)
    if manifest and manifest.get("model") == MODEL_NAME and manifest.get("status") != "complete":
        return ", or add --resume to continue the unfinished bench score run in it"
    return ""


def check_resumable(run_dir: Path | None) -> dict[str, Any]:
    """The manifest of an unfinished `bench score` run in ``run_dir``; one line otherwise."""
    if run_dir is None:
        raise ScoreError("--resume needs --out DIR: the run directory to continue")
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ScoreError(f"{run_dir}: nothing to resume: no such run directory")
    if not (run_dir / "manifest.json").is_file():
        raise ScoreError(f"{run_dir}: nothing to resume: no manifest.json (not a bench score run directory)")
    manifest = _recorded(run_dir)
    if manifest is None:
        raise ScoreError(f"{run_dir / 'manifest.json'}: unreadable manifest; cannot resume")
    check_schema(manifest, run_dir / "manifest.json")
    if manifest.get("model") != MODEL_NAME:
        raise ScoreError(f"{run_dir}: not a bench score run directory (model {manifest.get('model')!r}); "
                         "cannot resume it")
    if manifest.get("status") == "complete":
        raise ScoreError(f"{run_dir}: the run is already complete; nothing to resume")
    return manifest


def _resume_record(manifest: dict[str, Any]) -> dict[str, Any]:
    data, sync = manifest.get("data") or {}, manifest.get("sync") or {}
    record = {"inputs": data.get("hash"), "clips": data.get("clips"), "settings": manifest.get("config"),
              "seed": manifest.get("seed"), "audio": data.get("audio"),
              "sync networks": {key: sync.get(key) for key in ("official", "local")}, "pose": manifest.get("pose")}
    return json.loads(json.dumps(jsonable(record)))  # as the recorded manifest reads back from JSON


def check_same_run(run_dir: Path, recorded: dict[str, Any], manifest: dict[str, Any]) -> None:
    """Refuse, in one line, to resume with inputs or settings other than the recorded ones."""
    old, new = _resume_record(recorded), _resume_record(manifest)
    for key, what in RESUME_CHECKS.items():
        if old[key] != new[key]:
            raise ScoreError(f"{run_dir}: cannot resume: {what} changed since the run started; "
                             "score into a new --out")

"""The run directory: one schema that the CLI, notebooks and tests all read.

  manifest.json   schema_version (``SCHEMA_VERSION``), config, seed, versions, git sha, data and checkpoint hashes, timings, status
                  ("running" while work is under way; "scored" once every result file is written and
                  the report is rendering; "complete" once the report step has ended, whatever its
                  outcome; "failed" with "error" when the results themselves could not be made) and
                  "report": {"status": "rendered", "path": "report.html"} | {"status": "skipped"}
                  (--no-report) | {"status": "failed", "error": one line, "log": "report_error.log"}.
                  A failed report never fails the run: the results stand, `bench report RUN_DIR`
                  renders it again.
  frames.parquet  one row per (clip, frame): ids, pose labels, pose bin, per-frame metrics
  summary.json    {"model", "metrics": {name: {value, ci95, higher_is_better, n}}, "by_pose": {...}}, and with an
                  uncertainty map "recalibration" (``bench.harness.recalibrate``: maps of u fitted on the val split,
                  or cross-fitted over the test clips, and their scores on the test pixels)
  curves.npz      sparsification curves: fraction, model_<group>, oracle_<group>
  samples.npz     a few frames per pose bin: gt, pred, error, uncertainty, clip_id, frame, yaw
  calibration.npz only with an uncertainty map: the test pixel subsample the pooled and recalibration statistics
                  use, ``u``, ``e`` (float32) and ``frame`` (each pixel's row in frames.parquet)
  worst.npz       the 4 frames with the largest err_mean, then the 4 with the largest unc_mean (with a map):
                  gt, pred, error, uncertainty, clip_id, frame, yaw, by ("error" | "uncertainty"), value (that
                  err_mean / unc_mean), row (in frames.parquet), padded like samples.npz (height, width)
  clip_samples.npz  the scored frame nearest the middle of the best, the median and the worst clip by mean PSNR
                  (capped at 100 dB as in summary.json; ``bench.harness.samples.ClipRanks``): gt, pred, error,
                  uncertainty, clip_id, frame, yaw, rank ("best" | "median" | "worst"), clip_psnr (the clip's
                  mean PSNR), position (its place by mean PSNR, 1 = best), n_clips, clip_frames, padded like
                  samples.npz (height, width); a clip picked twice (fewer than three clips) is listed once
  report.html     the rendered notebook (absent when the report failed or was skipped)
  report_error.log  only after a failed report: the error and the notebook's traceback
"""
from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, TypedDict

import numpy as np

from bench.errors import BenchError
from bench.files import jsonable, write_json

# The run directory's layout version, recorded in every manifest.json. Bump it when a file's meaning or a
# key changes; readers refuse a directory written by a newer talkbench instead of misreading it.
SCHEMA_VERSION = 1
RUN_FILES = ("manifest.json", "frames.parquet", "summary.json", "curves.npz", "samples.npz", "report.html")
_PACKAGES = ("talkbench", "torch", "numpy", "pandas", "scipy", "pyarrow", "papermill", "nbconvert", "matplotlib")


class RunDirError(BenchError, ValueError):
    pass


class RunDirTakenError(RunDirError):
    """The directory holds another run (or another process claimed it first); a default name moves on."""


def check_run_dir_free(path: str | Path, hint: str = "") -> Path:
    """Refuse, without touching anything, an --out that is a file, lies under a file, or holds files.

    ``hint`` is appended to the "not empty" message (e.g. how to continue the run found there).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirTakenError(f"{path}: --out is an existing file, not a directory; choose another --out")
    blocker = next((parent for parent in path.parents if parent.exists()), None)  # nearest existing ancestor
    if blocker is not None and not blocker.is_dir():
        raise RunDirError(f"{path}: cannot create the output directory: {blocker} is a file, not a directory")
    if path.is_dir() and any(path.iterdir()):
        raise RunDirTakenError(f"{path}: output directory already exists and is not empty; choose another --out"
                               f"{hint}")
    return path


def prepare_run_dir(path: str | Path) -> Path:
    """Create a fresh run directory (see ``check_run_dir_free``)."""
    path = check_run_dir_free(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirError(f"{path}: cannot create the output directory ({error.strerror or error})") from None
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
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():  # an installed copy (site-packages): no checkout describes it
        return None
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


class Manifest(TypedDict, total=False):
    """manifest.json, as ``new_manifest`` starts it and the harness fills it in (see the module docstring)."""

    schema_version: int
    status: str  # running | scored | complete | failed
    model: str
    config: dict[str, Any]
    seed: int
    versions: dict[str, str]
    git_sha: str | None
    data: dict[str, Any]
    checkpoint: dict[str, Any] | None
    timings: dict[str, float]
    created: str
    report: dict[str, Any]
    error: str


def new_manifest(model: str, config: dict[str, Any], seed: int) -> Manifest:
    return {
        "schema_version": SCHEMA_VERSION,
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
               timings: dict[str, float], render: Callable[[Path], Path] | None) -> Path | None:
    """Write the results (an EvalResult), then try the report; return the report's path or None.

    ``render`` makes the report (``bench.report.render.render_report``, passed in by the command line, so
    the harness never imports the report layer above it); None skips it.

    Results first: status "scored" once they are written; a failure while writing them marks the run
    "failed" and re-raises (files already written stay). The report comes last and cannot sink the
    run: the status becomes "complete" whatever it does and ``manifest["report"]`` records what
    happened ("rendered", "skipped", or "failed" with the error and a log; see the module docstring).
    A failed report returns None; ``report_failure`` gives the CLI's warning line. An interrupt while
    rendering is recorded the same way, then re-raised.
    """
    try:
        result.frames.to_parquet(run_dir / "frames.parquet", index=False)
        if result.clips is not None:
            result.clips.to_parquet(run_dir / "clips.parquet", index=False)
        np.savez(run_dir / "curves.npz", fraction=result.fractions, **result.curves)
        if result.samples:
            np.savez(run_dir / "samples.npz", **result.samples)
        if result.has_uncertainty and result.subsample is not None:
            u, e, row = result.subsample
            np.savez(run_dir / "calibration.npz", u=np.asarray(u, np.float32), e=np.asarray(e, np.float32),
                     frame=np.asarray(row, np.int64))
        if result.worst:
            np.savez(run_dir / "worst.npz", **result.worst)
        if getattr(result, "clip_samples", None):
            np.savez(run_dir / "clip_samples.npz", **result.clip_samples)
        write_json(run_dir / "summary.json", summary)
        manifest.update(status="scored", timings=timings)  # results written; the report is the last step
        write_json(run_dir / "manifest.json", manifest)
    except BaseException as error:
        mark_failed(run_dir, manifest, error)
        raise
    report_path, interrupted = None, None
    manifest["report"] = {"status": "skipped"}
    if render is not None:
        started = time.perf_counter()
        try:
            report_path = render(run_dir)
            manifest["report"] = {"status": "rendered", "path": report_path.name}
        except BaseException as error:  # rendering never decides whether the measurements exist
            manifest["report"] = report_failed(run_dir, error)
            interrupted = None if isinstance(error, Exception) else error
        timings["report_s"] = time.perf_counter() - started
    manifest.update(status="complete", timings=timings)
    write_json(run_dir / "manifest.json", manifest)
    if interrupted is not None:
        raise interrupted
    return report_path


def check_schema(manifest: dict[str, Any], path: Path) -> None:
    """Refuse a run directory a newer talkbench wrote (an older one, without schema_version, is version 0)."""
    version = manifest.get("schema_version", 0)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise RunDirError(f"{path}: schema_version {version!r} is newer than this talkbench reads "
                          f"({SCHEMA_VERSION}); upgrade talkbench to read it")


def read_manifest(run_dir: str | Path) -> Manifest:
    """A run directory's manifest.json, checked to be a JSON object of a schema this version reads."""
    path = Path(run_dir) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path}: no manifest.json (is this a run directory?)") from None
    except (OSError, ValueError) as error:
        raise RunDirError(f"{path}: unreadable manifest ({error})") from None
    if not isinstance(manifest, dict):
        raise RunDirError(f"{path}: the manifest is not a JSON object")
    check_schema(manifest, path)
    return manifest


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise RunDirError(f"{path}: no summary.json (is this a run directory?)")
    return json.loads(path.read_text())


# ---------------------------------------------------------------- claiming a run directory up front
_HELD_LOCKS: dict[Path, int] = {}  # run directory -> open descriptor holding its flock
_CREATED: dict[Path, list[Path]] = {}  # claimed run directory -> the directories its claim created


def lock_run_dir(path: str | Path) -> None:
    """Hold an exclusive advisory lock (flock) on a run directory until ``unlock_run_dir``.

    The kernel drops the lock when the process dies, so a killed run can be resumed while a live one
    cannot get a second writer. Without flock (Windows) there is no such protection.
    """
    try:
        import fcntl
    except ImportError:
        return
    key = Path(path).resolve()
    if key in _HELD_LOCKS:
        return
    fd = os.open(key, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise RunDirTakenError(f"{path}: another bench process is writing into this run directory") from None
    _HELD_LOCKS[key] = fd


def unlock_run_dir(path: str | Path) -> None:
    fd = _HELD_LOCKS.pop(Path(path).resolve(), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor releases the flock


def claim_run_dir(path: str | Path, manifest: dict[str, Any], hint: str = "", lock: bool = False) -> Path:
    """Make ``path`` this run's directory before any work: create it (or take it while empty) and create
    manifest.json there exclusively (O_EXCL) holding ``manifest``, so that of two runs started on one path
    exactly one wins and the other learns it at once (RunDirTakenError). ``lock``: also ``lock_run_dir``.
    """
    path = check_run_dir_free(path, hint)
    created = [parent for parent in [*reversed(path.parents), path] if not parent.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # became a file meanwhile
        raise RunDirTakenError(f"{path}: --out is an existing file, not a directory; choose another --out") from None
    except OSError as error:
        raise RunDirError(f"{path}: cannot create the output directory ({error.strerror or error})") from None
    if lock:
        lock_run_dir(path)
    try:
        fd = os.open(path / "manifest.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as error:
        unlock_run_dir(path)
        if isinstance(error, FileExistsError):
            raise RunDirTakenError(f"{path}: another run claimed this output directory first; "
                                   "choose another --out") from None
        raise RunDirError(f"{path}: cannot write into the output directory ({error.strerror or error})") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(jsonable(manifest), indent=2, allow_nan=False) + "\n")
    _CREATED[path.resolve()] = created
    return path


def claim_new_run_dir(base: str | Path, manifest: dict[str, Any], lock: bool = False) -> Path:
    """``claim_run_dir`` on ``base``, else on ``base-2``, ``base-3``, ...: a default name is never refused for
    being taken (two runs started in the same second get two directories)."""
    base = Path(base)
    for number in itertools.count(1):
        path = base if number == 1 else base.with_name(f"{base.name}-{number}")
        try:
            return claim_run_dir(path, manifest, lock=lock)
        except RunDirTakenError:
            continue
    raise AssertionError("unreachable")


def release_run_dir(path: str | Path) -> None:
    """Undo ``claim_run_dir`` for a run that failed before writing anything but its manifest: unlock, remove
    the manifest and the directories the claim created (anything else found there stays)."""
    path = Path(path)
    unlock_run_dir(path)
    created = _CREATED.pop(path.resolve(), [path])
    try:
        if {child.name for child in path.iterdir()} <= {"manifest.json"}:
            (path / "manifest.json").unlink(missing_ok=True)
            for directory in reversed(created):
                directory.rmdir()
    except OSError:
        pass  # not empty (another process wrote there) or already gone: leave it


REPORT_LOG = "report_error.log"


def _one_line(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    # ReportError messages already say what failed; anything else (an import, a bug) gets its type.
    return text if type(error).__name__ == "ReportError" and text else f"{type(error).__name__}: {text}".rstrip(": ")


def report_failed(run_dir: Path, error: BaseException) -> dict[str, Any]:
    """The manifest's "report" entry for a failed render; the full traceback goes to report_error.log."""
    import traceback

    message = _one_line(error)
    entry: dict[str, Any] = {"status": "failed", "error": message}
    detail = getattr(error, "detail", "") or "".join(traceback.format_exception(error))
    try:
        (run_dir / REPORT_LOG).write_text(f"{message}\n\n{detail.rstrip()}\n", encoding="utf-8")
        entry["log"] = REPORT_LOG
    except OSError:  # a full disk must not hide the error itself, which is in the manifest
        pass
    return entry


def report_failure(run_dir: str | Path) -> str | None:
    """The warning line for a run whose report failed (from its manifest), or None."""
    run_dir = Path(run_dir)
    try:
        entry = json.loads((run_dir / "manifest.json").read_text()).get("report") or {}
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(entry, dict) or entry.get("status") != "failed":
        return None
    details = f"; details in {run_dir / entry['log']}" if entry.get("log") else ""
    return (f"report: FAILED ({entry.get('error') or 'unknown error'}); results are in {run_dir}{details}; "
            f"rerun with `bench report {run_dir}`")

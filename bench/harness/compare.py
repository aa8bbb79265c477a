"""`bench compare RUN_A RUN_B`: per metric and pose bin, is B better than A beyond clip noise?

Only frames present in both runs (same clip_id and frame) are compared. For each numeric per-frame
column of frames.parquet (capped as in summary.json: every psnr* column at 100 dB) and each pose bin
("all" and the bins that occur, by run A's labels), ``bench.metrics.stats.paired_bootstrap`` gives the
mean of per-clip means for A and B, the difference B - A, its 95% percentile CI and a two-sided p-value,
all by resampling the shared clips. Direction, order and caps come from ``bench.metrics.specs``; a column
the table does not know is still compared, with summary.json's higher_is_better when it has one.
Metrics with no better direction (unc_mean) name no winner.
Runs are refused unless both manifests say their results were written (status "scored" or "complete")
and both are on the same data (manifest data hash; for `bench score` runs, the ground truth).
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.config import POSE_BINS
from bench.errors import BenchError
from bench.harness.rundir import check_schema
from bench.metrics import specs
from bench.metrics.stats import paired_bootstrap

log = logging.getLogger(__name__)

ALPHA = 0.05
NON_METRICS = frozenset({"clip_id", "frame", "pose_bin", "identity", "stratum", "yaw", "pitch", "roll"})


class CompareError(BenchError, ValueError):
    """A run directory that cannot be compared; the message is one line naming the file."""


COMPARABLE = ("scored", "complete")  # bench.harness.rundir: results written (report pending, or done)


def _read_manifest(run: Path) -> dict:
    """The run's manifest.json, refused unless its status says the results were written."""
    path = run / "manifest.json"
    if not path.is_file():
        raise CompareError(f"{path}: missing; without it there is no telling whether the run finished "
                           "or what data it was on")
    manifest = _json_object(path)
    check_schema(manifest, path)
    status = manifest.get("status")
    if status not in COMPARABLE:
        why = {"running": " (still running, or stopped before writing its results)",
               "failed": f" ({str(manifest.get('error', 'no error recorded')).splitlines()[0][:200]})"}.get(status, "")
        raise CompareError(f"{path}: status is {status!r}{why}; only runs with status "
                           f"{' or '.join(repr(s) for s in COMPARABLE)} are compared")
    return manifest


def _data_identity(manifest: dict) -> tuple[str, str | None]:
    """(what identifies the evaluated data, its value): the dataset hash, or for `bench score` runs (whose
    hash also covers the predictions) the ground truth's hash when recorded."""
    data = manifest.get("data") if isinstance(manifest.get("data"), dict) else {}
    if data.get("source") == "external":
        return "ground-truth hash", data.get("gt_hash")
    return "data hash", data.get("hash")


def _check_same_data(run_a: Path, manifest_a: dict, run_b: Path, manifest_b: dict) -> None:
    """Refuse runs on different data: shared clip ids would pair unrelated clips into a confident answer."""
    (kind_a, a), (kind_b, b) = _data_identity(manifest_a), _data_identity(manifest_b)
    if kind_a == kind_b == "ground-truth hash" and (a is None or b is None):
        _check_same_ground_truth(run_a, manifest_a, run_b, manifest_b)
        return
    if a is None or b is None:
        path = (run_a if a is None else run_b) / "manifest.json"
        raise CompareError(f"{path}: records no {kind_a if a is None else kind_b}, so the runs cannot be shown to "
                           "be on the same data; pass --allow-different-data to compare anyway")
    if kind_a != kind_b or a != b:
        raise CompareError(f"{run_a / 'manifest.json'} and {run_b / 'manifest.json'}: the runs are on different "
                           f"data ({kind_a} {a} != {kind_b} {b}); pass --allow-different-data to compare anyway")


def _check_same_ground_truth(run_a: Path, manifest_a: dict, run_b: Path, manifest_b: dict) -> None:
    """`bench score` runs without a ground-truth hash: the shared clips must name the same ground-truth files."""
    def truth(manifest: dict) -> dict[str, tuple]:
        clips = manifest["data"].get("clips") or []
        return {str(c.get("clip_id")): (c.get("gt"), c.get("n_frames")) for c in clips if isinstance(c, dict)}
    a, b = truth(manifest_a), truth(manifest_b)
    differ = sorted(k for k in a.keys() & b.keys() if a[k] != b[k])
    if differ:
        raise CompareError(f"{run_a / 'manifest.json'} and {run_b / 'manifest.json'}: clip {differ[0]!r} was scored "
                           f"against different ground truth ({a[differ[0]][0]} vs {b[differ[0]][0]}); "
                           "pass --allow-different-data to compare anyway")
    log.warning("%s and %s record no ground-truth hash; checked only that shared clips name the same "
                "ground-truth files", run_a, run_b)


def _load(run: Path) -> tuple[pd.DataFrame, dict]:
    if not run.is_dir():
        raise CompareError(f"{run}: {'not a directory' if run.exists() else 'no such directory'}; "
                           "bench compare takes two run directories")
    frames_path, summary_path = run / "frames.parquet", run / "summary.json"
    for path in (frames_path, summary_path):
        if not path.is_file():
            raise CompareError(f"{path}: missing; a run directory needs frames.parquet and summary.json")
    try:
        frames = pd.read_parquet(frames_path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise CompareError(f"{frames_path}: unreadable parquet ({type(exc).__name__})") from exc
    missing = {"clip_id", "frame"} - set(frames.columns)
    if missing:
        raise CompareError(f"{frames_path}: lacks column(s) {', '.join(sorted(missing))}")
    return frames, _json_object(summary_path)


def _json_object(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CompareError(f"{path}: unreadable JSON ({type(exc).__name__})") from exc
    if not isinstance(value, dict):
        raise CompareError(f"{path}: expected a JSON object")
    return value


def _direction(name: str, *summaries: dict) -> bool | None:
    """The table's direction; for a column it does not know, the first summary.json that states one."""
    row = specs.spec(name)
    if row is not None:
        return row.higher_is_better
    for summary in summaries:
        entry = (summary.get("metrics") or {}).get(name)
        if isinstance(entry, dict) and isinstance(entry.get("higher_is_better"), bool):
            return entry["higher_is_better"]
    return None


def _metric_columns(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    def numeric(df: pd.DataFrame) -> set[str]:
        return {c for c in df.columns if c not in NON_METRICS and pd.api.types.is_numeric_dtype(df[c])
                and not pd.api.types.is_bool_dtype(df[c])}
    shared = numeric(a) & numeric(b)
    return sorted(shared, key=specs.sort_key)


def _keyed(frames: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = frames[columns].copy()
    out["clip_id"] = out["clip_id"].astype(str)
    out["frame"] = out["frame"].astype(np.int64)
    return out.drop_duplicates(["clip_id", "frame"], keep="first")


def _better(diff: float, higher: bool | None) -> str:
    if higher is None or not math.isfinite(diff):
        return ""
    if diff == 0:
        return "tie"
    return "B" if (diff > 0) == higher else "A"


def compare_runs(run_a: Path, run_b: Path, resamples: int = 2000, seed: int = 0,
                 allow_different_data: bool = False) -> pd.DataFrame:
    """One row per (metric, pose_bin): mean_a, mean_b, diff (B - A), ci_low, ci_high, p_value, better.

    Both runs must have finished writing their results (manifest status "scored" or "complete") and,
    unless ``allow_different_data``, be on the same data (CompareError otherwise).
    ``df.attrs`` holds the run paths, model names and frame counts (shared and per run).
    """
    if resamples < 1:
        raise CompareError(f"--resamples must be at least 1, got {resamples}")
    run_a, run_b = Path(run_a), Path(run_b)
    frames_a, summary_a = _load(run_a)
    frames_b, summary_b = _load(run_b)
    manifest_a, manifest_b = _read_manifest(run_a), _read_manifest(run_b)
    if allow_different_data:
        log.warning("comparing without checking that %s and %s are on the same data", run_a, run_b)
    else:
        _check_same_data(run_a, manifest_a, run_b, manifest_b)
    metrics = _metric_columns(frames_a, frames_b)
    pose_source = frames_a if "pose_bin" in frames_a.columns else frames_b
    keys = ["clip_id", "frame"]
    a = _keyed(frames_a, keys + metrics + (["pose_bin"] if pose_source is frames_a else []))
    b = _keyed(frames_b, keys + metrics + (["pose_bin"] if pose_source is frames_b else []))
    merged = a.merge(b, on=keys, suffixes=("_a", "_b"), validate="one_to_one")
    if merged.empty:
        raise CompareError(f"{run_a / 'frames.parquet'} and {run_b / 'frames.parquet'}: no (clip_id, frame) in common")
    n_clips = merged["clip_id"].nunique()
    log.info("comparing %d frames in %d clips present in both runs (A has %d frames, B %d)",
             len(merged), n_clips, len(frames_a), len(frames_b))
    groups = ["all"]
    if "pose_bin" in merged.columns:
        groups += [name for name, _, _ in POSE_BINS if (merged["pose_bin"] == name).any()]
    rows = []
    for name in metrics:
        higher = _direction(name, summary_a, summary_b)
        va = merged[f"{name}_a"].to_numpy(dtype=np.float64)
        vb = merged[f"{name}_b"].to_numpy(dtype=np.float64)
        row = specs.spec(name)
        if row is not None and row.cap is not None:  # as summary.json: identical frames (PSNR inf) count as the cap
            va, vb = np.minimum(va, row.cap), np.minimum(vb, row.cap)
        for group in groups:
            mask = np.ones(len(merged), bool) if group == "all" else (merged["pose_bin"] == group).to_numpy()
            res = paired_bootstrap(va[mask], vb[mask], merged["clip_id"].to_numpy()[mask], resamples, seed)
            better = _better(res.diff, higher)
            rows.append({
                "metric": name, "pose_bin": group, "higher_is_better": higher, "n_clips": res.n_clips,
                "n_frames": res.n_frames, "mean_a": res.mean_a, "mean_b": res.mean_b, "diff": res.diff,
                "ci_low": res.low, "ci_high": res.high, "p_value": res.p_value, "better": better,
                "significant": bool(better in ("A", "B") and res.p_value < ALPHA),
            })
    df = pd.DataFrame(rows)
    df.attrs.update(run_a=str(run_a), run_b=str(run_b), model_a=str(summary_a.get("model", run_a.name)),
                    model_b=str(summary_b.get("model", run_b.name)), n_frames_shared=int(len(merged)),
                    n_clips_shared=int(n_clips), n_frames_a=int(len(frames_a)), n_frames_b=int(len(frames_b)),
                    resamples=int(resamples), alpha=ALPHA)
    return df


def _num(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:.4g}" if x != 0 else "0"


def _p(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def format_comparison(df: pd.DataFrame) -> str:
    """A readable table: ↑/↓ the better direction, * a difference with p < 0.05."""
    at = df.attrs
    head = [f"A = {at.get('model_a', 'A')} ({at.get('run_a', '?')})   B = {at.get('model_b', 'B')} ({at.get('run_b', '?')})"]
    if "n_frames_shared" in at:
        head.append(f"{at['n_frames_shared']} frames in {at['n_clips_shared']} clips present in both runs "
                    f"(A has {at['n_frames_a']} frames, B {at['n_frames_b']})")
    table = [("metric", "pose", "A", "B", "B-A", "95% CI", "p", "better")]
    for row in df.itertuples(index=False):
        arrow = {True: "↑", False: "↓"}.get(row.higher_is_better, "·")
        ci = f"[{_num(row.ci_low)}, {_num(row.ci_high)}]" if math.isfinite(row.ci_low) else "—"
        better = (row.better or "—") + (" *" if row.significant else "")
        table.append((f"{row.metric} {arrow}", row.pose_bin, _num(row.mean_a), _num(row.mean_b),
                      _num(row.diff), ci, _p(row.p_value), better))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(w) if i < 2 or i == 7 else cell.rjust(w) for i, (cell, w)
                       in enumerate(zip(r, widths))).rstrip() for r in table]
    foot = (f"↑ higher is better, ↓ lower is better, · no better direction; * p < {at.get('alpha', ALPHA)} "
            f"(paired clip bootstrap, {at.get('resamples', '?')} resamples); A, B and B-A are means of per-clip means")
    return "\n".join(head + [""] + lines + ["", foot])

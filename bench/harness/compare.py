"""`bench compare RUN_DIR RUN_DIR...`: per metric level and pose bin, is each run better than a baseline run
beyond clip noise?

Every run is paired with the baseline (default: the first) on what both scored, at each metric level of
``bench.metrics.specs`` (the statistics are in ``bench.harness.compare_stats``):

* frame level: each numeric frames.parquet column (capped as in summary.json: every psnr* at 100 dB) over
  the (clip_id, frame) rows both runs hold; ``paired_bootstrap`` gives the mean of per-clip means for
  both, the difference B - A (B the run, A the baseline), its 95% percentile CI and a two-sided p-value,
  by resampling the shared clips;
* clip level: each numeric clips.parquet column (lse_c, lse_d, lse_c_local, ...), the same bootstrap;
* set level: the per-frame quality indicators recomputed on the shared frames, the difference bootstrapped
  over clips; what has no per-clip data in a run directory (FID, the pooled pixel statistics) is the
  difference of summary.json's values with no CI ("summary values: no CI").

Rows come per pose bin too ("all" and the bins that occur, by the baseline's labels). Direction, order
and caps come from ``bench.metrics.specs``; a column the table does not know is still compared, with
summary.json's higher_is_better when it has one. Metrics with no better direction (unc_mean) name no
winner. Runs are refused unless every manifest says its results were written (status "scored" or
"complete") and every run is on the baseline's data (manifest data hash; for `bench score` runs, the
ground truth).
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.config import POSE_BINS
from bench.errors import BenchError
from bench.harness import compare_stats as cs
from bench.harness.compare_stats import ALPHA, NON_METRICS
from bench.harness.compare_text import format_comparison, format_comparisons
from bench.harness.rundir import check_schema
from bench.metrics import specs

log = logging.getLogger(__name__)

__all__ = ["ALPHA", "NON_METRICS", "CompareError", "Comparison", "RunData", "compare", "compare_runs",
           "floor_failures", "format_comparison", "format_comparisons", "load_run", "shared_samples",
           "summary_values"]

FLOOR_MODELS = ("copyref", "pasteref")  # baselines/copyref.py: the floors every generator must beat
FLOOR_GROUPS = ("image quality", "lip sync")  # what a floor can be beaten on
# Reference-free sharpness: the copy floor shows a real frame, so its CPBD is the data's own, a ceiling, not a floor
FLOOR_EXEMPT = ("cpbd",)
BINS = tuple(name for name, _, _ in POSE_BINS)


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
    # a clip scored without ground truth (`bench score` with no --gt) names none: paired by name only
    shared = [k for k in a.keys() & b.keys() if a[k][0] is not None and b[k][0] is not None]
    differ = sorted(k for k in shared if a[k] != b[k])
    if differ:
        raise CompareError(f"{run_a / 'manifest.json'} and {run_b / 'manifest.json'}: clip {differ[0]!r} was scored "
                           f"against different ground truth ({a[differ[0]][0]} vs {b[differ[0]][0]}); "
                           "pass --allow-different-data to compare anyway")
    log.warning("%s and %s record no ground-truth hash; checked only that shared clips name the same "
                "ground-truth files (clips scored without ground truth are paired by name only)", run_a, run_b)


def _load(run: Path) -> tuple[pd.DataFrame, dict]:
    if not run.is_dir():
        raise CompareError(f"{run}: {'not a directory' if run.exists() else 'no such directory'}; "
                           "bench compare takes run directories")
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


@dataclass
class RunData:
    """One run directory, read and checked: what a comparison needs of it."""

    path: Path
    model: str
    manifest: dict
    summary: dict
    frames: pd.DataFrame = field(repr=False)
    clips: pd.DataFrame | None = field(default=None, repr=False)
    label: str = ""  # the model name, made unique among the compared runs

    @property
    def is_floor(self) -> bool:
        return self.model in FLOOR_MODELS

    @property
    def preset(self) -> str | None:
        config = self.manifest.get("config")
        return str(config["preset"]) if isinstance(config, dict) and config.get("preset") is not None else None


def load_run(run: str | Path) -> RunData:
    """Read a run directory for comparison (CompareError, one line naming the file, when it cannot be)."""
    run = Path(run)
    frames, summary = _load(run)
    manifest = _read_manifest(run)
    clips = None
    if (run / "clips.parquet").is_file():
        try:
            clips = pd.read_parquet(run / "clips.parquet")
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise CompareError(f"{run / 'clips.parquet'}: unreadable parquet ({type(exc).__name__})") from exc
        if "clip_id" not in clips.columns:
            raise CompareError(f"{run / 'clips.parquet'}: lacks column clip_id")
    model = str(summary.get("model") or manifest.get("model") or run.name)
    return RunData(run, model, manifest, summary, frames, clips, model)


def _label(runs: list[RunData]) -> None:
    """Model names as labels; runs of the same model are told apart by their directory (then a number)."""
    counts = pd.Series([r.model for r in runs]).value_counts()
    for r in runs:
        r.label = r.model if counts[r.model] == 1 else f"{r.model} ({r.path.name})"
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.label] = seen.get(r.label, 0) + 1
        if seen[r.label] > 1:
            r.label = f"{r.label} #{seen[r.label]}"


def _keyed(frames: pd.DataFrame, columns: list[str], keys: list[str]) -> pd.DataFrame:
    out = frames[columns].copy()
    out["clip_id"] = out["clip_id"].astype(str)
    if "frame" in keys:
        out["frame"] = out["frame"].astype(np.int64)
    if "pose_bin" in out.columns:
        out["pose_bin"] = out["pose_bin"].astype(str)
    return out.drop_duplicates(keys, keep="first")


def _merge(a: pd.DataFrame, b: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame:
    """Rows both tables hold, ``<metric>_a`` / ``<metric>_b``; the pose bin is the baseline's (b's if a has none)."""
    pose_a = "pose_bin" in a.columns
    left = _keyed(a, keys + metrics + (["pose_bin"] if pose_a else []), keys)
    right = _keyed(b, keys + metrics + (["pose_bin"] if not pose_a and "pose_bin" in b.columns else []), keys)
    return left.merge(right, on=keys, suffixes=("_a", "_b"), validate="one_to_one")


def _order(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df
    rank = {b: i for i, b in enumerate(("all",) + BINS)}
    keys = df["metric"].map(specs.sort_key).tolist()
    df = df.assign(_m=[k[0] for k in keys], _n=[k[1] for k in keys],
                   _p=df["pose_bin"].map(lambda b: rank.get(b, len(rank))))
    return df.sort_values(["_m", "_n", "_p"], kind="stable").drop(columns=["_m", "_n", "_p"]).reset_index(drop=True)


def compare_pair(base: RunData, run: RunData, resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (metric, pose_bin) at every level: ``compare_stats.ROW_KEYS``; a = ``base``, b = ``run``.

    ``df.attrs`` holds the frame counts (shared and per run) and the clips shared.
    """
    def direction(name: str) -> bool | None:
        return _direction(name, base.summary, run.summary)

    keys = ["clip_id", "frame"]
    frame_metrics = sorted(cs.numeric_columns(base.frames) & cs.numeric_columns(run.frames), key=specs.sort_key)
    merged = _merge(base.frames, run.frames, keys, frame_metrics)
    if merged.empty:
        raise CompareError(f"{base.path / 'frames.parquet'} and {run.path / 'frames.parquet'}: "
                           "no (clip_id, frame) in common")
    log.info("%s vs %s: %d frames in %d clips present in both runs (%d and %d frames)", run.label, base.label,
             len(merged), merged["clip_id"].nunique(), len(base.frames), len(run.frames))
    rows = cs.paired_rows(merged, frame_metrics, "frame", "per-clip means of frames", BINS, direction,
                          resamples, seed)
    done = set(frame_metrics)
    if base.clips is not None and run.clips is not None:
        clip_metrics = sorted((cs.numeric_columns(base.clips) & cs.numeric_columns(run.clips)) - done,
                              key=specs.sort_key)
        clips = _merge(base.clips, run.clips, ["clip_id"], clip_metrics)
        if len(clips) and clip_metrics:
            rows += cs.paired_rows(clips, clip_metrics, "clip", "clips", BINS, direction, resamples, seed)
            done |= set(clip_metrics)
    reported = set(base.summary.get("metrics") or {}) & set(run.summary.get("metrics") or {})
    recomputable = [n for n, (needs, _) in cs.SET_FROM_FRAMES.items()
                    if n in reported and n not in done and set(needs) <= set(frame_metrics)]
    rows += cs.set_rows(merged, recomputable, BINS, resamples, seed)
    done |= set(recomputable)
    rows += cs.summary_rows(base.summary, run.summary, sorted(reported - done, key=specs.sort_key), BINS, direction)
    df = _order(pd.DataFrame(rows, columns=list(cs.ROW_KEYS)))
    df.attrs.update(n_frames_shared=int(len(merged)), n_clips_shared=int(merged["clip_id"].nunique()),
                    n_frames_a=int(len(base.frames)), n_frames_b=int(len(run.frames)))
    return df


@dataclass
class Comparison:
    """N runs against a baseline: ``diffs`` has one row per (run, metric, pose_bin), columns ``run`` (the
    label), ``model`` and ``compare_stats.ROW_KEYS`` (a = the baseline)."""

    runs: list[RunData]
    baseline: RunData
    diffs: pd.DataFrame
    resamples: int
    seed: int

    def pair(self, label: str) -> pd.DataFrame:
        """The rows of one run against the baseline, with the attrs ``format_comparison`` prints."""
        run = next(r for r in self.runs if r.label == label)
        df = self.diffs[self.diffs["run"] == label].drop(columns=["run", "model"]).reset_index(drop=True)
        df.attrs.update(self.diffs.attrs.get("pairs", {}).get(label, {}), run_a=str(self.baseline.path),
                        run_b=str(run.path), model_a=self.baseline.label, model_b=run.label,
                        resamples=self.resamples, alpha=ALPHA)
        return df


def _pick_baseline(runs: list[Path], baseline: str | Path | None) -> tuple[list[Path], Path]:
    if baseline is None:
        return runs, runs[0]
    wanted = Path(baseline)
    for run in runs:
        if run == wanted or (run.exists() and wanted.exists() and run.resolve() == wanted.resolve()):
            return runs, run
    if wanted.exists() or len(wanted.parts) > 1:
        return [wanted, *runs], wanted  # a run directory not in the list: compare against it too
    raise CompareError(f"--baseline {baseline}: not one of the compared run directories")


def compare(runs: list[str | Path], baseline: str | Path | None = None, resamples: int = 2000, seed: int = 0,
            allow_different_data: bool = False) -> Comparison:
    """Paired differences of every run against the baseline run (default: the first).

    Every run must have finished writing its results and, unless ``allow_different_data``, be on the
    baseline's data (CompareError otherwise). ``baseline``: one of ``runs`` (a path), or another run
    directory, compared against as well.
    """
    if resamples < 1:
        raise CompareError(f"--resamples must be at least 1, got {resamples}")
    paths, base_path = _pick_baseline([Path(r) for r in runs], baseline)
    if len(paths) < 2:
        raise CompareError("bench compare needs at least two run directories")
    loaded = [load_run(p) for p in paths]
    _label(loaded)
    base = loaded[paths.index(base_path)]
    others = [r for r in loaded if r is not base]
    for run in others:
        if allow_different_data:
            log.warning("comparing without checking that %s and %s are on the same data", base.path, run.path)
        else:
            _check_same_data(base.path, base.manifest, run.path, run.manifest)
    frames, pairs = [], {}
    for run in others:
        df = compare_pair(base, run, resamples, seed)
        pairs[run.label] = dict(df.attrs)
        frames.append(df.assign(run=run.label, model=run.model))
    diffs = pd.concat(frames, ignore_index=True)
    diffs = diffs[["run", "model", *cs.ROW_KEYS]]
    diffs.attrs.update(pairs=pairs, baseline=base.label, resamples=int(resamples), alpha=ALPHA)
    return Comparison(loaded, base, diffs, resamples, seed)


def compare_runs(run_a: Path, run_b: Path, resamples: int = 2000, seed: int = 0,
                 allow_different_data: bool = False) -> pd.DataFrame:
    """Two runs: one row per (metric, pose_bin): mean_a, mean_b, diff (B - A), ci_low, ci_high, p_value,
    better ("A", "B", "tie" or "" without a direction), significant, level and basis.

    ``df.attrs`` holds the run paths, model names and frame counts (shared and per run).
    """
    result = compare([run_a, run_b], resamples=resamples, seed=seed, allow_different_data=allow_different_data)
    return result.pair(result.runs[1].label)


def floor_failures(runs: list[RunData]) -> dict[str, dict[str, str]]:
    """{run label: {metric: the floor it does not beat}} from summary.json's overall values.

    Floors: the compared copyref / pasteref runs and each run's own summary.json "floor" entry (copyref
    on the same clips). A run "does not beat" a floor when its value is not strictly better. Only image
    quality and lip sync count: a floor's uncertainty map is a constant placeholder, nothing to beat.
    """
    floors: list[tuple[str, dict]] = [(r.label, r.summary.get("metrics") or {}) for r in runs if r.is_floor]
    out: dict[str, dict[str, str]] = {}
    for run in runs:
        if run.is_floor:
            continue
        own = run.summary.get("floor")
        candidates = list(floors)
        if isinstance(own, dict) and isinstance(own.get("metrics"), dict):
            candidates.append((f"{own.get('model') or 'floor'} (this run's floor)", own["metrics"]))
        for name in run.summary.get("metrics") or {}:
            higher = _direction(name, run.summary)
            value = cs._value(run.summary.get("metrics"), name)
            row = specs.spec(name)
            if row is None or row.group not in FLOOR_GROUPS or name in FLOOR_EXEMPT or higher is None \
                    or not math.isfinite(value):
                continue
            for floor_label, metrics in candidates:
                floor = cs._value(metrics, name)
                if math.isfinite(floor) and not (value > floor if higher else value < floor):
                    out.setdefault(run.label, {})[name] = floor_label
                    break
    return out


def summary_values(runs: list[RunData]) -> pd.DataFrame:
    """summary.json's values of every run, long: run, model, metric, pose_bin ("all" or a bin), value,
    ci_low, ci_high, n, is_floor; in table order (nothing recomputed)."""
    rows = []
    for run in runs:
        blocks = [("all", run.summary.get("metrics") or {})]
        by_pose = run.summary.get("by_pose") or {}
        blocks += [(b, by_pose[b]) for b in BINS if isinstance(by_pose.get(b), dict)]
        for group, block in blocks:
            for name, entry in block.items():
                entry = entry if isinstance(entry, dict) else {"value": entry}
                ci = entry.get("ci95") if isinstance(entry.get("ci95"), (list, tuple)) else (None, None)
                rows.append({"run": run.label, "model": run.model, "metric": name, "pose_bin": group,
                             "value": cs._value(block, name), "ci_low": _float(ci[0]), "ci_high": _float(ci[1]),
                             "n": entry.get("n"), "is_floor": run.is_floor})
    df = pd.DataFrame(rows, columns=["run", "model", "metric", "pose_bin", "value", "ci_low", "ci_high", "n",
                                     "is_floor"])
    return _order(df) if len(df) else df


def _float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def shared_samples(runs: list[RunData], limit: int = 3) -> list[dict[str, Any]]:
    """The same frames from every run's samples.npz: up to ``limit`` (clip_id, frame) every run stored
    (one per pose bin first), each {"clip_id", "frame", "yaw", "gt", "preds": {label: image or None}}.

    A run without samples.npz (or without that frame) has None; with no frame shared by all, the frames
    the most runs share are taken.
    """
    stored: dict[str, dict[tuple[str, int], dict[str, Any]]] = {}
    for run in runs:
        stored[run.label] = {}
        path = run.path / "samples.npz"
        if not path.is_file():
            continue
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as exc:  # a damaged file costs that run its samples, not the report
            log.warning("%s: unreadable (%s); its samples are left out", path, type(exc).__name__)
            continue
        for i in range(len(arrays.get("pred", []))):
            h = int(arrays["height"][i]) if "height" in arrays else None
            w = int(arrays["width"][i]) if "width" in arrays else None
            key = (str(arrays["clip_id"][i]), int(arrays["frame"][i])) if "clip_id" in arrays else ("?", i)
            stored[run.label][key] = {"pred": arrays["pred"][i][:h, :w],
                                      "gt": arrays["gt"][i][:h, :w] if "gt" in arrays else None,
                                      "yaw": float(arrays["yaw"][i]) if "yaw" in arrays else float("nan")}
    counts: dict[tuple[str, int], int] = {}
    for frames in stored.values():
        for key in frames:
            counts[key] = counts.get(key, 0) + 1
    base_frames = stored.get(runs[0].label, {}) if runs else {}
    # most shared first, then the baseline's order (bench.harness.samples stores them by pose bin)
    order = {k: i for i, k in enumerate(base_frames)}
    keys = sorted(counts, key=lambda k: (-counts[k], order.get(k, len(order)), k))
    def yaw_of(key: tuple[str, int]) -> float:
        return next((f[key]["yaw"] for f in stored.values() if key in f), float("nan"))

    def bin_of(yaw: float) -> str:
        return next((name for name, low, high in POSE_BINS if low <= abs(yaw) < high), "unknown")

    # one frame per pose bin first (by |yaw|), then the rest in order
    firsts = list({bin_of(yaw_of(k)): k for k in reversed(keys)}.values())[::-1]
    firsts = sorted(firsts, key=keys.index)
    picked = (firsts + [k for k in keys if k not in firsts])[:limit]
    chosen = [(k, yaw_of(k)) for k in picked]
    out = []
    for (clip_id, frame), yaw in chosen:
        gt = next((f[(clip_id, frame)]["gt"] for f in stored.values() if (clip_id, frame) in f), None)
        out.append({"clip_id": clip_id, "frame": frame, "yaw": yaw, "gt": gt,
                    "preds": {label: f[(clip_id, frame)]["pred"] if (clip_id, frame) in f else None
                              for label, f in stored.items()}})
    return out

"""Paired differences of one run against a baseline, one metric level at a time (see bench.harness.compare).

Every function returns rows (dicts) with the same keys, ``ROW_KEYS``; a = the baseline, b = the other run.

* frame level: frames.parquet columns, per-clip means over the (clip_id, frame) rows both runs scored,
  ``paired_bootstrap`` over the shared clips.
* clip level: clips.parquet columns (lse_c, lse_d, lse_c_local, ...), one value per clip, the same bootstrap.
* set level, recomputed: the per-frame quality indicators (unc_frame_spearman, fail_auroc, ...) are
  statistics of frames.parquet columns, so they are recomputed on the shared frames and the difference
  is bootstrapped by resampling clips (the same resampled clips for both runs).
* summary only: what the run directory keeps no per-clip data for (FID's Inception features, the
  pooled pixel subsample): the difference of summary.json's values, no CI and no p-value.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bench.metrics import calibration, quality, specs
from bench.metrics.stats import bootstrap_ci, paired_bootstrap

ALPHA = 0.05
SET_RESAMPLES = 500  # set statistics cost one call per resample (rank-based): capped to keep compare quick
NON_METRICS = frozenset({"clip_id", "frame", "pose_bin", "identity", "stratum", "yaw", "pitch", "roll"})
ROW_KEYS = ("metric", "level", "basis", "pose_bin", "higher_is_better", "n_clips", "n_frames", "mean_a", "mean_b",
            "diff", "ci_low", "ci_high", "p_value", "better", "significant", "resamples")
NO_CI = "summary values: no CI"
_NAN = float("nan")

StatFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], float]

# Set statistics of per-frame columns (mean u, mean |e|, capped PSNR, LPIPS), as bench.harness.scorer forms them.
SET_FROM_FRAMES: dict[str, tuple[tuple[str, ...], StatFn]] = {
    "unc_frame_spearman": (("unc_mean", "err_mean"), lambda u, e, p, lp: quality.unc_frame_spearman(u, e)),
    "unc_psnr_spearman": (("unc_mean", "psnr"), lambda u, e, p, lp: -calibration.spearman(u, p)),
    "unc_lpips_spearman": (("unc_mean", "lpips"), lambda u, e, p, lp: calibration.spearman(u, lp)),
    "fail_auroc": (("unc_mean", "psnr"), lambda u, e, p, lp: quality.fail_auroc(u, quality.bad_frames(p, True))),
    "fail_auprc": (("unc_mean", "psnr"), lambda u, e, p, lp: quality.fail_auprc(u, quality.bad_frames(p, True))),
    "psnr_r2": (("unc_mean", "psnr"), lambda u, e, p, lp: quality.psnr_r2(u, p)),
}
_SET_INPUTS = ("unc_mean", "err_mean", "psnr", "lpips")


def better(diff: float, higher: bool | None) -> str:
    """"B" when the run beats the baseline by the metric's direction, "A" when the baseline does, "tie"."""
    if higher is None or diff is None or not math.isfinite(diff):
        return ""
    if diff == 0:
        return "tie"
    return "B" if (diff > 0) == higher else "A"


def _row(metric: str, level: str, basis: str, group: str, higher: bool | None, mean_a: float, mean_b: float,
         diff: float, low: float = _NAN, high: float = _NAN, p_value: float = _NAN, n_clips: int = 0,
         n_frames: int = 0, resamples: int = 0) -> dict[str, Any]:
    side = better(diff, higher)
    return {"metric": metric, "level": level, "basis": basis, "pose_bin": group, "higher_is_better": higher,
            "n_clips": int(n_clips), "n_frames": int(n_frames), "mean_a": mean_a, "mean_b": mean_b, "diff": diff,
            "ci_low": low, "ci_high": high, "p_value": p_value, "better": side,
            "significant": bool(side in ("A", "B") and math.isfinite(p_value) and p_value < ALPHA),
            "resamples": int(resamples)}


def numeric_columns(df: pd.DataFrame) -> set[str]:
    return {c for c in df.columns if c not in NON_METRICS and pd.api.types.is_numeric_dtype(df[c])
            and not pd.api.types.is_bool_dtype(df[c])}


def _groups(merged: pd.DataFrame, bins: Sequence[str]) -> list[tuple[str, np.ndarray]]:
    out = [("all", np.ones(len(merged), bool))]
    if "pose_bin" in merged.columns:
        labels = merged["pose_bin"].astype(str).to_numpy()
        out += [(b, labels == b) for b in bins if (labels == b).any()]
    return out


def paired_rows(merged: pd.DataFrame, metrics: Sequence[str], level: str, basis: str, bins: Sequence[str],
                direction: Callable[[str], bool | None], resamples: int, seed: int) -> list[dict[str, Any]]:
    """Frame or clip level: ``merged`` holds ``<metric>_a``/``<metric>_b`` per shared row and clip_id."""
    rows = []
    clip_ids = merged["clip_id"].to_numpy()
    groups = _groups(merged, bins)
    for name in metrics:
        higher = direction(name)
        va = specs.capped(name, merged[f"{name}_a"].to_numpy(dtype=np.float64))
        vb = specs.capped(name, merged[f"{name}_b"].to_numpy(dtype=np.float64))
        for group, mask in groups:
            res = paired_bootstrap(va[mask], vb[mask], clip_ids[mask], resamples, seed)
            rows.append(_row(name, level, basis, group, higher, res.mean_a, res.mean_b, res.diff, res.low,
                             res.high, res.p_value, res.n_clips, res.n_frames, resamples if res.n_clips > 1 else 0))
    return rows


def set_rows(merged: pd.DataFrame, metrics: Sequence[str], bins: Sequence[str], resamples: int,
             seed: int) -> list[dict[str, Any]]:
    """Set statistics recomputed on the shared frames; B - A bootstrapped over the same resampled clips."""
    rows = []
    resamples = min(resamples, SET_RESAMPLES)
    cols = {}
    for side in ("a", "b"):
        cols[side] = [specs.capped(c, merged[f"{c}_{side}"].to_numpy(dtype=np.float64)) if f"{c}_{side}" in merged
                      else np.full(len(merged), np.nan) for c in _SET_INPUTS]
    clip_ids = merged["clip_id"].to_numpy()
    for name in metrics:
        fn = SET_FROM_FRAMES[name][1]
        for group, mask in _groups(merged, bins):
            a = [c[mask] for c in cols["a"]]
            b = [c[mask] for c in cols["b"]]
            if mask.sum() < 3:
                continue
            res = bootstrap_ci(lambda *x, fn=fn: fn(*x[4:]) - fn(*x[:4]), *a, *b, clip_ids=clip_ids[mask],
                               resamples=resamples, seed=seed)
            mean_a, mean_b = float(fn(*a)), float(fn(*b))
            boot = res.samples[np.isfinite(res.samples)]
            p_value = _NAN
            if boot.size:
                tail = min(np.count_nonzero(boot <= 0), np.count_nonzero(boot >= 0)) / boot.size
                p_value = float(min(1.0, max(2.0 * tail, 1.0 / (boot.size + 1))))
            rows.append(_row(name, "set", "set statistic on shared frames", group, specs.higher_is_better(name),
                             mean_a, mean_b, mean_b - mean_a, res.low, res.high, p_value, res.n_clips,
                             int(mask.sum()), resamples if boot.size else 0))
    return rows


def _value(block: Any, name: str) -> float:
    entry = block.get(name) if isinstance(block, dict) else None
    value = entry.get("value") if isinstance(entry, dict) else entry
    try:
        return float(value)
    except (TypeError, ValueError):
        return _NAN


def summary_rows(summary_a: dict, summary_b: dict, names: Sequence[str], bins: Sequence[str],
                 direction: Callable[[str], bool | None]) -> list[dict[str, Any]]:
    """Metrics only summary.json holds for both runs: the difference of its values, marked "no CI"."""
    rows = []
    blocks = [("all", summary_a.get("metrics") or {}, summary_b.get("metrics") or {})]
    pose_a, pose_b = summary_a.get("by_pose") or {}, summary_b.get("by_pose") or {}
    blocks += [(b, pose_a.get(b) or {}, pose_b.get(b) or {}) for b in bins if b in pose_a and b in pose_b]
    for name in names:
        row = specs.spec(name)
        level = row.level if row is not None else "set"
        for group, block_a, block_b in blocks:
            if name not in block_a or name not in block_b:
                continue
            a, b = _value(block_a, name), _value(block_b, name)
            if group != "all" and not (math.isfinite(a) or math.isfinite(b)):
                continue  # a pose bin with no frames
            rows.append(_row(name, level, NO_CI, group, direction(name), a, b, b - a))
    return rows

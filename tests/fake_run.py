"""A small, seeded, schema-complete run directory for report tests.

Values are random but plausible (PSNR falls with |yaw|, uncertainty tracks error) so the
rendered report looks like a real one when inspected by eye.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

BINS = ("frontal", "moderate", "extreme")
_YAW_RANGE = {"frontal": (-12.0, 12.0), "moderate": (18.0, 40.0), "extreme": (50.0, 80.0)}
GROUPS = ("all",) + BINS


def _pose_bin(yaw: np.ndarray) -> np.ndarray:
    """Same thresholds as the fake strata: |yaw| < 15 frontal, < 45 moderate, else extreme."""
    a = np.abs(yaw)
    return np.where(a < 15, "frontal", np.where(a < 45, "moderate", "extreme"))


def _frames(rng: np.random.Generator, bins: tuple[str, ...], clips_per_bin: int, n_frames: int) -> pd.DataFrame:
    rows = []
    for b_i, stratum in enumerate(bins):
        for c in range(clips_per_bin):
            clip_id = f"{stratum[:3]}{c:02d}"
            lo, hi = _YAW_RANGE[stratum]
            sign = 1.0 if c % 2 == 0 else -1.0
            yaw = sign * np.clip(np.linspace(lo, hi, n_frames) + rng.normal(0, 2, n_frames), -89, 89)
            err = 0.02 + 0.0008 * np.abs(yaw) + rng.gamma(2.0, 0.004, n_frames)
            for f in range(n_frames):
                rows.append({
                    "clip_id": clip_id, "frame": f, "identity": f"id{(b_i * clips_per_bin + c) % 4:02d}",
                    "stratum": stratum, "yaw": float(yaw[f]), "pitch": float(rng.normal(0, 5)),
                    "roll": float(rng.normal(0, 3)), "err_mean": float(err[f]),
                    "psnr": float(-10 * np.log10(err[f] ** 2 * 1.6) + rng.normal(0, 0.3)),
                    "ssim": float(np.clip(1.0 - 4.0 * err[f] + rng.normal(0, 0.01), 0, 1)),
                    "unc_mean": float(err[f] * rng.lognormal(0.0, 0.25)),
                })
    df = pd.DataFrame(rows)
    df.insert(4, "pose_bin", _pose_bin(df["yaw"].to_numpy()))
    return df


def _stat(values: np.ndarray, higher: bool, rng: np.random.Generator) -> dict:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"value": float("nan"), "ci95": None, "higher_is_better": higher, "n": 0}
    boots = [rng.choice(values, len(values)).mean() for _ in range(50)]
    ci = [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]
    return {"value": float(values.mean()), "ci95": ci, "higher_is_better": higher, "n": int(len(values))}


def _metrics(df: pd.DataFrame, rng: np.random.Generator) -> dict:
    out = {"psnr": _stat(df["psnr"].to_numpy(), True, rng), "ssim": _stat(df["ssim"].to_numpy(), True, rng)}
    rho = df[["unc_mean", "err_mean"]].rank().corr().iloc[0, 1] if len(df) > 2 else float("nan")
    ci = [float(rho) - 0.08, float(rho) + 0.06] if np.isfinite(rho) else None
    out["unc_spearman"] = {"value": float(rho), "ci95": ci, "higher_is_better": True, "n": int(len(df))}
    out["ause"] = {"value": float(rng.uniform(0.002, 0.01)), "ci95": None, "higher_is_better": False, "n": int(len(df))}
    return out


def _curves(df: pd.DataFrame, groups: tuple[str, ...]) -> dict[str, np.ndarray]:
    fraction = np.linspace(0.0, 0.98, 50)
    out: dict[str, np.ndarray] = {"fraction": fraction}
    for g in groups:
        sub = df if g == "all" else df[df["pose_bin"] == g]
        if sub.empty:
            continue
        full = float(sub["err_mean"].mean())
        out[f"oracle_{g}"] = full * (1.0 - fraction) ** 2.2
        out[f"model_{g}"] = full * (1.0 - fraction) ** 1.1
    return out


def _samples(rng: np.random.Generator, df: pd.DataFrame, size: int) -> dict[str, np.ndarray]:
    """Two frames per pose bin; images are a smooth synthetic 'face' so the strip is legible."""
    picks = df.groupby("pose_bin", sort=False).head(2)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    gts, preds, errs, uncs = [], [], [], []
    for _, row in picks.iterrows():
        shift = row["yaw"] / 200.0
        face = np.exp(-(((xx - 0.5 - shift) / 0.28) ** 2 + ((yy - 0.5) / 0.36) ** 2))
        gt = np.stack([0.25 + 0.7 * face, 0.2 + 0.55 * face, 0.2 + 0.45 * face], -1)
        pred = np.clip(gt + rng.normal(0, row["err_mean"], gt.shape) * (0.5 + face[..., None]), 0, 1)
        gt8, pred8 = (gt * 255).astype(np.uint8), (pred * 255).astype(np.uint8)
        err = np.abs(gt8.astype(np.float32) - pred8.astype(np.float32)).mean(-1) / 255.0
        gts.append(gt8), preds.append(pred8), errs.append(err)
        uncs.append((0.6 * err + 0.4 * err.mean() + 0.01 * face).astype(np.float32))
    return {"gt": np.stack(gts), "pred": np.stack(preds), "error": np.stack(errs).astype(np.float32),
            "uncertainty": np.stack(uncs), "clip_id": picks["clip_id"].to_numpy().astype(str),
            "frame": picks["frame"].to_numpy().astype(np.int64), "yaw": picks["yaw"].to_numpy().astype(np.float64)}


def make_fake_run(run_dir: str | Path, *, seed: int = 0, model: str = "julnet-tiny", clips_per_bin: int = 3,
                  n_frames: int = 8, size: int = 32, empty_bin: str | None = None, with_samples: bool = True,
                  with_curves: bool = True, nan_metric: str | None = "ause", status: str = "complete") -> Path:
    """Write manifest/frames/summary (+ samples/curves) into ``run_dir`` and return it.

    ``empty_bin`` drops every frame of that pose bin and leaves it out of ``by_pose``;
    ``nan_metric`` sets that overall metric's value to NaN (with no CI).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    bins = tuple(b for b in BINS if b != empty_bin)
    df = _frames(rng, bins, clips_per_bin, n_frames)
    df = df[df["pose_bin"] != empty_bin].reset_index(drop=True) if empty_bin else df
    df.to_parquet(run_dir / "frames.parquet", index=False)

    metrics = _metrics(df, rng)
    if nan_metric:
        metrics[nan_metric] = {**metrics[nan_metric], "value": float("nan"), "ci95": None}
    by_pose = {b: _metrics(df[df["pose_bin"] == b], rng) for b in BINS if (df["pose_bin"] == b).any()}
    summary = {"model": model, "metrics": metrics, "by_pose": by_pose}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))

    manifest = {
        "status": status, "model": model, "seed": seed, "git_sha": "0123456789abcdef0123456789abcdef01234567",
        "config": {"preset": "smoke", "model": {"name": model, "width": 32}, "train": {"steps": 200, "lr": 3e-4}},
        "versions": {"python": "3.11.7", "torch": "2.4.0", "numpy": np.__version__, "pandas": pd.__version__},
        "data": {"source": "synthetic", "hash": "9f2c" * 16, "root": str(run_dir / "data")},
        "checkpoint": {"path": str(run_dir / "model.pt"), "sha256": "ab12" * 16},
        "timings": {"data_s": 1.25, "train_s": 42.0, "eval_s": 3.5, "report_s": 0.0},
        "created": "2025-01-01T12:00:00+00:00",
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    if with_samples:
        np.savez(run_dir / "samples.npz", **_samples(rng, df, size))
    if with_curves:
        np.savez(run_dir / "curves.npz", **_curves(df, GROUPS))
    return run_dir

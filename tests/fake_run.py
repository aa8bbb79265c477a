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
    if "unc_mean" not in df:
        return out
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


def _face(rng: np.random.Generator, row: pd.Series, size: tuple[int, int], identical: bool,
          with_uncertainty: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(gt, pred, error, uncertainty) of one frame: a smooth synthetic 'face' turned by the row's yaw, with
    noise as large as its err_mean."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    yy, xx = yy / max(h - 1, 1), xx / max(w - 1, 1)
    shift = row["yaw"] / 200.0 if np.isfinite(row["yaw"]) else 0.0
    face = np.exp(-(((xx - 0.5 - shift) / 0.28) ** 2 + ((yy - 0.5) / 0.36) ** 2))
    gt = np.stack([0.25 + 0.7 * face, 0.2 + 0.55 * face, 0.2 + 0.45 * face], -1)
    noise = 0.0 if identical else rng.normal(0, row["err_mean"], gt.shape) * (0.5 + face[..., None])
    pred = np.clip(gt + noise, 0, 1)
    gt8, pred8 = (gt * 255).astype(np.uint8), (pred * 255).astype(np.uint8)
    err = np.abs(gt8.astype(np.float32) - pred8.astype(np.float32)).mean(-1) / 255.0
    if not with_uncertainty:  # what the scorer stores without a map
        unc = np.full(err.shape, np.nan, np.float32)
    elif identical:
        unc = np.full(err.shape, row["unc_mean"], np.float32)
    else:
        unc = (0.6 * err + 0.4 * err.mean() + 0.01 * face).astype(np.float32)
    return gt8, pred8, err, unc


def _clip_samples(rng: np.random.Generator, df: pd.DataFrame, size: int, identical: bool,
                  with_uncertainty: bool) -> dict[str, np.ndarray]:
    """clip_samples.npz as bench.harness.samples.ClipRanks writes it: the middle frame of the best, median and
    worst clip by mean PSNR (capped at 100 dB), each clip once."""
    means = df.assign(psnr=np.minimum(df["psnr"], 100.0)).groupby("clip_id", sort=False)["psnr"].mean().dropna()
    order = {cid: i for i, cid in enumerate(means.index)}
    ranked = sorted(means.index, key=lambda cid: (-means[cid], order[cid]))
    n = len(ranked)
    rows, seen = [], set()
    for label, i in (("best", 0), ("median", (n - 1) // 2), ("worst", n - 1)):
        if n == 0 or ranked[i] in seen:
            continue
        seen.add(ranked[i])
        clip = df[df["clip_id"] == ranked[i]].reset_index(drop=True)
        rows.append((label, i, clip.iloc[(len(clip) - 1) // 2], len(clip)))
    faces = [_face(rng, row, (size, size), identical, with_uncertainty) for _, _, row, _ in rows]
    return {"gt": np.stack([f[0] for f in faces]), "pred": np.stack([f[1] for f in faces]),
            "error": np.stack([f[2] for f in faces]).astype(np.float32), "uncertainty": np.stack([f[3] for f in faces]),
            "clip_id": np.array([str(r["clip_id"]) for _, _, r, _ in rows]),
            "frame": np.array([int(r["frame"]) for _, _, r, _ in rows], np.int64),
            "yaw": np.array([float(r["yaw"]) for _, _, r, _ in rows]),
            "rank": np.array([label for label, _, _, _ in rows]),
            "clip_psnr": np.array([float(means[r["clip_id"]]) for _, _, r, _ in rows]),
            "position": np.array([i + 1 for _, i, _, _ in rows], np.int64), "n_clips": np.full(len(rows), n, np.int64),
            "clip_frames": np.array([k for *_, k in rows], np.int64),
            "height": np.full(len(rows), size, np.int64), "width": np.full(len(rows), size, np.int64)}


def _samples(rng: np.random.Generator, df: pd.DataFrame, sizes: list[tuple[int, int]], identical: bool,
             with_uncertainty: bool, pad: bool) -> dict[str, np.ndarray]:
    """Two frames per pose bin; images are a smooth synthetic 'face' so the strip is legible.

    ``sizes`` (H, W) cycle over the samples; with ``pad`` they are padded to the largest H x W (images
    with 0, maps with NaN) and carry their own ``height`` and ``width``, as bench.harness.samples does.
    """
    picks = df.groupby("pose_bin", sort=False).head(2)
    gts, preds, errs, uncs = [], [], [], []
    for i, (_, row) in enumerate(picks.iterrows()):
        for images, image in zip((gts, preds, errs, uncs),
                                 _face(rng, row, sizes[i % len(sizes)], identical, with_uncertainty)):
            images.append(image)
    heights, widths = [a.shape[0] for a in gts], [a.shape[1] for a in gts]
    if pad:
        def padded(arrays: list[np.ndarray]) -> np.ndarray:
            fill = np.nan if arrays[0].dtype.kind == "f" else 0  # as bench.harness.samples: NaN maps, black images
            out = np.full((len(arrays), max(heights), max(widths), *arrays[0].shape[2:]), fill, arrays[0].dtype)
            for j, a in enumerate(arrays):
                out[j, :a.shape[0], :a.shape[1]] = a
            return out
    else:
        padded = np.stack
    out = {"gt": padded(gts), "pred": padded(preds), "error": padded(errs).astype(np.float32),
           "uncertainty": padded(uncs), "clip_id": picks["clip_id"].to_numpy().astype(str),
           "frame": picks["frame"].to_numpy().astype(np.int64), "yaw": picks["yaw"].to_numpy().astype(np.float64)}
    if pad:
        out.update(height=np.asarray(heights, np.int64), width=np.asarray(widths, np.int64))
    return out


def _degenerate(df: pd.DataFrame, identical: bool, pose_labels: bool, with_uncertainty: bool,
                constant_column: str | None, nan_columns: tuple[str, ...]) -> pd.DataFrame:
    """Turn plausible frames into the degenerate cases the report must survive."""
    df = df.copy()
    if identical:  # prediction == ground truth: zero error, PSNR inf, a constant uncertainty
        df["err_mean"], df["psnr"], df["ssim"], df["unc_mean"] = 0.0, np.inf, 1.0, 0.05
    if not pose_labels:  # bench score without a face mesh: no pose, every frame "unknown"
        df[["yaw", "pitch", "roll"]] = np.nan
        df["pose_bin"] = "unknown"
    if not with_uncertainty:
        df = df.drop(columns=["unc_mean"])
    if constant_column:
        df[constant_column] = 0.75
    for name in nan_columns:
        df[name] = np.nan
    return df


def make_fake_run(run_dir: str | Path, *, seed: int = 0, model: str = "julnet-tiny", clips_per_bin: int = 3,
                  n_frames: int = 8, size: int = 32, empty_bin: str | None = None, with_samples: bool = True,
                  with_curves: bool = True, nan_metric: str | None = "ause", status: str = "complete",
                  bins: tuple[str, ...] = BINS, identical: bool = False, pose_labels: bool = True,
                  with_uncertainty: bool = True, constant_column: str | None = None,
                  nan_columns: tuple[str, ...] = (), sample_sizes: tuple[tuple[int, int], ...] | None = None,
                  with_clip_samples: bool | None = None) -> Path:
    """Write manifest/frames/summary (+ samples/curves) into ``run_dir`` and return it.

    ``empty_bin`` drops every frame of that pose bin and leaves it out of ``by_pose``;
    ``nan_metric`` sets that overall metric's value to NaN (with no CI).
    Degenerate runs: ``bins`` the strata to make clips in (one bin, one clip, one frame is the smallest
    run); ``identical`` prediction == ground truth (PSNR inf, zero error, constant uncertainty);
    ``pose_labels=False`` every frame "unknown" with NaN yaw; ``with_uncertainty=False`` no map at all;
    ``constant_column`` one per-frame column with a single value; ``nan_columns`` per-frame columns
    that are all NaN (added when missing); ``sample_sizes`` (H, W) of the samples, padded to the
    largest with per-sample ``height``/``width`` keys (mixed resolutions); ``with_clip_samples`` writes
    clip_samples.npz (the best, median and worst clip; default: as ``with_samples``).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    bins = tuple(b for b in bins if b != empty_bin)
    df = _frames(rng, bins, clips_per_bin, n_frames)
    df = df[df["pose_bin"] != empty_bin].reset_index(drop=True) if empty_bin else df
    df = _degenerate(df, identical, pose_labels, with_uncertainty, constant_column, nan_columns)
    df.to_parquet(run_dir / "frames.parquet", index=False)

    metrics = _metrics(df, rng)
    if identical:
        metrics["psnr"] = {**metrics["psnr"], "value": 100.0, "ci95": None, "n": int(len(df))}  # as the scorer
    if nan_metric and nan_metric in metrics:
        metrics[nan_metric] = {**metrics[nan_metric], "value": float("nan"), "ci95": None}
    if pose_labels:
        by_pose = {b: _metrics(df[df["pose_bin"] == b], rng) for b in BINS if (df["pose_bin"] == b).any()}
    else:  # the scorer still writes every bin, with no frames
        by_pose = {b: {k: {**v, "value": None, "ci95": None, "n": 0} for k, v in metrics.items()} for b in BINS}
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
        sizes = list(sample_sizes) if sample_sizes else [(size, size)]
        np.savez(run_dir / "samples.npz", **_samples(rng, df, sizes, identical, with_uncertainty,
                                                     pad=sample_sizes is not None))
    if with_samples if with_clip_samples is None else with_clip_samples:  # its own generator: samples.npz as before
        np.savez(run_dir / "clip_samples.npz", **_clip_samples(np.random.default_rng(seed + 1), df, size, identical,
                                                               with_uncertainty))
    if with_curves:
        curves = _curves(df, GROUPS) if with_uncertainty else {"fraction": np.linspace(0.0, 0.98, 50)}
        np.savez(run_dir / "curves.npz", **curves)
    return run_dir

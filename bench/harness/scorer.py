"""Streaming per-frame scoring shared by `bench run` (model outputs) and `bench score` (external outputs).

``FrameScorer.update`` takes a batch of generated and ground-truth frames (uint8 values as floats,
B x 3 x H x W), optionally the predicted scale u (B x H x W) and the region of generated pixels
(H x W bool), plus one metadata dict per frame. It keeps per-frame rows, a few per-frame arrays
(coverage counts, a fixed pixel subsample) and sparsification curve sums per pose group: memory is
small per frame and independent of the image size. Whole frames are kept only as sample candidates
(bounded pools per pose bin), as the worst frames by error and by uncertainty (small heaps) and as one
frame of the best, median and worst clip by mean PSNR (``bench.harness.samples.ClipRanks``).
``summarise`` turns the result into summary.json.

Image metrics use the full frame. Calibration metrics use the region's pixels (see evaluate.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bench.metrics import calibration
from bench.metrics import image as image_metrics
from bench.metrics import quality
from bench.metrics import specs
from bench.config import POSE_BINS, EvalConfig, pose_bin, pose_bins
from bench.metrics.fid import FIDAccumulator, cached_features, inception_cache, inception_features
from bench.metrics.lpips import lpips_distance
from bench.harness.samples import WORST_BY, ClipRanks, WorstFrames, select_samples, wanted
from bench.metrics.stats import bootstrap_ci, bootstrap_sums, clip_bootstrap_ci



def _averaged(level: str, uncertainty: bool | None = None) -> tuple[str, ...]:
    """summary.json's per-frame / per-clip means of one level, in the table's order (which is summary.json's)."""
    return tuple(s.name for s in specs.METRICS.values() if s.level == level and s.in_summary
                 and (uncertainty is None or (s.group == "uncertainty") == uncertainty))


# Frame means written when the frames have the column; the calibration ones whenever there is a map.
FRAME_MEANS = _averaged("frame", uncertainty=False)
FRAME_CALIBRATION = _averaged("frame", uncertainty=True)
CLIP_MEANS = _averaged("clip")
SPEARMAN_RESAMPLES = 200  # pooled rank correlation is the costly statistic to bootstrap


@dataclass
class EvalResult:
    frames: pd.DataFrame
    fractions: np.ndarray
    has_uncertainty: bool
    curves: dict[str, np.ndarray] = field(default_factory=dict)  # model_<g>, oracle_<g>, coverage_<g>
    inside: np.ndarray | None = None  # frames x levels: pixels inside each central interval
    region_pixels: np.ndarray | None = None  # frames: pixels scored for calibration
    subsample: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (u, e, frame row) pixel subsample
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    worst: dict[str, np.ndarray] = field(default_factory=dict)  # worst.npz (bench.harness.samples.WorstFrames)
    clip_samples: dict[str, np.ndarray] = field(default_factory=dict)  # clip_samples.npz (samples.ClipRanks)
    fid: dict[str, FIDAccumulator] = field(default_factory=dict)  # per group ("all", pose bins)
    clips: pd.DataFrame | None = None  # clip-level scores (lip sync), one row per clip
    fid_every: int = 1  # FID's frame stride (summary.json records it with the FID entries)


class FrameScorer:
    """Per-frame scores; ``lpips_model`` / ``inception`` add LPIPS per frame and FID per group.

    FID uses every frame by default, as pytorch-fid does; ``config.fid_every`` > 1 takes every n-th frame
    scored instead (a stated subsample, recorded in summary.json). Real and generated statistics are
    running sums, exact under DDP. The ground truth's Inception features are cached by content
    (``bench.metrics.fid.cached_features``; ``gt_cache``: True for ``$TALKBENCH_CACHE/metrics``, a directory,
    or False for none), so a second model scored on the same frames skips that half of the work.
    With ``keep_features`` the scorer keeps the Inception features instead of sums, so that
    ``bench.harness.scorer_state.export_state`` can save them (bench score saves one clip's state at a time)
    and ``merge_state`` can add them up later.
    """

    def __init__(self, config: EvalConfig, lpips_model: torch.nn.Module | None = None,
                 inception: torch.nn.Module | None = None, landmarks: Any = None, keep_features: bool = False,
                 gt_cache: bool | Path = True) -> None:
        self.config = config
        self.fid_cache = None
        if inception is not None and gt_cache is not False:
            self.fid_cache = inception_cache(inception, None if gt_cache is True else Path(gt_cache))
        self.keep_features = keep_features
        self.fid_features: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (real, fake, group) per batch
        self.landmarks = landmarks  # bench.metrics.lmd.LandmarkDistance: LMD per frame
        self.bins = pose_bins(config.yaw_edges)
        self.lpips_model = lpips_model
        self.inception = inception
        self.fid: dict[str, FIDAccumulator] = {}
        self.frames_seen = 0
        self.clip_rows: list[dict[str, Any]] = []
        self.fractions = calibration.sparsification_fractions(config.sparsification_step)
        self.levels = calibration.coverage_levels()
        self.rows: list[dict[str, Any]] = []
        self.inside: list[np.ndarray] = []
        self.region_pixels: list[int] = []
        self.sub_u: list[np.ndarray] = []
        self.sub_e: list[np.ndarray] = []
        self.sub_row: list[np.ndarray] = []
        self.curve_sums: dict[str, np.ndarray] = {}
        self.curve_counts: dict[str, int] = {}
        self.sample_pool: dict[str, list[dict]] = {}
        self.worst = WorstFrames()
        self.clip_ranks = ClipRanks()
        self.has_uncertainty: bool | None = None

    @classmethod
    def with_networks(cls, config: EvalConfig, networks: dict[str, torch.nn.Module] | None,
                      keep_features: bool = False, gt_cache: bool | Path = True) -> "FrameScorer":
        """A scorer using the networks ``bench.harness.evaluate.metric_networks`` built ("lpips", "fid", "lmd")."""
        networks = networks or {}
        return cls(config, lpips_model=networks.get("lpips"), inception=networks.get("fid"),
                   landmarks=networks.get("lmd"), keep_features=keep_features, gt_cache=gt_cache)

    def add_clip(self, info: dict[str, Any], values: dict[str, float]) -> None:
        """Clip-level scores (e.g. LSE); ``info["yaw"]`` is the clip's mean |yaw| for its pose bin."""
        group = pose_bin(abs(float(info.get("yaw", float("nan")))), self.bins)
        self.clip_rows.append({**info, "pose_bin": group, **values})

    def update(self, pred_u8: torch.Tensor, gt_u8: torch.Tensor, scale: torch.Tensor | None,
               region: np.ndarray | None, meta: list[dict[str, Any]]) -> None:
        if self.has_uncertainty is None:
            self.has_uncertainty = scale is not None
        psnr = image_metrics.psnr(pred_u8, gt_u8).cpu().numpy()
        ssim = image_metrics.ssim(pred_u8, gt_u8).cpu().numpy()
        error = ((pred_u8 - gt_u8).abs().mean(1) / 255.0).cpu().numpy()
        u = scale.float().cpu().numpy() if scale is not None else None
        lpips_values = None
        if self.lpips_model is not None:
            with torch.no_grad():
                lpips_values = lpips_distance(self.lpips_model, pred_u8 / 255.0, gt_u8 / 255.0).cpu().numpy()
        if self.inception is not None:
            self._update_fid(pred_u8, gt_u8, meta)
        lmd_values = self.landmarks(pred_u8, gt_u8) if self.landmarks is not None else None
        if region is None:
            region = np.ones(error.shape[1:], dtype=bool)
        for i, info in enumerate(meta):
            info = dict(info)
            box = info.pop("mouth_box", None)
            group = pose_bin(abs(float(info.get("yaw", 0.0))), self.bins)
            row = {**info, "pose_bin": group, "psnr": float(psnr[i]), "ssim": float(ssim[i]),
                   "err_mean": float(error[i][region].mean())}
            if box is not None:
                row.update(_mouth_scores(pred_u8[i], gt_u8[i], box))
            if lpips_values is not None:
                row["lpips"] = float(lpips_values[i])
            if lmd_values is not None:
                row["lmd"] = float(lmd_values[i])
            if u is not None:
                row.update(self._calibrate(error[i][region], u[i][region], group))
            self.rows.append(row)
            item = _sample_item(pred_u8[i], gt_u8[i], error[i], None if u is None else u[i], info)
            self.add_sample(group, item)
            for by, column in WORST_BY.items():
                self.worst.add(by, row.get(column), len(self.rows) - 1, item)
            self.clip_ranks.add(item["clip_id"], row["psnr"], item)

    def _update_fid(self, pred_u8: torch.Tensor, gt_u8: torch.Tensor, meta: list[dict[str, Any]]) -> None:
        picks = [i for i in range(len(meta)) if (self.frames_seen + i) % self.config.fid_every == 0]
        self.frames_seen += len(meta)
        if not picks:
            return
        if len(picks) < len(meta):
            gt_u8, pred_u8 = gt_u8[picks], pred_u8[picks]
        real = cached_features(self.inception, gt_u8, self.fid_cache)
        fake = inception_features(self.inception, pred_u8 / 255.0)
        groups = np.array([pose_bin(abs(float(meta[i].get("yaw", 0.0))), self.bins) for i in picks])
        if self.keep_features:
            self.fid_features.append((real.numpy(), fake.numpy(), groups))
        else:
            self.add_fid_features(real, fake, groups)

    def add_fid_features(self, real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray,
                         groups: np.ndarray) -> None:
        """Inception features (N x D) of real and generated frames and their pose groups into the FID sums."""
        for g in ["all", *np.unique(groups)]:
            rows = np.ones(len(groups), dtype=bool) if g == "all" else groups == g
            accumulator = self.fid.setdefault(str(g), FIDAccumulator(dim=real.shape[1], method="eigh"))
            accumulator.update(real=real[rows], fake=fake[rows])

    def _calibrate(self, e: np.ndarray, u: np.ndarray, group: str) -> dict[str, float]:
        model_curve, oracle_curve = calibration.sparsification_curves(
            e, u, self.fractions, metric=self.config.sparsification_metric)
        for g in ("all", group):
            self.curve_sums[f"model_{g}"] = self.curve_sums.get(f"model_{g}", 0) + model_curve
            self.curve_sums[f"oracle_{g}"] = self.curve_sums.get(f"oracle_{g}", 0) + oracle_curve
            self.curve_counts[g] = self.curve_counts.get(g, 0) + 1
        _, observed = calibration.coverage_curve(e, u, self.levels)
        self.inside.append(np.round(observed * e.size).astype(np.int64))
        self.region_pixels.append(e.size)
        stride = self.config.spearman_stride
        self.sub_u.append(u[::stride].astype(np.float32))
        self.sub_e.append(e[::stride].astype(np.float32))
        self.sub_row.append(np.full(self.sub_u[-1].size, len(self.rows), dtype=np.int64))
        return {
            "unc_mean": float(u.mean()),
            "ause": calibration.ause(model_curve, oracle_curve, self.fractions),
            "aurg": calibration.aurg(model_curve, self.fractions),
            "nll": calibration.nll_laplace(e, u),
            "nll_gaussian": calibration.nll_gaussian(e, u),
            "crps": calibration.crps_laplace(e, u),
            "hist_kl": calibration.hist_kl(e, u),
            "sharpness": float(u.mean()),
            "unc_spearman": calibration.spearman(u, e),
        }

    def add_sample(self, group: str, item: dict[str, Any]) -> None:
        """A sample candidate (see ``bench.harness.samples``); each group's pool stays bounded and spread out."""
        pool = self.sample_pool.setdefault(group, [])
        pool.append(item)
        if len(pool) >= 4 * max(wanted(group, self.config.samples_per_bin), 1):
            del pool[1::2]  # bounded memory, samples still spread over the bin

    def result(self) -> EvalResult:
        curves: dict[str, np.ndarray] = {}
        for key, value in self.curve_sums.items():
            curves[key] = value / self.curve_counts[key.split("_", 1)[1]]
        frames = pd.DataFrame(self.rows)
        inside = np.stack(self.inside) if self.inside else None
        pixels = np.asarray(self.region_pixels, dtype=np.float64) if self.inside else None
        if inside is not None:
            groups = frames["pose_bin"].to_numpy()
            for g in ["all", *[name for name, _, _ in POSE_BINS]]:
                rows = slice(None) if g == "all" else groups == g
                if np.any(rows) if g != "all" else True:
                    curves[f"coverage_{g}"] = inside[rows].sum(0) / pixels[rows].sum()
            curves["coverage_expected"] = self.levels
        subsample = None
        if self.sub_u:
            subsample = (np.concatenate(self.sub_u), np.concatenate(self.sub_e), np.concatenate(self.sub_row))
        return EvalResult(frames=frames, fractions=self.fractions, has_uncertainty=bool(self.has_uncertainty),
                          curves=curves, inside=inside, region_pixels=pixels, subsample=subsample,
                          samples=select_samples(self.sample_pool, self.config.samples_per_bin),
                          worst=self.worst.stack(), clip_samples=self.clip_ranks.stack(), fid=self.fid,
                          clips=pd.DataFrame(self.clip_rows) if self.clip_rows else None,
                          fid_every=self.config.fid_every)


def _sample_item(pred: torch.Tensor, gt: torch.Tensor, error: np.ndarray, u: np.ndarray | None,
                 info: dict[str, Any]) -> dict[str, Any]:
    """One frame as a sample (``bench.harness.samples``); the maps are copied, not views of the batch's arrays."""
    return {
        "gt": gt.permute(1, 2, 0).round().byte().cpu().numpy(),
        "pred": pred.permute(1, 2, 0).round().byte().cpu().numpy(),
        "error": error.copy(), "uncertainty": u.copy() if u is not None else np.full_like(error, np.nan),
        "clip_id": str(info.get("clip_id", "")), "frame": int(info.get("frame", 0)),
        "yaw": float(info.get("yaw", 0.0)),
    }


def _mouth_scores(pred: torch.Tensor, gt: torch.Tensor, box) -> dict[str, float]:
    """PSNR and SSIM on the mouth box (x0, y0, x1, y1) from landmarks."""
    x0, y0, x1, y1 = (int(v) for v in box)
    crop_pred, crop_gt = pred[None, :, y0:y1, x0:x1], gt[None, :, y0:y1, x0:x1]
    return {"psnr_mouth": float(image_metrics.psnr(crop_pred, crop_gt)[0]),
            "ssim_mouth": float(image_metrics.ssim(crop_pred, crop_gt)[0])}


def _entry(name: str, value: float, ci: list[float] | None, n: int) -> dict[str, Any]:
    """One summary.json metric; its direction is the table's."""
    finite = value is not None and np.isfinite(value)
    ci = ci if ci and all(np.isfinite(ci)) else None
    return {"value": float(value) if finite else None, "ci95": ci,
            "higher_is_better": specs.higher_is_better(name), "n": int(n)}


def _pooled_ause(u: np.ndarray, e: np.ndarray, fractions: np.ndarray) -> float:
    return calibration.ause(*calibration.sparsification_curves(e, u, fractions), fractions)


def _pooled_correlations(sub_u: np.ndarray, sub_e: np.ndarray, clips: np.ndarray, seed: int,
                         fractions: np.ndarray) -> dict[str, dict]:
    """Pixel-pooled statistics on the fixed subsample; the sorting ones get fewer resamples."""
    out = {}
    for name, fn in (("unc_spearman", calibration.spearman), ("unc_pearson", _pearson),
                     ("ause_pooled", lambda u, e: _pooled_ause(u, e, fractions))):
        resamples = 1000 if name == "unc_pearson" else SPEARMAN_RESAMPLES
        result = bootstrap_ci(fn, sub_u, sub_e, clip_ids=clips, resamples=resamples, seed=seed)
        out[name] = _entry(name, result.estimate, result.ci, sub_u.size)
    return out


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _block(result: EvalResult, rows: np.ndarray, config: EvalConfig, seed: int) -> dict[str, dict]:
    frames = result.frames[rows]
    clips = frames["clip_id"].to_numpy()
    out: dict[str, dict] = {}
    names = [name for name in FRAME_MEANS if name in frames]
    if result.has_uncertainty:
        names += FRAME_CALIBRATION
    for name in names:
        values = specs.capped(name, frames[name].to_numpy(dtype=np.float64))
        finite = values[np.isfinite(values)]
        mean = float(finite.mean()) if finite.size else float("nan")
        out[name] = _entry(name, mean, clip_bootstrap_ci(values, clips, config.bootstrap, seed), finite.size)
    if not result.has_uncertainty or frames.empty:
        return out
    # Pixel-pooled correlations on the fixed subsample, bootstrapped by clip.
    frame_rows = np.flatnonzero(rows)
    sub_u, sub_e, sub_row = result.subsample
    keep = np.isin(sub_row, frame_rows)
    sub_clips = result.frames["clip_id"].to_numpy()[sub_row[keep]]
    out.update(_pooled_correlations(sub_u[keep], sub_e[keep], sub_clips, seed, result.fractions))
    # Coverage from per-clip sums of inside counts and pixels: exact and cheap to bootstrap.
    unique, inverse = np.unique(clips, return_inverse=True)
    inside = np.zeros((unique.size, result.inside.shape[1]))
    np.add.at(inside, inverse, result.inside[frame_rows])
    pixels = np.bincount(inverse, weights=result.region_pixels[frame_rows])
    levels = calibration.coverage_levels()
    for name, fn in (("miscal_area", calibration.miscalibration_area),
                     ("rms_cal_error", calibration.rms_calibration_error)):
        boot = bootstrap_sums(lambda i, p, fn=fn: _coverage_stat(fn, levels, i, p), inside, pixels,
                              resamples=config.bootstrap, seed=seed)
        out[name] = _entry(name, float(np.ravel(boot.estimate)[0]), boot.ci, int(pixels.sum()))
    # Uncertainty as a per-frame quality indicator: bad = worst 10% of these frames by PSNR.
    mean_u = frames["unc_mean"].to_numpy(dtype=np.float64)
    mean_e = frames["err_mean"].to_numpy(dtype=np.float64)
    psnr = specs.capped("psnr", frames["psnr"].to_numpy(dtype=np.float64))
    # Higher u should go with lower PSNR and higher LPIPS: the PSNR correlation is negated so that
    # for every *_spearman here, higher is better.
    lpips_values = frames["lpips"].to_numpy(dtype=np.float64) if "lpips" in frames else None
    checks = [("unc_frame_spearman", lambda u, e, p, lp: quality.unc_frame_spearman(u, e)),
              ("unc_psnr_spearman", lambda u, e, p, lp: -calibration.spearman(u, p))]
    if lpips_values is not None:
        checks.append(("unc_lpips_spearman", lambda u, e, p, lp: calibration.spearman(u, lp)))
    checks += [("fail_auroc", lambda u, e, p, lp: quality.fail_auroc(u, quality.bad_frames(p, True))),
               ("fail_auprc", lambda u, e, p, lp: quality.fail_auprc(u, quality.bad_frames(p, True))),
               ("psnr_r2", lambda u, e, p, lp: quality.psnr_r2(u, p))]
    lp = lpips_values if lpips_values is not None else np.full_like(psnr, np.nan)
    for name, fn in checks:
        boot = bootstrap_ci(fn, mean_u, mean_e, psnr, lp, clip_ids=clips, resamples=config.bootstrap, seed=seed)
        out[name] = _entry(name, boot.estimate, boot.ci, len(frames))
    return out


def _coverage_stat(fn, levels: np.ndarray, inside: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Works on one sum (inside: levels, pixels: scalar) or a stack of resampled sums."""
    inside, pixels = np.atleast_2d(inside), np.atleast_1d(pixels)
    return np.array([fn(levels, row / max(n, 1.0)) for row, n in zip(inside, pixels)])


def _fid_entry(result: EvalResult, group: str) -> dict[str, Any]:
    """FID of one group; no CI (a bootstrap would need a 2048-d matrix square root per resample).
    ``frame_stride``: FID used every n-th frame scored (1: every frame, as pytorch-fid)."""
    accumulator = result.fid.get(group)
    count = accumulator.fake.count if accumulator else 0
    value = accumulator.compute() if count >= 2 else float("nan")
    return {**_entry("fid", value, None, count), "frame_stride": int(result.fid_every)}


def _clip_block(clips: pd.DataFrame, config: EvalConfig, seed: int) -> dict[str, dict]:
    out = {}
    for name in CLIP_MEANS:
        if name not in clips:
            continue
        values = specs.capped(name, clips[name].to_numpy(dtype=np.float64))
        finite = values[np.isfinite(values)]
        mean = float(finite.mean()) if finite.size else float("nan")
        out[name] = _entry(name, mean, clip_bootstrap_ci(values, clips["clip_id"].to_numpy(), config.bootstrap, seed),
                           finite.size)
    return out


def summarise(result: EvalResult, model_name: str, config: EvalConfig, seed: int) -> dict[str, Any]:
    """summary.json: every metric overall and per pose bin, each with a clip-bootstrap 95% CI."""
    groups = result.frames["pose_bin"].to_numpy()
    overall = _block(result, np.ones(len(groups), dtype=bool), config, seed)
    if result.fid:
        overall["fid"] = _fid_entry(result, "all")
    by_pose = {}
    for name, _, _ in POSE_BINS:
        rows = groups == name
        by_pose[name] = _block(result, rows, config, seed) if rows.any() else {
            key: _entry(key, float("nan"), None, 0) for key in overall}
        if result.fid:
            by_pose[name]["fid"] = _fid_entry(result, name)
    notes = {}
    if "lmd" in result.frames:
        notes["lmd"] = specs.SUMMARY_NOTES["lmd"]
    if result.clips is not None:
        overall.update(_clip_block(result.clips, config, seed))
        for name in by_pose:
            rows = result.clips[result.clips["pose_bin"] == name]
            block = _clip_block(rows, config, seed) if len(rows) else {
                key: _entry(key, float("nan"), None, 0) for key in CLIP_MEANS if key in result.clips}
            by_pose[name].update(block)
        if "lse_c_local" in result.clips:
            notes["lse_local"] = specs.SUMMARY_NOTES["lse_local"]
        if "lse_c" in result.clips:
            notes["lse"] = specs.SUMMARY_NOTES["lse"]
    summary = {"model": model_name, "metrics": overall, "by_pose": by_pose}
    if notes:
        summary["notes"] = notes
    return summary

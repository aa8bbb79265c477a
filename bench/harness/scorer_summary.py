"""summary.json from a scorer's result (``EvalResult``): every metric overall and per pose bin, with a
clip-bootstrap 95% CI, in the metric table's order (``bench.metrics.specs``).

Frame metrics are averaged over the frames that have them (a column no frame has is absent, not NaN): a run
scored without ground truth has no psnr / ssim / lpips / lmd, and no calibration without a map. FID and FVD are
one statistic of the set per group (no CI); their ``n`` counts generated frames / 16-frame windows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bench.config import POSE_BINS, EvalConfig
from bench.metrics import calibration
from bench.metrics import quality
from bench.metrics import specs
from bench.metrics import weighted
from bench.metrics.fid import FIDAccumulator
from bench.metrics.fvd import WINDOW
from bench.metrics.stats import bootstrap_ci, bootstrap_rows, bootstrap_sums, clip_bootstrap_ci


def _averaged(level: str, uncertainty: bool | None = None) -> tuple[str, ...]:
    """summary.json's per-frame / per-clip means of one level, in the table's order (which is summary.json's)."""
    return tuple(s.name for s in specs.METRICS.values() if s.level == level and s.in_summary
                 and (uncertainty is None or (s.group == "uncertainty") == uncertainty))


# Frame means written when the frames have the column; the calibration ones whenever there is a map.
FRAME_MEANS = _averaged("frame", uncertainty=False)
FRAME_CALIBRATION = _averaged("frame", uncertainty=True)
CLIP_MEANS = _averaged("clip")
SPEARMAN_RESAMPLES = 200  # pooled rank correlation is the costly statistic to bootstrap
# The pixel subsample behind the pooled statistics (unc_spearman, unc_pearson, ause_pooled, recalibration):
# at most PIXELS_PER_FRAME pixels of each frame (``subsample_stride``), and the pooled bootstraps of one block
# use at most about POOLED_PIXELS of them (``thin_subsample``). Each pooled resample sorts the whole subsample, so
# without the caps a 256-px test set of a few thousand frames took tens of minutes to summarise.
PIXELS_PER_FRAME = 256
POOLED_PIXELS = 1 << 17


def _next_prime(n: int) -> int:
    n = max(n, 2)
    while any(n % d == 0 for d in range(2, int(n ** 0.5) + 1)):
        n += 1
    return n


def subsample_stride(region_pixels: int, base: int, most: int = PIXELS_PER_FRAME) -> int:
    """Every k-th generated pixel of a frame, in raster order, enters the subsample: k is ``base`` (17) while that
    keeps at most ``most`` pixels, else the smallest prime that does. A prime k walks across the columns of a
    power-of-two width (k = 16 took 4 columns of every 64-px row); a region of 64 px frames keeps k = 17."""
    needed = -(-int(region_pixels) // most)
    return base if needed <= base else _next_prime(needed)


def thin_subsample(rows: np.ndarray, most: int = POOLED_PIXELS) -> tuple[np.ndarray, int]:
    """(mask over the subsample, k): at most about ``most`` of its pixels (k = ceil(size / most)), every k-th of
    each frame's run (``rows``: the frame row of each pixel, a frame's pixels contiguous), shifted by the row so
    that frames keep other columns. Depends on the frames' rows and pixels only, not on the order the frames were
    scored in (DDP, resume)."""
    rows = np.asarray(rows)
    k = -(-rows.size // most) if most > 0 else 1
    if k <= 1:
        return np.ones(rows.size, dtype=bool), 1
    starts = np.r_[0, np.flatnonzero(rows[1:] != rows[:-1]) + 1]
    position = np.arange(rows.size) - np.repeat(starts, np.diff(np.r_[starts, rows.size]))
    return (position + rows) % k == 0, int(k)


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
    fvd: dict[str, FIDAccumulator] = field(default_factory=dict)  # I3D window statistics per group, as fid




def _entry(name: str, value: float, ci: list[float] | None, n: int) -> dict[str, Any]:
    """One summary.json metric; its direction is the table's."""
    finite = value is not None and np.isfinite(value)
    ci = ci if ci and all(np.isfinite(ci)) else None
    return {"value": float(value) if finite else None, "ci95": ci,
            "higher_is_better": specs.higher_is_better(name), "n": int(n)}


def _pooled_ause(u: np.ndarray, e: np.ndarray, fractions: np.ndarray) -> float:
    return calibration.ause(*calibration.sparsification_curves(e, u, fractions), fractions)


def _pooled_correlations(sub_u: np.ndarray, sub_e: np.ndarray, clips: np.ndarray, seed: int,
                         fractions: np.ndarray, thinned_by: int = 1) -> dict[str, dict]:
    """Pixel-pooled statistics on the fixed subsample; the sorting ones get fewer resamples. ``thinned_by``
    (k of ``thin_subsample``) is recorded in each entry; ``n`` counts the pixels used. The correlations take
    each resample as pixel multiplicities (``bootstrap_rows``): the same draws as a resample of copied rows."""
    results = {
        "unc_spearman": bootstrap_rows(lambda w: weighted.spearman(sub_u, sub_e, w),
                                       calibration.spearman(sub_u, sub_e), clips, SPEARMAN_RESAMPLES, seed),
        "unc_pearson": bootstrap_sums(weighted.pearson_of_sums,
                                      weighted.moment_sums(sub_u, sub_e, np.unique(clips, return_inverse=True)[1]),
                                      resamples=1000, seed=seed),
        "ause_pooled": bootstrap_ci(lambda a, b: _pooled_ause(a, b, fractions), sub_u, sub_e, clip_ids=clips,
                                    resamples=SPEARMAN_RESAMPLES, seed=seed)}
    estimates = {"unc_pearson": _pearson(sub_u, sub_e)}  # np.corrcoef's value, as before the sums
    out = {}
    for name, result in results.items():
        out[name] = _entry(name, estimates.get(name, result.estimate), result.ci, sub_u.size)
        if thinned_by > 1:
            out[name]["thinned_by"] = thinned_by
    return out


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _frame_checks(mean_u: np.ndarray, mean_e: np.ndarray, psnr: np.ndarray, lpips_values: np.ndarray | None,
                  clips: np.ndarray, config: EvalConfig, seed: int) -> dict[str, dict]:
    """Uncertainty as a per-frame quality indicator, each with its clip bootstrap: the rank and moment
    correlations by row multiplicities, the failure detectors (whose bad set depends on the resample) on copied
    rows; the same draws for all. Higher u should go with lower PSNR and higher LPIPS: the PSNR correlation is
    negated so that for every *_spearman here, higher is better. Bad = worst 10% of these frames by PSNR."""
    def by_rows(estimate: float, statistic: Any) -> Any:
        return bootstrap_rows(statistic, estimate, clips, config.bootstrap, seed)

    # psnr_r2's pairs (PSNR ~ a + b ln u); the others get weight 0, so every clip stays in the draws
    fit = np.isfinite(mean_u) & (mean_u > 0) & np.isfinite(psnr)
    log_u = np.log(np.where(fit, mean_u, 1.0))
    fit_psnr = np.where(fit, psnr, 0.0)
    boots = {
        "unc_frame_spearman": by_rows(quality.unc_frame_spearman(mean_u, mean_e),
                                      lambda w: weighted.spearman(mean_u, mean_e, w, drop_nonfinite=True)),
        "unc_psnr_spearman": by_rows(-calibration.spearman(mean_u, psnr),
                                     lambda w: -weighted.spearman(mean_u, psnr, w))}
    if lpips_values is not None:
        boots["unc_lpips_spearman"] = by_rows(calibration.spearman(mean_u, lpips_values),
                                              lambda w: weighted.spearman(mean_u, lpips_values, w))
    for name, fn in (("fail_auroc", quality.fail_auroc), ("fail_auprc", quality.fail_auprc)):
        boots[name] = bootstrap_ci(lambda u, p, fn=fn: fn(u, quality.bad_frames(p, True)), mean_u, psnr,
                                   clip_ids=clips, resamples=config.bootstrap, seed=seed)
    boots["psnr_r2"] = by_rows(quality.psnr_r2(mean_u, psnr),
                               lambda w: weighted.pearson(log_u, fit_psnr, w * fit) ** 2)
    return {name: _entry(name, boot.estimate, boot.ci, len(mean_u)) for name, boot in boots.items()}


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
    keep = np.flatnonzero(np.isin(sub_row, frame_rows))
    thin, thinned_by = thin_subsample(sub_row[keep], POOLED_PIXELS)
    keep = keep[thin]
    sub_clips = result.frames["clip_id"].to_numpy()[sub_row[keep]]
    out.update(_pooled_correlations(sub_u[keep], sub_e[keep], sub_clips, seed, result.fractions, thinned_by))
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
    mean_u = frames["unc_mean"].to_numpy(dtype=np.float64)
    mean_e = frames["err_mean"].to_numpy(dtype=np.float64)
    psnr = specs.capped("psnr", frames["psnr"].to_numpy(dtype=np.float64))
    lpips_values = frames["lpips"].to_numpy(dtype=np.float64) if "lpips" in frames else None
    out.update(_frame_checks(mean_u, mean_e, psnr, lpips_values, clips, config, seed))
    return out


def _coverage_stat(fn, levels: np.ndarray, inside: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Works on one sum (inside: levels, pixels: scalar) or a stack of resampled sums."""
    inside, pixels = np.atleast_2d(inside), np.atleast_1d(pixels)
    return np.array([fn(levels, row / max(n, 1.0)) for row, n in zip(inside, pixels)])


def _fid_entry(result: EvalResult, group: str) -> dict[str, Any]:
    """FID of one group; no CI (a bootstrap would need a 2048-d matrix square root per resample).
    ``frame_stride``: FID used every n-th frame scored (1: every frame, as pytorch-fid)."""
    return {**_distance_entry("fid", result.fid.get(group)), "frame_stride": int(result.fid_every)}


def _fvd_entry(result: EvalResult, group: str, config: EvalConfig) -> dict[str, Any]:
    """FVD of one group, as FID's entry; ``n`` counts the generated 16-frame windows, ``windows_per_clip`` the
    cap (0: every complete window of each clip)."""
    return {**_distance_entry("fvd", result.fvd.get(group)), "window": WINDOW,
            "windows_per_clip": int(config.fvd_windows)}


def _distance_entry(name: str, accumulator: FIDAccumulator | None) -> dict[str, Any]:
    """A Frechet distance: NaN (value None) unless both sides have at least two feature vectors; n = generated."""
    count = accumulator.fake.count if accumulator else 0
    value = accumulator.compute() if count >= 2 and accumulator.real.count >= 2 else float("nan")
    return _entry(name, value, None, count)


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


def _face_notes(result: EvalResult, config: EvalConfig) -> dict[str, str]:
    """What csim and FVD rest on when present, and one line on why when asked for (``config.networks``) but absent."""
    notes = {}
    if "csim" in result.frames:
        notes["csim"] = specs.SUMMARY_NOTES["csim"]
    elif "csim" in config.networks:
        notes["csim_missing"] = specs.SUMMARY_NOTES["csim_missing"]
    if result.fvd:
        notes["fvd"] = specs.SUMMARY_NOTES["fvd"]
    elif "fvd" in config.networks:
        notes["fvd_missing"] = specs.SUMMARY_NOTES["fvd_missing"]
    return notes


def summarise(result: EvalResult, model_name: str, config: EvalConfig, seed: int) -> dict[str, Any]:
    """summary.json: every metric overall and per pose bin, each with a clip-bootstrap 95% CI."""
    groups = result.frames["pose_bin"].to_numpy() if "pose_bin" in result.frames else np.array([], dtype=str)
    overall = _block(result, np.ones(len(groups), dtype=bool), config, seed)
    if result.fid:
        overall["fid"] = _fid_entry(result, "all")
    if result.fvd:
        overall["fvd"] = _fvd_entry(result, "all", config)
    by_pose = {}
    for name, _, _ in POSE_BINS:
        rows = groups == name
        by_pose[name] = _block(result, rows, config, seed) if rows.any() else {
            key: _entry(key, float("nan"), None, 0) for key in overall}
        if result.fid:
            by_pose[name]["fid"] = _fid_entry(result, name)
        if result.fvd:
            by_pose[name]["fvd"] = _fvd_entry(result, name, config)
    notes = {}
    if "lmd" in result.frames:
        notes["lmd"] = specs.SUMMARY_NOTES["lmd"]
    notes.update(_face_notes(result, config))
    if result.clips is not None:
        overall.update(_clip_block(result.clips, config, seed))
        for name in by_pose:
            rows = result.clips[result.clips["pose_bin"] == name]
            block = _clip_block(rows, config, seed) if len(rows) else {
                key: _entry(key, float("nan"), None, 0) for key in CLIP_MEANS if key in result.clips}
            by_pose[name].update(block)
        if "lse_c_local" in result.clips:
            notes["lse_local"] = specs.SUMMARY_NOTES["lse_local"]
            if not expert_discriminates(overall):
                notes["lse_local_blind"] = specs.SUMMARY_NOTES["lse_local_blind"]
        if "lse_c" in result.clips:
            notes["lse"] = specs.SUMMARY_NOTES["lse"]
    summary = {"model": model_name, "metrics": overall, "by_pose": by_pose}
    if notes:
        summary["notes"] = notes
    return summary


def expert_discriminates(metrics: dict[str, Any]) -> bool:
    """Whether the local expert's ceiling (LSE-C on the ground truth) stands clear of its floor (the same
    frames with the audio shifted): the ceiling's 95% CI lies wholly above the floor's. True when either is
    missing (nothing to judge by)."""
    ceiling, floor = metrics.get("lse_c_local_gt"), metrics.get("lse_c_local_shifted")
    if not ceiling or not floor or ceiling.get("ci95") is None or floor.get("ci95") is None:
        return True
    return bool(ceiling["ci95"][0] > floor["ci95"][1])

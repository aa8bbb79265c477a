"""Evaluate a generator on a split: per-frame metrics, pooled calibration, curves and samples.

Generated frames are quantised to uint8 before scoring, as they would be in a saved video, and
scored at the model's resolution against the ground truth resized the same way. Image metrics use
the full frame; calibration metrics use the pixels the model had to generate (the protocol's mask),
since pixels passed through from the input have zero error and would make any map look calibrated.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from bench import calibration, image_metrics
from bench.config import POSE_BINS, EvalConfig, pose_bin
from bench.frames import ClipTensors, eval_reference_indices, make_batch, mouth_mask
from bench.stats import clip_bootstrap_ci

PSNR_CAP = 100.0  # identical frames (PSNR = inf) count as 100 dB in means
FRAME_METRICS = {"psnr": True, "ssim": True, "ause": False}  # name -> higher is better


@dataclass
class EvalResult:
    frames: pd.DataFrame
    fractions: np.ndarray
    curves: dict[str, np.ndarray] = field(default_factory=dict)  # model_<g>, oracle_<g>
    pooled: dict[str, dict[str, float]] = field(default_factory=dict)  # group -> name -> value
    samples: dict[str, np.ndarray] = field(default_factory=dict)


@torch.no_grad()
def evaluate(model: nn.Module, clips: Iterable[ClipTensors], n_refs: int, config: EvalConfig,
             device: torch.device | str = "cpu", progress: bool = True, total: int | None = None) -> EvalResult:
    model.eval()
    fractions = calibration.sparsification_fractions(config.sparsification_step)
    rows: list[dict] = []
    curve_sums: dict[str, np.ndarray] = {}
    curve_counts: dict[str, int] = {}
    pooled_u: dict[str, list[np.ndarray]] = {}
    pooled_e: dict[str, list[np.ndarray]] = {}
    sample_pool: dict[str, list[dict]] = {}
    stride = config.spearman_stride
    bar = tqdm(total=total, desc="evaluate", unit="frame", disable=not progress, leave=False)
    for clip in clips:
        for start in range(0, clip.n_frames, config.batch_size):
            targets = list(range(start, min(start + config.batch_size, clip.n_frames)))
            refs = [eval_reference_indices(clip.n_frames, n_refs, t) for t in targets]
            batch = make_batch(clip, targets, refs, device)
            pred, log_scale = model(batch["audio"], batch["masked"], batch["refs"])
            pred_u8 = (pred.clamp(0, 1) * 255).round()
            gt_u8 = batch["target"] * 255
            psnr = image_metrics.psnr(pred_u8, gt_u8).cpu().numpy()
            ssim = image_metrics.ssim(pred_u8, gt_u8).cpu().numpy()
            error = ((pred_u8 - gt_u8).abs().mean(1) / 255.0).cpu().numpy()
            scale = torch.exp(log_scale[:, 0]).float().cpu().numpy()
            region = mouth_mask(*error.shape[1:])[0, 0].bool().numpy()
            for i, t in enumerate(targets):
                abs_yaw = abs(float(clip.yaw[t]))
                group = pose_bin(abs_yaw)
                err_region, unc_region = error[i][region], scale[i][region]
                model_curve, oracle_curve = calibration.sparsification_curves(err_region, unc_region, fractions)
                for g in ("all", group):
                    curve_sums[f"model_{g}"] = curve_sums.get(f"model_{g}", 0) + model_curve
                    curve_sums[f"oracle_{g}"] = curve_sums.get(f"oracle_{g}", 0) + oracle_curve
                    curve_counts[g] = curve_counts.get(g, 0) + 1
                    pooled_u.setdefault(g, []).append(unc_region[::stride])
                    pooled_e.setdefault(g, []).append(err_region[::stride])
                rows.append({
                    "clip_id": clip.clip_id, "frame": t, "identity": clip.identity, "stratum": clip.stratum,
                    "pose_bin": group, "yaw": float(clip.yaw[t]), "pitch": float(clip.pitch[t]),
                    "roll": float(clip.roll[t]), "psnr": float(psnr[i]), "ssim": float(ssim[i]),
                    "err_mean": float(error[i].mean()), "unc_mean": float(scale[i].mean()),
                    "ause": calibration.ause(model_curve, oracle_curve, fractions),
                    "unc_spearman": calibration.spearman(unc_region, err_region),
                })
                sample_pool.setdefault(group, []).append({
                    "gt": gt_u8[i].permute(1, 2, 0).byte().cpu().numpy(),
                    "pred": pred_u8[i].permute(1, 2, 0).byte().cpu().numpy(),
                    "error": error[i], "uncertainty": scale[i], "clip_id": clip.clip_id, "frame": t, "yaw": float(clip.yaw[t]),
                })
                _thin_samples(sample_pool[group], config.samples_per_bin)
            bar.update(len(targets))
    bar.close()
    curves = {key: value / curve_counts[key.split("_", 1)[1]] for key, value in curve_sums.items()}
    pooled = {g: {"unc_spearman": calibration.spearman(np.concatenate(pooled_u[g]), np.concatenate(pooled_e[g]))}
              for g in pooled_u}
    return EvalResult(frames=pd.DataFrame(rows), fractions=fractions, curves=curves, pooled=pooled,
                      samples=_stack_samples(sample_pool, config.samples_per_bin))


def _thin_samples(pool: list[dict], keep: int) -> None:
    """Keep samples spread over the bin: every other one once the pool doubles (bounded memory)."""
    if len(pool) >= 4 * max(keep, 1):
        del pool[1::2]


def _stack_samples(pool: dict[str, list[dict]], per_bin: int) -> dict[str, np.ndarray]:
    chosen = []
    for name, _, _ in POSE_BINS:
        items = pool.get(name, [])
        if items:
            picks = np.linspace(0, len(items) - 1, min(per_bin, len(items))).round().astype(int)
            chosen.extend(items[i] for i in picks)
    if not chosen:
        return {}
    return {key: np.stack([np.asarray(item[key]) for item in chosen]) for key in chosen[0]}


def summarise(result: EvalResult, model_name: str, config: EvalConfig, seed: int) -> dict:
    """summary.json: frame means with clip-bootstrap CIs, pooled pixel Spearman, per pose bin."""
    frames = result.frames

    def block(subset: pd.DataFrame, group: str) -> dict:
        out = {}
        for name, higher in FRAME_METRICS.items():
            values = subset[name].to_numpy(dtype=np.float64)
            if name == "psnr":
                values = np.minimum(values, PSNR_CAP)
            finite = values[np.isfinite(values)]
            out[name] = {
                "value": float(finite.mean()) if finite.size else None,
                "ci95": clip_bootstrap_ci(values, subset["clip_id"].to_numpy(), config.bootstrap, seed),
                "higher_is_better": higher,
                "n": int(finite.size),
            }
        rho = result.pooled.get(group, {}).get("unc_spearman", float("nan"))
        out["unc_spearman"] = {"value": rho if np.isfinite(rho) else None, "ci95": None,
                               "higher_is_better": True, "n": int(len(subset))}
        return out

    by_pose = {name: block(frames[frames["pose_bin"] == name], name) for name, _, _ in POSE_BINS}
    return {"model": model_name, "metrics": block(frames, "all"), "by_pose": by_pose}

"""Streaming per-frame scoring shared by `bench run` (model outputs) and `bench score` (external outputs).

``FrameScorer.update`` takes a batch of generated and ground-truth frames (uint8 values as floats,
B x 3 x H x W; the ground truth may be None: then only reference-free metrics), optionally the predicted
scale u (B x H x W) and the region of generated pixels (H x W bool), plus one metadata dict per frame
(``mouth_box`` / ``face_box``: (x0, y0, x1, y1) for the mouth and face columns). It keeps per-frame rows, a few
per-frame arrays (coverage counts, a fixed pixel subsample) and sparsification curve sums per pose group:
memory is small per frame and independent of the image size. Whole frames are kept only as sample candidates
(bounded pools per pose bin), as the worst frames by error and by uncertainty (small heaps) and as one
frame of the best, median and worst clip by mean PSNR (``bench.harness.samples.ClipRanks``).
``summarise`` (``bench.harness.scorer_summary``) turns the result into summary.json.

Image metrics use the full frame, the face columns the face box (``bench.harness.scorer_face``), FVD 16-frame
windows of each clip (``bench.harness.scorer_video``). Calibration metrics use the region's pixels (see
evaluate.py).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bench.config import POSE_BINS, EvalConfig, pose_bin, pose_bins
from bench.harness.samples import WORST_BY, ClipRanks, WorstFrames, select_samples, wanted
from bench.harness.scorer_face import as_box, face_columns
from bench.harness.scorer_summary import EvalResult, subsample_stride, summarise
from bench.harness.scorer_video import ClipWindows
from bench.metrics import calibration
from bench.metrics import fvd
from bench.metrics import identity
from bench.metrics import image as image_metrics
from bench.metrics.fid import FIDAccumulator, cached_features, inception_cache, inception_features
from bench.metrics.lpips import lpips_distance

__all__ = ["EvalResult", "FrameScorer", "summarise"]

log = logging.getLogger(__name__)

# Kept features per kind: (real or None, generated or None, pose group per row) per batch / clip
Features = list[tuple[np.ndarray | None, np.ndarray | None, np.ndarray]]


class FrameScorer:
    """Per-frame scores; ``lpips_model`` / ``inception`` / ``i3d`` / ``identity_model`` add LPIPS per frame, FID
    and FVD per group and CSIM per frame.

    FID uses every frame by default, as pytorch-fid does; ``config.fid_every`` > 1 takes every n-th frame
    scored instead (a stated subsample, recorded in summary.json). FVD uses every complete 16-frame window of
    each clip (``config.fvd_windows`` > 0: at most that many per clip). Real and generated statistics are
    running sums, exact under DDP. The ground truth's Inception features and I3D windows are cached by content
    (``bench.metrics.fid.cached_features``, ``bench.metrics.fvd.cached_windows``; ``gt_cache``: True for
    ``$TALKBENCH_CACHE/metrics``, a directory, or False for none), so a second model scored on the same frames
    skips that half of the work. With ``keep_features`` the scorer keeps the features instead of sums, so that
    ``bench.harness.scorer_state.export_state`` can save them (bench score saves one clip's state at a time)
    and ``merge_state`` can add them up later. Without ground truth, the real side comes from
    ``add_real_features``.
    """

    def __init__(self, config: EvalConfig, lpips_model: torch.nn.Module | None = None,
                 inception: torch.nn.Module | None = None, landmarks: Any = None, keep_features: bool = False,
                 gt_cache: bool | Path = True, i3d: torch.nn.Module | None = None,
                 identity_model: torch.nn.Module | None = None) -> None:
        self.config = config
        root = None if gt_cache is True else Path(gt_cache) if gt_cache is not False else None
        self.fid_cache = inception_cache(inception, root) if inception is not None and gt_cache is not False else None
        self.fvd_cache = fvd.i3d_cache(i3d, root) if i3d is not None and gt_cache is not False else None
        self.keep_features = keep_features
        self.fid_features: Features = []
        self.fvd_features: Features = []
        self.landmarks = landmarks  # bench.metrics.lmd.LandmarkDistance: LMD per frame
        self.bins = pose_bins(config.yaw_edges)
        self.lpips_model = lpips_model
        self.inception = inception
        self.i3d = i3d
        self.identity_model = identity_model
        self.source: torch.Tensor | None = None  # the source identity's embedding (set_source)
        self.windows = ClipWindows(cap=config.fvd_windows)
        self.fid: dict[str, FIDAccumulator] = {}
        self.fvd: dict[str, FIDAccumulator] = {}
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
        """A scorer using the networks ``bench.harness.evaluate.metric_networks`` built ("lpips", "fid", "lmd",
        "fvd", "csim")."""
        networks = networks or {}
        return cls(config, lpips_model=networks.get("lpips"), inception=networks.get("fid"),
                   landmarks=networks.get("lmd"), keep_features=keep_features, gt_cache=gt_cache,
                   i3d=networks.get("fvd"), identity_model=networks.get("csim"))

    def set_source(self, crops: np.ndarray | list[np.ndarray] | None) -> None:
        """The source identity for csim from now on: N x h x w x 3 uint8 face crops (or a list of crops of any
        sizes), embedded once; None or no crop: no csim until the next source."""
        if self.identity_model is None:
            return
        if crops is None or len(crops) == 0:
            self.source = None
            log.info("csim: no source face crop; the frames that follow get no csim")
            return
        self.source = identity.source_embedding(self.identity_model, list(crops) if isinstance(crops, list) else crops)

    def add_clip(self, info: dict[str, Any], values: dict[str, float]) -> None:
        """Clip-level scores (e.g. LSE); ``info["yaw"]`` is the clip's mean |yaw| for its pose bin."""
        group = pose_bin(abs(float(info.get("yaw", float("nan")))), self.bins)
        self.clip_rows.append({**info, "pose_bin": group, **values})

    def update(self, pred_u8: torch.Tensor, gt_u8: torch.Tensor | None, scale: torch.Tensor | None,
               region: np.ndarray | None, meta: list[dict[str, Any]]) -> None:
        if gt_u8 is None:
            scale = None  # calibration needs the error
        if self.has_uncertainty is None:
            self.has_uncertainty = scale is not None
        has_gt = gt_u8 is not None
        psnr = image_metrics.psnr(pred_u8, gt_u8).cpu().numpy() if has_gt else None
        ssim = image_metrics.ssim(pred_u8, gt_u8).cpu().numpy() if has_gt else None
        error = ((pred_u8 - gt_u8).abs().mean(1) / 255.0).cpu().numpy() if has_gt else \
            np.full((len(meta), *pred_u8.shape[-2:]), np.nan, dtype=np.float32)
        u = scale.float().cpu().numpy() if scale is not None else None
        lpips_values = None
        if self.lpips_model is not None and has_gt:
            with torch.no_grad():
                lpips_values = lpips_distance(self.lpips_model, pred_u8 / 255.0, gt_u8 / 255.0).cpu().numpy()
        if self.inception is not None:
            self._update_fid(pred_u8, gt_u8, meta)
        if self.i3d is not None:
            self._update_fvd(pred_u8, gt_u8, meta)
        lmd_values = self.landmarks(pred_u8, gt_u8) if self.landmarks is not None and has_gt else None
        faces = face_columns(pred_u8, gt_u8, [as_box(info.get("face_box")) for info in meta],
                             self.lpips_model, self.identity_model, self.source)
        if region is None:
            region = np.ones(error.shape[1:], dtype=bool)
        for i, info in enumerate(meta):
            info = dict(info)
            box = info.pop("mouth_box", None)
            info.pop("face_box", None)
            group = pose_bin(abs(float(info.get("yaw", 0.0))), self.bins)
            row = {**info, "pose_bin": group}
            if has_gt:
                row.update(psnr=float(psnr[i]), ssim=float(ssim[i]), err_mean=float(error[i][region].mean()))
                if box is not None:
                    row.update(_mouth_scores(pred_u8[i], gt_u8[i], box))
            if lpips_values is not None:
                row["lpips"] = float(lpips_values[i])
            if lmd_values is not None:
                row["lmd"] = float(lmd_values[i])
            row.update(faces[i])
            if u is not None:
                row.update(self._calibrate(error[i][region], u[i][region], group))
            self.rows.append(row)
            item = _sample_item(pred_u8[i], gt_u8[i] if has_gt else None, error[i], None if u is None else u[i], info)
            self.add_sample(group, item)
            for by, column in WORST_BY.items():
                self.worst.add(by, row.get(column), len(self.rows) - 1, item)
            self.clip_ranks.add(item["clip_id"], row.get("psnr"), item)

    def _groups(self, yaws: list[float]) -> np.ndarray:
        return np.array([pose_bin(abs(float(yaw)), self.bins) for yaw in yaws])

    def _update_fid(self, pred_u8: torch.Tensor, gt_u8: torch.Tensor | None, meta: list[dict[str, Any]]) -> None:
        picks = [i for i in range(len(meta)) if (self.frames_seen + i) % self.config.fid_every == 0]
        self.frames_seen += len(meta)
        if not picks:
            return
        if len(picks) < len(meta):
            pred_u8 = pred_u8[picks]
            gt_u8 = gt_u8[picks] if gt_u8 is not None else None
        real = cached_features(self.inception, gt_u8, self.fid_cache) if gt_u8 is not None else None
        fake = inception_features(self.inception, pred_u8 / 255.0)
        groups = self._groups([meta[i].get("yaw", 0.0) for i in picks])
        if self.keep_features:
            self.fid_features.append((None if real is None else real.numpy(), fake.numpy(), groups))
        else:
            self.add_features("fid", real, fake, groups)

    def _update_fvd(self, pred_u8: torch.Tensor, gt_u8: torch.Tensor | None, meta: list[dict[str, Any]]) -> None:
        windows = self.windows.add(pred_u8, gt_u8, meta)
        if not windows:
            return
        fake = fvd.embed_windows(self.i3d, torch.stack([w.pred for w in windows]))
        real = None
        if all(w.gt is not None for w in windows):
            real = fvd.cached_windows(self.i3d, torch.stack([w.gt for w in windows]), self.fvd_cache)
        groups = self._groups([w.abs_yaw for w in windows])
        if self.keep_features:
            self.fvd_features.append((None if real is None else real.numpy(), fake.numpy(), groups))
        else:
            self.add_features("fvd", real, fake, groups)

    def add_fid_features(self, real: torch.Tensor | np.ndarray | None, fake: torch.Tensor | np.ndarray | None,
                         groups: np.ndarray) -> None:
        """Inception features (N x D) of real and generated frames and their pose groups into the FID sums."""
        self.add_features("fid", real, fake, groups)

    def add_features(self, kind: str, real: torch.Tensor | np.ndarray | None, fake: torch.Tensor | np.ndarray | None,
                     groups: np.ndarray) -> None:
        """Features (N x D: Inception for "fid", I3D windows for "fvd") of real and / or generated frames, with
        the pose group of each row, into the sums of "all" and of each group."""
        sums = self._sums(kind)
        dim = (real if real is not None else fake).shape[1]
        groups = np.asarray(groups).astype(str)
        for g in ["all", *np.unique(groups)]:
            rows = np.ones(len(groups), dtype=bool) if g == "all" else groups == g
            accumulator = sums.setdefault(str(g), FIDAccumulator(dim=dim, method="eigh"))
            accumulator.update(real=None if real is None else real[rows], fake=None if fake is None else fake[rows])

    def add_real_features(self, kind: str, features: np.ndarray | torch.Tensor, groups: np.ndarray) -> None:
        """The real side of FID ("fid") or FVD ("fvd") from a set of real videos (scoring without ground truth):
        N x D features and each row's pose group ("all" is added here). Kept for ``export_state`` with
        ``keep_features``, else added to the sums."""
        self._sums(kind)
        if self.keep_features:
            kept = self.fid_features if kind == "fid" else self.fvd_features
            kept.append((np.asarray(features), None, np.asarray(groups).astype(str)))
        else:
            self.add_features(kind, features, None, groups)

    def _sums(self, kind: str) -> dict[str, FIDAccumulator]:
        if kind not in ("fid", "fvd"):
            raise ValueError(f"features are 'fid' or 'fvd', got {kind!r}")
        return self.fid if kind == "fid" else self.fvd

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
        stride = subsample_stride(e.size, self.config.spearman_stride)
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
                          fid_every=self.config.fid_every, fvd=self.fvd)


def _sample_item(pred: torch.Tensor, gt: torch.Tensor | None, error: np.ndarray, u: np.ndarray | None,
                 info: dict[str, Any]) -> dict[str, Any]:
    """One frame as a sample (``bench.harness.samples``); the maps are copied, not views of the batch's arrays.
    Without ground truth its image is black and the error map NaN."""
    pred_image = pred.permute(1, 2, 0).round().byte().cpu().numpy()
    return {
        "gt": gt.permute(1, 2, 0).round().byte().cpu().numpy() if gt is not None else np.zeros_like(pred_image),
        "pred": pred_image,
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



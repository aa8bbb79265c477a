"""The real side of FID / FVD from a folder of real videos (`bench score --real DIR`), cached by content.

Without ground truth, FID and FVD compare the generated clips with a set of real videos. Per real video:
Inception pool3 features of every ``fid_every``-th frame (frame index within the video, as on the generated
side), I3D features of every complete non-overlapping 16-frame window from the first frame (the first
``fvd_windows`` per video when that is set, as per generated clip), and
the head pose of every frame (``networks["pose"]``, MediaPipe's face mesh) for the per-bin statistics: a
frame goes to the bin of its |yaw|, a window to the bin of its frames' mean |yaw| ("unknown" where no face
or no estimator). Frames are read at the video's own rate and size (Inception and I3D resize them).

Each video's result is cached under ``$TALKBENCH_CACHE/metrics/real/`` keyed by the sha256 of the file's
bytes and the settings that change the numbers (the networks' weight digests, input settings, window,
stride, pose estimator), through ``bench.metrics.gt_cache`` (atomic writes; a damaged or mismatched entry
is ignored and rebuilt). Scoring against the same folder again recomputes nothing, and adding a video to
the folder computes that video only. Yaws, not bins, are cached: the bin edges can change without a
recomputation.
"""
from __future__ import annotations

import logging
from contextlib import closing
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.config import EvalConfig, pose_bin, pose_bins
from bench.data import video
from bench.files import file_sha256, stable_hash
from bench.metrics.gt_cache import GroundTruthCache, weights_digest

log = logging.getLogger(__name__)

FORMAT = "talkbench-real-set/1"
KINDS = ("fid", "fvd")


def _settings(networks: dict[str, Any], config: EvalConfig) -> dict[str, Any]:
    """What changes a real video's cached arrays: which networks, their weights and input handling."""
    from bench.metrics import fid, fvd

    settings: dict[str, Any] = {"format": FORMAT, "torch": torch.__version__.split("+")[0]}
    if "fid" in networks:
        settings["fid"] = {"weights": weights_digest(networks["fid"]), **fid.INPUT_SETTINGS,
                           "fid_every": int(config.fid_every), "device": _device(networks["fid"]).type}
    if "fvd" in networks:
        settings["fvd"] = {"weights": weights_digest(networks["fvd"]), "window": fvd.WINDOW, "size": fvd.SIZE,
                           "feature": "logits", "windows_per_video": int(config.fvd_windows),
                           "device": _device(networks["fvd"]).type}
    if "pose" in networks:
        import mediapipe

        settings["pose"] = {"estimator": "bench.data.head_pose.PoseEstimator", "mediapipe": mediapipe.__version__}
    return settings


def _device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def _shapes(networks: dict[str, Any]) -> dict[str, tuple[int | None, ...]]:
    shapes: dict[str, tuple[int | None, ...]] = {}
    if "fid" in networks:
        shapes.update(fid=(None, None), fid_yaw=(None,))
    if "fvd" in networks:
        shapes.update(fvd=(None, None), fvd_yaw=(None,))
    return shapes


@torch.no_grad()
def video_features(path: Path, networks: dict[str, Any], config: EvalConfig) -> dict[str, np.ndarray]:
    """One real video's arrays: ``fid`` (N x 2048 float32) and ``fid_yaw`` (N), ``fvd`` (W x 400 float32) and
    ``fvd_yaw`` (W): features and |yaw| (NaN: no face) of the frames / windows taken."""
    from bench.metrics import fid, fvd

    inception, i3d, estimator = networks.get("fid"), networks.get("fvd"), networks.get("pose")
    fid_feats: list[np.ndarray] = []
    fid_yaw: list[np.ndarray] = []
    fvd_feats: list[np.ndarray] = []
    fvd_yaw: list[float] = []
    pending: list[np.ndarray] = []  # frames of the window being filled
    pending_yaw: list[float] = []
    windows: list[np.ndarray] = []
    index = 0

    def flush_windows() -> None:
        if windows:
            fvd_feats.append(fvd.i3d_features(i3d, np.stack(windows)).float().numpy())
            windows.clear()

    with closing(video.iter_frames(path)) as frames:
        while batch := list(islice(frames, config.batch_size)):
            images = np.stack(batch)
            tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float()
            yaw = np.abs(estimator(tensor)[:, 0]) if estimator is not None else np.full(len(images), np.nan)
            if inception is not None:
                picks = [i for i in range(len(images)) if (index + i) % config.fid_every == 0]
                if picks:
                    fid_feats.append(fid.inception_features(inception, tensor[picks] / 255.0).float().numpy())
                    fid_yaw.append(yaw[picks])
            if i3d is not None and not (config.fvd_windows and len(fvd_yaw) >= config.fvd_windows):
                for image, value in zip(images, yaw):
                    pending.append(image)
                    pending_yaw.append(float(value))
                    if len(pending) == fvd.WINDOW:
                        windows.append(np.stack(pending))
                        fvd_yaw.append(_mean_or_nan(np.asarray(pending_yaw)))
                        pending.clear()
                        pending_yaw.clear()
                        if config.fvd_windows and len(fvd_yaw) >= config.fvd_windows:
                            break
                if len(windows) >= 4:
                    flush_windows()
            index += len(images)
    out: dict[str, np.ndarray] = {}
    if inception is not None:
        out["fid"] = np.concatenate(fid_feats) if fid_feats else np.zeros((0, fid.FEATURE_DIM), np.float32)
        out["fid_yaw"] = np.concatenate(fid_yaw) if fid_yaw else np.zeros(0)
    if i3d is not None:
        flush_windows()
        out["fvd"] = np.concatenate(fvd_feats) if fvd_feats else np.zeros((0, fvd.LOGITS_DIM), np.float32)
        out["fvd_yaw"] = np.asarray(fvd_yaw, dtype=np.float64)
    return out


def _mean_or_nan(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def real_set_features(files: list[Path], networks: dict[str, Any], config: EvalConfig,
                      root: Path | None = None) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, Any]]:
    """(kind -> (features N x D, pose groups N), record) of the real videos ``files`` for every network present
    ("fid": Inception, "fvd": I3D), each video read from the cache when its bytes were seen before.

    ``record``: what the manifest keeps (videos, their sha256, frames and windows taken, cache hits)."""
    shapes = _shapes(networks)
    if not shapes or not files:
        return {}, {"videos": len(files), "used": False}
    cache = GroundTruthCache("real", _settings(networks, config), root)
    bins = pose_bins(config.yaw_edges)
    parts: dict[str, list[np.ndarray]] = {key: [] for key in shapes}
    hashes = []
    for path in files:
        digest = file_sha256(path)
        hashes.append(digest)
        key = stable_hash({"format": FORMAT, "settings": cache.settings, "file": digest}, length=64)
        entry = cache.load(key, shapes)
        if entry is None:
            log.info("real set: features of %s", path)
            entry = video_features(path, networks, config)
            cache.store(key, entry)
        for name in shapes:
            parts[name].append(entry[name])
    out = {}
    for kind in KINDS:
        if kind in shapes:
            features = np.concatenate(parts[kind])
            yaws = np.concatenate(parts[f"{kind}_yaw"])
            out[kind] = (features, np.array([pose_bin(float(y), bins) for y in yaws], dtype=str))
    record = {"videos": len(files), "used": True, "sha256": stable_hash(hashes, length=64),
              "cache_hits": cache.hits, "computed": cache.misses,
              **{f"{kind}_n": int(len(features)) for kind, (features, _) in out.items()}}
    return out, record

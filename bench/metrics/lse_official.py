"""Clip-level lip-sync scores: LSE with the official SyncNet (``lse_c``/``lse_d``) on syncnet_python's face
crops, and with the project's own expert (``lse_c_local``/``lse_d_local``).

Official pipeline (syncnet_python ``run_pipeline.py`` + ``SyncNetInstance.evaluate``), re-expressed:
face boxes per frame -> the track's centre and half-size (half the larger box side), each
median-filtered over 13 frames -> per frame a crop from ``cy - s`` to ``cy + 1.8 s`` vertically and
``cx - 1.4 s`` to ``cx + 1.4 s`` horizontally (crop scale 0.4, more room below the face for the chin)
out of the frame padded with grey 110, resized to 224 x 224 -> ``bench.metrics.syncnet_official``.

One difference, stated in every summary that carries these scores (``bench.metrics.specs.SUMMARY_NOTES``,
"lse"): the face boxes come from the bounding box of MediaPipe's face mesh, not from S3FD (whose weights
are not distributable here).
Frames where no face is found take the box of the nearest frame with one; a clip with no face at all
gets no score.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import medfilt

from bench.metrics.sync import SyncResult

log = logging.getLogger(__name__)

CROP_SCALE = 0.4  # syncnet_python's --crop_scale
SMOOTH_KERNEL = 13  # its median filter over the track's centre and size
PAD_VALUE = 110  # its padding grey
CROP_SIZE = 224


def face_boxes(points: np.ndarray) -> np.ndarray:
    """T x K x 2 landmarks (NaN rows: no face) -> T x 4 boxes (x0, y0, x1, y1), NaN where no face."""
    boxes = np.full((len(points), 4), np.nan)
    found = np.isfinite(points).all(axis=(1, 2))
    boxes[found] = np.concatenate([points[found].min(axis=1), points[found].max(axis=1)], axis=1)
    return boxes


def smooth_track(boxes: np.ndarray) -> np.ndarray | None:
    """T x 4 boxes -> T x 3 (cx, cy, s): gaps filled from the nearest detected frame, then median-filtered.

    None when no frame has a face.
    """
    found = np.flatnonzero(np.isfinite(boxes).all(axis=1))
    if found.size == 0:
        return None
    nearest = found[np.abs(np.arange(len(boxes))[:, None] - found[None, :]).argmin(axis=1)]
    boxes = boxes[nearest]
    track = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2,
                      np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / 2], axis=1)
    kernel = min(SMOOTH_KERNEL, len(track) if len(track) % 2 else len(track) - 1)
    if kernel >= 3:
        track = np.stack([medfilt(track[:, k], kernel_size=kernel) for k in range(3)], axis=1)
    return track


def syncnet_crops(frames: np.ndarray, track: np.ndarray) -> np.ndarray:
    """uint8 T x H x W x 3 frames + T x 3 track -> uint8 T x 224 x 224 x 3 face crops (RGB).

    The crop rule is syncnet_python's (integer truncation of the bounds included); resizing is bilinear
    without antialiasing, as cv2.resize's default.
    """
    out = np.empty((len(frames), CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8)
    for index, (frame, (cx, cy, s)) in enumerate(zip(frames, track)):
        pad = int(s * (1 + 2 * CROP_SCALE))
        padded = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)), constant_values=PAD_VALUE)
        my, mx = cy + pad, cx + pad
        face = padded[int(my - s):int(my + s * (1 + 2 * CROP_SCALE)),
                      int(mx - s * (1 + CROP_SCALE)):int(mx + s * (1 + CROP_SCALE))]
        tensor = torch.from_numpy(np.ascontiguousarray(face)).permute(2, 0, 1)[None].float()
        resized = F.interpolate(tensor, size=(CROP_SIZE, CROP_SIZE), mode="bilinear", align_corners=False)
        out[index] = resized[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    return out


class OfficialSync:
    """LSE of a generated clip with the official SyncNet: ``sync(frames, audio) -> SyncResult | None``."""

    def __init__(self, model: torch.nn.Module, mesh: Any, device: torch.device | str = "cpu") -> None:
        self.model, self.mesh, self.device = model, mesh, device

    def __call__(self, frames: torch.Tensor, audio: np.ndarray) -> SyncResult | None:
        """``frames`` T x 3 x H x W (0-255, RGB), ``audio`` mono float at 16 kHz covering the clip."""
        track = smooth_track(self.boxes(frames))
        if track is None:
            return None
        return self.score(syncnet_crops(_to_images(frames), track), audio)

    def boxes(self, frames: torch.Tensor) -> np.ndarray:
        return face_boxes(self.mesh(frames))

    def score(self, crops: np.ndarray, audio: np.ndarray) -> SyncResult | None:
        from bench.metrics.syncnet_official import official_lse

        try:
            return official_lse(self.model, crops, audio, self.device)
        except ValueError as error:  # too short for one window with this audio
            log.warning("no official LSE for a clip: %s", error)
            return None


def _to_images(frames: torch.Tensor) -> np.ndarray:
    """T x 3 x H x W (0-255) -> uint8 T x H x W x 3."""
    return frames.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def build_official_sync(device: torch.device | str = "cpu", mesh: Any = None) -> OfficialSync | None:
    """The official scorer when ``syncnet_official`` is provisioned (None when it is not; an unusable file raises)."""
    from bench.weights import store as weights
    from bench.metrics.syncnet_official import load_official_syncnet

    if not weights.provisioned("syncnet_official"):
        return None
    if mesh is None:
        from bench.data.landmarks import FaceMesh

        mesh = FaceMesh()
    return OfficialSync(load_official_syncnet(device=device), mesh, device)

"""Prepare one source video: decode, track the face, crop, label, and save one clip archive.

Runs in worker processes: everything it needs comes in as plain arguments, and it returns a QA row and
(when the clip was written) its manifest entry, never raising for a bad source.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.api import SAMPLE_RATE, SYNC_WINDOW, VIDEO_FPS
from bench.data.clips import Clip, manifest_entry, save_clip
from bench.data.synth.dataset import stratum_of
from bench.errors import BenchError
from bench.files import file_sha256

from .decode import (SourceError, align_audio, crop_frames, read_audio, rms_dbfs, scan_video, select_frames,
                     variable_rate)
from .track import LANDMARKS, MIN_FOUND, crop_boxes, mouth_opening, named_landmarks

log = logging.getLogger(__name__)

MIN_FRAMES = SYNC_WINDOW + 1  # the sync expert reads SYNC_WINDOW frames; anything shorter is unusable
_BATCH = 32
_MESH: Any = None  # one FaceMesh per process, built on first use


@dataclass(frozen=True)
class Source:
    path: str  # the file
    clip_id: str  # unique within the dataset
    identity: str  # who is in it (the layout's, or the clip id)
    name: str  # the path as reported (relative to --videos where there is one)


@dataclass(frozen=True)
class Options:
    size: int = 256
    max_seconds: float | None = None


def _mesh() -> Any:
    global _MESH
    if _MESH is None:
        from bench.data.landmarks import FaceMesh

        _MESH = FaceMesh()
    return _MESH


def _run_mesh(frames: np.ndarray) -> np.ndarray:
    """T x H x W x 3 uint8 -> T x 468 x 2 pixel points (NaN: no face), in batches."""
    mesh = _mesh()
    out = []
    for start in range(0, len(frames), _BATCH):
        batch = torch.from_numpy(np.ascontiguousarray(frames[start:start + _BATCH])).permute(0, 3, 1, 2)
        out.append(mesh(batch))
    return np.concatenate(out) if out else np.zeros((0, 468, 2))


def _poses(crops: np.ndarray) -> np.ndarray:
    from bench.data.head_pose import PoseEstimator

    estimator = PoseEstimator(_mesh())
    out = []
    for start in range(0, len(crops), _BATCH):
        batch = torch.from_numpy(np.ascontiguousarray(crops[start:start + _BATCH])).permute(0, 3, 1, 2)
        out.append(np.asarray(estimator(batch), dtype=np.float64))
    return np.concatenate(out)


def qa_row(source: Source, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"file": source.name, "clip_id": source.clip_id, "status": "skipped", "reason": "",
                           "frames_in": 0, "frames_out": 0, "fps_in": math.nan, "sample_rate_in": 0,
                           "face_found": math.nan, "yaw_min": math.nan, "yaw_max": math.nan,
                           "yaw_median_abs": math.nan, "audio_dbfs": math.nan, "trimmed": "", "notes": ""}
    row.update(values)
    return row


def prepare_source(source: Source, out_dir: str, options: Options) -> dict[str, Any]:
    """Prepare one file; returns {"qa": row, "entry": manifest entry or None, "source_sha256": ...}."""
    path = Path(source.path)
    sha = file_sha256(path) if path.is_file() else ""
    try:
        row, entry = _prepare(source, path, Path(out_dir), options, sha)
    except SourceError as error:
        row, entry = qa_row(source, reason=str(error)), None
    except BenchError as error:  # e.g. MediaPipe missing: every file would fail the same way
        raise error
    except (RuntimeError, ValueError, MemoryError) as error:  # a source that breaks a library: skip, say why
        row, entry = qa_row(source, reason=f"failed: {type(error).__name__}: {error}".splitlines()[0]), None
    if entry is None:
        log.warning("%s: skipped: %s", source.name, row["reason"])
    return {"qa": row, "entry": entry, "source_sha256": sha}


def _prepare(source: Source, path: Path, out_dir: Path, options: Options,
             sha: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    if not path.is_file():
        raise SourceError("no such file")
    scan = scan_video(path, options.max_seconds)
    audio = read_audio(path, options.max_seconds)
    info: dict[str, Any] = {"frames_in": len(scan.times), "fps_in": round(scan.fps_in, 3),
                            "sample_rate_in": audio.rate_in}
    notes = []
    if variable_rate(scan.times):
        notes.append("variable frame rate (resampled by time stamps)")
    if scan.grayscale:
        notes.append("grayscale source (replicated to RGB)")
    if audio.rate_in < SAMPLE_RATE:
        notes.append(f"audio at {audio.rate_in} Hz, upsampled (no content above {audio.rate_in // 2} Hz)")
    if audio.channels > 1:
        notes.append(f"{audio.channels} audio channels mixed to mono")
    indices = select_frames(scan.times, scan.fps_in)
    wave, covered = align_audio(audio, float(scan.times[0]), len(indices))
    trimmed = []
    if covered < len(indices):
        trimmed.append(f"last {len(indices) - covered} frames: no audio under them")
        indices = indices[:covered]
    if len(indices) < MIN_FRAMES:
        raise SourceError(f"{len(indices)} frames at {VIDEO_FPS} fps with audio, shorter than the sync window "
                          f"({MIN_FRAMES} frames)")
    unique, inverse = np.unique(indices, return_inverse=True)
    points = _run_mesh(scan.small[unique])[inverse] * scan.scale
    boxes, found = crop_boxes(points, scan.height, scan.width)
    ratio = float(found.mean())
    info.update(face_found=round(ratio, 4))
    if ratio < MIN_FOUND:
        detail = "no face found" if not found.any() else f"face found in {ratio:.0%} of frames"
        raise SourceError(f"{detail} (< {MIN_FOUND:.0%})", ) from None
    crops = crop_frames(path, indices, boxes, options.size, scan.times)
    crop_points = _run_mesh(crops)
    poses = _poses(crops).astype(np.float32)
    landmarks, visible = named_landmarks(crop_points)
    visible &= found[:, None]  # a frame whose box was filled in is flagged even if the mesh found a face
    yaw = poses[:, 0]
    finite = np.isfinite(yaw)
    median_abs = float(np.median(np.abs(yaw[finite]))) if finite.any() else math.nan
    stratum = stratum_of(median_abs) if finite.any() else "unknown"
    meta = {"identity": source.identity, "split": "train", "stratum": stratum, "source": source.name,
            "source_sha256": sha, "landmark_names": list(LANDMARKS), "viseme_names": [],
            "face_found": round(ratio, 4), "fps_in": round(scan.fps_in, 3), "prepared_by": "bench data prepare",
            "pose_labels": "estimated (bench.data.head_pose on the crops)"}
    clip = Clip(clip_id=source.clip_id, frames=crops, audio=wave, fps=float(VIDEO_FPS), sample_rate=SAMPLE_RATE,
                yaw=yaw, pitch=poses[:, 1], roll=poses[:, 2], mouth_open=mouth_opening(crop_points),
                viseme=np.full(len(crops), -1, np.int16), landmarks=landmarks, landmark_visible=visible, meta=meta)
    file = f"{source.clip_id}.npz"
    clip_sha = save_clip(out_dir / file, clip)
    row = qa_row(source, status="ok", frames_out=len(crops),
                 yaw_min=float(np.min(yaw[finite])) if finite.any() else math.nan,
                 yaw_max=float(np.max(yaw[finite])) if finite.any() else math.nan, yaw_median_abs=median_abs,
                 audio_dbfs=round(rms_dbfs(wave), 2), trimmed="; ".join(trimmed), notes="; ".join(notes), **info)
    return row, manifest_entry(clip, file, clip_sha)

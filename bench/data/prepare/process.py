"""Prepare one source video: decode, find shot cuts, track the largest face, crop, label, and save one clip
archive per part (the pieces between cuts, split further to at most ``Options.max_seconds``).

Runs in worker processes: everything it needs comes in as plain arguments, and it returns QA rows (one per
clip and one per dropped part) and the clips' manifest entries, never raising for a bad source.
"""
from __future__ import annotations

import hashlib
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

from .cuts import Part, find_cuts, plan_parts
from .decode import (AudioTrack, SourceError, align_audio, crop_frames, read_audio, rms_dbfs, scan_video,
                     select_frames, variable_rate)
from .track import (LANDMARKS, MAX_FACES, MIN_FOUND, crop_boxes, face_boxes, largest_track, mouth_opening,
                    named_landmarks)

log = logging.getLogger(__name__)

DEFAULT_MAX_SECONDS = 20.0
MIN_FRAMES = SYNC_WINDOW + 1  # the sync expert reads SYNC_WINDOW frames; anything shorter is unusable
_PER_FRAME = SAMPLE_RATE // VIDEO_FPS
_BATCH = 32
_MESH: Any = None  # one FaceMesh per process, built on first use


@dataclass(frozen=True)
class Source:
    path: str  # the file
    clip_id: str  # unique within the dataset
    identity: str  # who is in it (the layout's, or the clip id)
    name: str  # the path as reported (relative to --videos where there is one)
    audio: str = ""  # a separate audio file the layout expects (MEAD), "" when the video carries the sound
    view: str = ""  # the camera view the layout names (MEAD), "" if none


@dataclass(frozen=True)
class Options:
    size: int = 256
    max_seconds: float | None = DEFAULT_MAX_SECONDS  # longest clip; longer videos are split (None: never)
    first_seconds: float | None = None  # read only this much of each video (None: all of it)


def _mesh() -> Any:
    global _MESH
    if _MESH is None:
        from bench.data.landmarks import FaceMesh

        _MESH = FaceMesh()
    return _MESH


def _run_faces(frames: np.ndarray) -> np.ndarray:
    """T x H x W x 3 uint8 -> T x MAX_FACES x 468 x 2 pixel points of every face (NaN: none), in batches."""
    mesh = _mesh()
    out = []
    for start in range(0, len(frames), _BATCH):
        batch = torch.from_numpy(np.ascontiguousarray(frames[start:start + _BATCH])).permute(0, 3, 1, 2)
        out.append(mesh.faces(batch, MAX_FACES))
    return np.concatenate(out) if out else np.zeros((0, MAX_FACES, 468, 2))


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


def source_digest(source: Source) -> str:
    """sha256 of the video, combined with the separate audio file's where there is one (what resume compares)."""
    path = Path(source.path)
    sha = file_sha256(path) if path.is_file() else ""
    if source.audio and Path(source.audio).is_file():
        sha = hashlib.sha256(f"{sha}:{file_sha256(Path(source.audio))}".encode()).hexdigest()
    return sha


def qa_row(source: Source, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"file": source.name, "clip_id": source.clip_id, "status": "skipped", "reason": "",
                           "view": source.view, "segment": "", "start_s": math.nan, "end_s": math.nan,
                           "frames_in": 0, "frames_out": 0, "fps_in": math.nan, "sample_rate_in": 0,
                           "face_found": math.nan, "faces": 0, "cuts": 0, "yaw_min": math.nan, "yaw_max": math.nan,
                           "yaw_median_abs": math.nan, "audio_dbfs": math.nan, "trimmed": "", "notes": ""}
    row.update(values)
    return row


def prepare_source(source: Source, out_dir: str, options: Options) -> dict[str, Any]:
    """Prepare one file; returns {"qa": rows (one per clip and per dropped part), "entries": manifest entries,
    "source_sha256": ...}. A file with nothing usable gives one "skipped" row and no entries."""
    path = Path(source.path)
    sha = source_digest(source)
    try:
        rows, entries = _prepare(source, path, Path(out_dir), options, sha)
    except SourceError as error:
        rows, entries = [qa_row(source, reason=str(error))], []
    except BenchError as error:  # e.g. MediaPipe missing: every file would fail the same way
        raise error
    except (RuntimeError, ValueError, MemoryError) as error:  # a source that breaks a library: skip, say why
        rows, entries = [qa_row(source, reason=f"failed: {type(error).__name__}: {error}".splitlines()[0])], []
    if not entries:
        log.warning("%s: skipped: %s", source.name, rows[0]["reason"])
    return {"qa": rows, "entries": entries, "source_sha256": sha}


def _sound(source: Source, path: Path, seconds: float | None) -> tuple[AudioTrack, str]:
    """The audio: the layout's separate file where it names one (the video's own sound only if that file is
    missing, said in the note), else the video's."""
    if not source.audio:
        return read_audio(path, seconds), ""
    separate = Path(source.audio)
    if separate.is_file():
        try:
            return read_audio(separate, seconds), ""
        except SourceError as error:
            raise SourceError(f"audio file {separate.name}: {error}") from None
    try:
        track = read_audio(path, seconds)
    except SourceError as error:
        raise SourceError(f"no audio: {source.audio} is missing and the video has none ({error})") from None
    return track, f"separate audio {separate.name} missing: the video's own sound used"


def _prepare(source: Source, path: Path, out_dir: Path, options: Options,
             sha: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not path.is_file():
        raise SourceError("no such file")
    scan = scan_video(path, options.first_seconds)
    audio, sound_note = _sound(source, path, options.first_seconds)
    info: dict[str, Any] = {"frames_in": len(scan.times), "fps_in": round(scan.fps_in, 3),
                            "sample_rate_in": audio.rate_in}
    notes = [sound_note] if sound_note else []
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
    points = _run_faces(scan.small[unique])[inverse] * scan.scale  # T x faces x 468 x 2, full-size pixels
    centres, sizes = face_boxes(points)
    with np.errstate(invalid="ignore"):
        largest = np.argmax(np.nan_to_num(sizes, nan=-1.0), axis=1)
    pick = np.arange(len(points))
    cuts = find_cuts(scan.small[indices], centres[pick, largest], sizes[pick, largest])
    max_frames = round(options.max_seconds * VIDEO_FPS) if options.max_seconds else None
    parts = plan_parts(len(indices), cuts, max_frames, MIN_FRAMES)
    if cuts:
        notes.append("cut at " + ", ".join(f"{c.frame / VIDEO_FPS:.2f} s ({c.cue})" for c in cuts))
    kept, dropped = _track_parts(parts, points, scan.height, scan.width)
    if not kept:
        reasons = "; ".join(f"{p.seconds}: {p.reason}" for p in dropped)
        raise SourceError(dropped[0].reason if len(dropped) == 1 else f"no usable part ({reasons})")
    if max_frames and any(p.stop - p.start > max_frames for p in plan_parts(len(indices), cuts, None, MIN_FRAMES)):
        notes.append(f"long video: split into clips of at most {options.max_seconds:g} s")
    all_indices = np.concatenate([indices[t.part.start:t.part.stop] for t in kept])
    all_boxes = np.concatenate([t.boxes for t in kept])
    crops = crop_frames(path, all_indices, all_boxes, options.size, scan.times)
    crop_points = _run_mesh(crops)
    poses = _poses(crops).astype(np.float32)
    rows, entries, offset = [], [], 0
    for number, track in enumerate(kept, start=1):
        part, n = track.part, track.part.stop - track.part.start
        clip_id = source.clip_id if len(kept) == 1 else f"{source.clip_id}-seg{number}"
        span = slice(offset, offset + n)
        offset += n
        segment = {"index": number, "of": len(kept), "start_s": part.start / VIDEO_FPS,
                   "end_s": part.stop / VIDEO_FPS}
        clip_wave = wave[part.start * _PER_FRAME:part.stop * _PER_FRAME]
        clip_notes = list(notes)
        if track.faces > 1:
            clip_notes.append(f"{track.faces} faces in view: the largest track of {track.tracks} was used")
        row, entry = _write_clip(source, out_dir, clip_id, crops[span], crop_points[span], poses[span], clip_wave,
                                 track, segment, sha, scan.fps_in)
        row.update(info, segment=f"{number}/{len(kept)}", cuts=len(cuts), trimmed="; ".join(trimmed),
                   notes="; ".join(clip_notes))
        rows.append(row)
        entries.append(entry)
    for part in dropped:
        rows.append(qa_row(source, clip_id="", status="dropped", reason=part.reason, start_s=part.start / VIDEO_FPS,
                           end_s=part.stop / VIDEO_FPS, frames_out=0, cuts=len(cuts), **info))
    return rows, entries


@dataclass
class _Track:
    part: Part
    boxes: np.ndarray  # n x 3 crop boxes
    found: np.ndarray  # n: the chosen face found
    faces: int  # most faces in one frame
    tracks: int


def _track_parts(parts: list[Part], points: np.ndarray, height: int, width: int) -> tuple[list[_Track], list[Part]]:
    """Per part: the largest face track and its crop boxes; parts without a face often enough are dropped."""
    kept, dropped = [], []
    for part in parts:
        if part.reason:
            dropped.append(part)
            continue
        chosen, faces, tracks = largest_track(points[part.start:part.stop])
        boxes, found = crop_boxes(chosen, height, width)
        ratio = float(found.mean())
        if ratio < MIN_FOUND:
            detail = "no face found" if not found.any() else f"face found in {ratio:.0%} of frames"
            dropped.append(Part(part.start, part.stop, f"{detail} (< {MIN_FOUND:.0%})"))
            continue
        kept.append(_Track(part, boxes, found, faces, tracks))
    return kept, dropped


def _write_clip(source: Source, out_dir: Path, clip_id: str, crops: np.ndarray, crop_points: np.ndarray,
                poses: np.ndarray, wave: np.ndarray, track: _Track, segment: dict[str, Any], sha: str,
                fps_in: float) -> tuple[dict[str, Any], dict[str, Any]]:
    landmarks, visible = named_landmarks(crop_points)
    visible &= track.found[:, None]  # a frame whose box was filled in is flagged even if the mesh found a face
    yaw = poses[:, 0]
    finite = np.isfinite(yaw)
    median_abs = float(np.median(np.abs(yaw[finite]))) if finite.any() else math.nan
    stratum = stratum_of(median_abs) if finite.any() else "unknown"
    ratio = round(float(track.found.mean()), 4)
    meta = {"identity": source.identity, "split": "train", "stratum": stratum, "source": source.name,
            "source_sha256": sha, "landmark_names": list(LANDMARKS), "viseme_names": [],
            "face_found": ratio, "fps_in": round(fps_in, 3), "prepared_by": "bench data prepare",
            "pose_labels": "estimated (bench.data.head_pose on the crops)", "segment": segment,
            "faces": track.faces}
    if source.view:
        meta["view"] = source.view
    clip = Clip(clip_id=clip_id, frames=crops, audio=wave, fps=float(VIDEO_FPS), sample_rate=SAMPLE_RATE,
                yaw=yaw, pitch=poses[:, 1], roll=poses[:, 2], mouth_open=mouth_opening(crop_points),
                viseme=np.full(len(crops), -1, np.int16), landmarks=landmarks, landmark_visible=visible, meta=meta)
    file = f"{clip_id}.npz"
    entry = manifest_entry(clip, file, save_clip(out_dir / file, clip))
    entry["source_id"] = source.clip_id  # segments of one video share it: the split keeps them together
    if source.view:
        entry["view"] = source.view
    row = qa_row(source, clip_id=clip_id, status="ok", frames_out=len(crops), face_found=ratio, faces=track.faces,
                 start_s=segment["start_s"], end_s=segment["end_s"],
                 yaw_min=float(np.min(yaw[finite])) if finite.any() else math.nan,
                 yaw_max=float(np.max(yaw[finite])) if finite.any() else math.nan, yaw_median_abs=median_abs,
                 audio_dbfs=round(rms_dbfs(wave), 2))
    return row, entry

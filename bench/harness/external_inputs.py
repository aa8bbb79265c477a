"""`bench score`'s inputs: pairing generated outputs with ground truth, and checking them before any work.

A pair must agree in frame count, size, frame rate (where both are videos) and colour (grayscale or
colour); uncertainty maps must match the frames; every problem is one line naming the files. Without
ground truth (``check_pred``, ``batch_preds``) a "pair" is the generated video alone (``gt`` None); the
identity source (``source_paths``) and the real set (``check_real_dir``) are checked the same way.
"""
from __future__ import annotations

import hashlib
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import video
from bench.api import SAMPLE_RATE
from bench.errors import BenchError
from bench.files import file_sha256

SOURCE_FRAMES = 5  # frames of a --source video (evenly spread) whose face crops make the identity
FPS_TOLERANCE = 0.002  # relative: 29.97 (30000/1001) against 30 passes, 25 against 30 or 50 does not


class ScoreError(BenchError, ValueError):
    """Inputs that do not pair up (frame counts, sizes, rates, colour, stems), or a run that cannot resume; one line."""


@dataclass(frozen=True)
class Pair:
    """One generated video and its ground truth (None: scored without ground truth), checked to agree."""

    clip_id: str
    pred: Path
    gt: Path | None
    uncertainty: Path | None
    n_frames: int
    height: int
    width: int
    fps: float | None


# ---------------------------------------------------------------- inputs
def _has_frames(path: Path) -> bool:
    return any(q.is_file() and q.suffix.lower() in video.IMAGE_SUFFIXES for q in path.iterdir())


def is_batch_dir(path: Path) -> bool:
    """A directory of videos (or of per-clip frame directories), as opposed to a directory of frames."""
    if not path.is_dir() or _has_frames(path):
        return False
    return any((p.is_file() and p.suffix.lower() in video.VIDEO_SUFFIXES) or (p.is_dir() and _has_frames(p))
               for p in path.iterdir())


def _stems(directory: Path, what: str) -> dict[str, Path]:
    """clip id (file stem, or directory name) -> video file or frame directory inside a batch directory."""
    out: dict[str, Path] = {}
    for path in sorted(directory.iterdir(), key=lambda p: video.natural_key(p.name)):
        if (path.is_file() and path.suffix.lower() in video.VIDEO_SUFFIXES) or (path.is_dir() and _has_frames(path)):
            stem = clip_id_of(path)
            if stem in out:
                raise ScoreError(f"{directory}: two {what} inputs share the stem '{stem}' "
                                 f"({out[stem].name}, {path.name})")
            out[stem] = path
    if not out:
        raise ScoreError(f"{directory}: directory holds no videos")
    return out


def clip_id_of(path: Path) -> str:
    return path.name if path.is_dir() else path.stem


def _fps_text(fps: float) -> str:
    return f"{fps:.3f}".rstrip("0").rstrip(".")


def check_pair(clip_id: str, pred: Path, gt: Path, uncertainty: Path | None = None) -> Pair:
    """Probe both sources and the uncertainty maps; mismatches raise one line naming the files."""
    p, g = video.probe(pred), video.probe(gt)
    if p.grayscale != g.grayscale:
        raise ScoreError(f"{pred} is {'grayscale' if p.grayscale else 'colour'} but {gt} is "
                         f"{'grayscale' if g.grayscale else 'colour'}: both must be colour or both grayscale")
    # Frame directories and images carry no rate: checked only between two videos.
    if p.fps and g.fps and abs(p.fps - g.fps) > FPS_TOLERANCE * max(p.fps, g.fps):
        raise ScoreError(f"{pred} is {_fps_text(p.fps)} fps but {gt} is {_fps_text(g.fps)} fps: frame rates must "
                         "match (frames are paired by index)")
    if p.n_frames != g.n_frames:  # packet counts can disagree with decoding in odd files: decode to be sure
        p, g = video.probe(pred, exact=True), video.probe(gt, exact=True)
    if p.n_frames != g.n_frames:
        raise ScoreError(f"{pred} has {p.n_frames} frames but {gt} has {g.n_frames}")
    if (p.height, p.width) != (g.height, g.width):
        raise ScoreError(f"{pred} is {p.width}x{p.height} but {gt} is {g.width}x{g.height}: sizes must match")
    if uncertainty is not None:
        video.check_uncertainty(uncertainty, p.n_frames, p.height, p.width)
    return Pair(clip_id, Path(pred), Path(gt), None if uncertainty is None else Path(uncertainty),
                p.n_frames, p.height, p.width, p.fps if p.fps is not None else g.fps)


def check_pred(clip_id: str, pred: Path) -> Pair:
    """A generated video scored without ground truth: probed (readable, frames, size, rate) up front."""
    p = video.probe(pred)
    return Pair(clip_id, Path(pred), None, None, p.n_frames, p.height, p.width, p.fps)


def batch_preds(pred_dir: Path) -> list[Pair]:
    """Every video (or per-clip frame directory) in ``pred_dir``, clip_id = stem, scored without ground truth."""
    return [check_pred(stem, path) for stem, path in _stems(pred_dir, "pred").items()]


def source_paths(source: Path | None, stems: list[str]) -> dict[str, Path]:
    """clip_id -> the identity source (an image, a video or a frame directory) for csim.

    ``source`` is one image / video / frame directory for every clip, or a directory holding ``<stem>.*`` (a
    file or a frame directory) per clip. Each is probed here, so an unreadable one fails before any work.
    """
    if source is None:
        return {}
    source = Path(source)
    if not source.exists():
        raise ScoreError(f"{source}: --source: no such file or directory")
    paths = {stem: source for stem in stems}
    if source.is_dir() and not _has_frames(source):
        found = {clip_id_of(p): p for p in sorted(source.iterdir(), reverse=True)
                 if (p.is_file() and p.suffix.lower() in video.VIDEO_SUFFIXES | video.IMAGE_SUFFIXES)
                 or (p.is_dir() and _has_frames(p))}
        missing = [stem for stem in stems if stem not in found]
        if missing:
            raise ScoreError(f"{source}: no identity source (<stem>.* image, video or frame directory) for "
                             f"{', '.join(missing)}")
        paths = {stem: found[stem] for stem in stems}
    for path in sorted(set(paths.values())):
        video.probe(path)  # unreadable or empty sources fail here, naming the file
    return paths


def identity_crops(path: Path, estimator: Any | None) -> list[np.ndarray]:
    """Face crops (h x w x 3 uint8) of up to ``SOURCE_FRAMES`` evenly spread frames of an identity source (one for
    an image), boxed by the face mesh (``estimator``: a ``bench.data.head_pose.PoseEstimator``) as the generated
    frames are (``bench.data.face_box.MESH``); without a mesh, the whole frames. A source in which no face is found
    is refused in one line naming it."""
    import torch

    from bench.data.face_box import MESH, face_boxes
    from bench.harness.scorer_face import source_crops as crops_of

    n = video.probe(path).n_frames
    wanted = set(np.linspace(0, n - 1, min(n, SOURCE_FRAMES)).round().astype(int).tolist())
    with closing(video.iter_frames(path)) as frames:
        images = np.stack([frame for i, frame in enumerate(frames) if i in wanted])
    if estimator is None:
        return list(images)
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    boxes = face_boxes(estimator.mesh.points_3d(tensor)[..., :2], images.shape[2], images.shape[1], MESH)
    crops = crops_of(images, boxes)
    if not crops:
        raise ScoreError(f"{path}: --source: no face found in {len(images)} frame(s)")
    return crops


def check_real_dir(real: Path | None) -> list[Path]:
    """The videos of the real set (``--real DIR``, recursively, natural order); one line when there are none."""
    if real is None:
        return []
    real = Path(real)
    if not real.is_dir():
        raise ScoreError(f"{real}: --real must be a directory of real videos"
                         f"{'' if real.exists() else ' (no such directory)'}")
    files = sorted((p for p in real.rglob("*") if p.is_file() and p.suffix.lower() in video.VIDEO_SUFFIXES),
                   key=lambda p: video.natural_key(p.relative_to(real).as_posix()))
    if not files:
        raise ScoreError(f"{real}: --real holds no videos ({', '.join(sorted(video.VIDEO_SUFFIXES))})")
    for path in files:
        video.probe(path)  # unreadable or empty videos fail here, naming the file
    return files


def batch_pairs(pred_dir: Path, gt_dir: Path, uncertainty_dir: Path | None) -> list[Pair]:
    preds, gts = _stems(pred_dir, "pred"), _stems(gt_dir, "gt")
    only_pred, only_gt = sorted(set(preds) - set(gts)), sorted(set(gts) - set(preds))
    if only_pred or only_gt:
        raise ScoreError(f"{pred_dir} and {gt_dir} do not pair up by file stem: "
                         f"only in pred: {', '.join(only_pred) or '-'}; only in gt: {', '.join(only_gt) or '-'}")
    maps: dict[str, Path] = {}
    if uncertainty_dir is not None:
        if not uncertainty_dir.is_dir():
            raise ScoreError(f"{uncertainty_dir}: with directories of videos, --uncertainty must be a directory "
                             "holding <stem>.npy or <stem>/ per video")
        for stem in preds:
            found = [p for p in (uncertainty_dir / f"{stem}.npy", uncertainty_dir / stem) if p.exists()]
            if found:
                maps[stem] = found[0]
        missing = [stem for stem in preds if stem not in maps]
        if missing:
            raise ScoreError(f"{uncertainty_dir}: no uncertainty (<stem>.npy or <stem>/) for {', '.join(missing)}")
    return [check_pair(stem, preds[stem], gts[stem], maps.get(stem)) for stem in preds]


def audio_records(audio: Path | None, stems: list[str]) -> dict[str, dict[str, Any]]:
    """Decode the audio once to prove it is usable; record path, hash and length per clip.

    ``audio`` is one file (for every clip) or a directory holding ``<stem>.*`` per clip.
    """
    if audio is None:
        return {}
    paths = {stem: audio for stem in stems}
    if audio.is_dir():
        files = {p.stem: p for p in sorted(audio.iterdir(), reverse=True) if p.is_file()}
        missing = [stem for stem in stems if stem not in files]
        if missing:
            raise ScoreError(f"{audio}: no audio file <stem>.* for {', '.join(missing)}")
        paths = {stem: files[stem] for stem in stems}
    records = {}
    for stem, path in paths.items():
        wave = video.read_audio(path)
        records[stem] = {"path": str(path.resolve()), "sha256": file_sha256(path), "sample_rate": SAMPLE_RATE,
                         "samples": int(wave.size), "duration_s": wave.size / SAMPLE_RATE}
    return records


def inputs_hash(inputs: dict[str, Path | None], exclude: Path | None = None) -> str:
    """sha256 over every input file (directories: every file inside, by relative path).

    ``exclude``: a directory left out (the run directory, when --out lies inside an input directory,
    so that what the run writes does not change the hash its --resume checks).
    """
    skip = None if exclude is None else Path(exclude).resolve()
    digest = hashlib.sha256()
    for role, root in inputs.items():
        if root is None:
            continue
        root = Path(root)
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            if skip is not None and path.resolve().is_relative_to(skip):
                continue
            name = path.relative_to(root).as_posix() if root.is_dir() else path.name
            digest.update(f"{role}/{name}:{file_sha256(path)}\n".encode())
    return digest.hexdigest()

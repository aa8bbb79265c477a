"""The one clip format on disk, shared by synthetic and real data.

A dataset is a directory holding ``manifest.json`` and one ``<clip_id>.npz`` per clip.
Each clip archive holds plain arrays only (no pickles), so it loads with ``allow_pickle=False``:

========================  ===========  =====================================================
key                       dtype        shape / meaning
========================  ===========  =====================================================
``frames``                uint8        T x H x W x 3, RGB
``audio``                 float32      N, mono waveform in [-1, 1] at ``sample_rate``
``sample_rate``           int32        scalar (16000 for every dataset this project writes)
``fps``                   float32      scalar
``yaw/pitch/roll``        float32      T, head pose in degrees (yaw > 0: face turns to
                                       the image's left; pitch > 0: chin up)
``mouth_open``            float32      T, 0 (closed) ... 1 (wide open)
``viseme``                int16        T, index into ``meta["viseme_names"]`` (-1 unknown)
``landmarks``             float32      T x K x 2, pixel coordinates (x, y)
``landmark_visible``      bool         T x K, False where the point is self-occluded
``affected``              uint8        T, scene events per frame, a bit each (optional;
                                       bench.data.synth.dynamics.CONDITION_BITS)
``affected_mask``         bool         T x H x W, the events' pixels (optional)
``meta``                  str          JSON: clip_id, identity, split, stratum, source,
                                       landmark_names, viseme_names
========================  ===========  =====================================================

Archives are written with fixed zip timestamps so the same content gives the same bytes.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from bench.api import SAMPLE_RATE
from bench.errors import BenchError
from bench.files import atomic_write

log = logging.getLogger(__name__)

FORMAT = "talkbench-clips/1"
LABEL_KEYS = ("yaw", "pitch", "roll", "mouth_open", "viseme", "landmarks", "landmark_visible", "affected",
              "affected_mask")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class ClipFormatError(BenchError, ValueError):
    """A clip or dataset on disk does not follow the format; the message names the file."""


@dataclass
class Clip:
    clip_id: str
    frames: np.ndarray  # T x H x W x 3 uint8
    audio: np.ndarray  # N float32
    fps: float
    sample_rate: int = SAMPLE_RATE
    yaw: np.ndarray | None = None
    pitch: np.ndarray | None = None
    roll: np.ndarray | None = None
    mouth_open: np.ndarray | None = None
    viseme: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    landmark_visible: np.ndarray | None = None
    affected: np.ndarray | None = None
    affected_mask: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def identity(self) -> str:
        return str(self.meta.get("identity", self.clip_id))

    @property
    def split(self) -> str:
        return str(self.meta.get("split", "test"))

    def landmark(self, name: str) -> np.ndarray:
        """T x 2 coordinates of one named landmark."""
        names = list(self.meta.get("landmark_names", []))
        if self.landmarks is None or name not in names:
            raise KeyError(f"clip {self.clip_id} has no landmark {name!r}")
        return self.landmarks[:, names.index(name)]


def _array_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    # np.ascontiguousarray would turn 0-d scalars into 1-d arrays; np.require keeps the shape.
    np.lib.format.write_array(buffer, np.require(array, requirements='C'), allow_pickle=False)
    return buffer.getvalue()


def clip_arrays(clip: Clip) -> dict[str, np.ndarray]:
    """The arrays stored for a clip, with the format's dtypes."""
    arrays: dict[str, np.ndarray] = {
        "frames": np.asarray(clip.frames, dtype=np.uint8),
        "audio": np.asarray(clip.audio, dtype=np.float32),
        "sample_rate": np.asarray(clip.sample_rate, dtype=np.int32),
        "fps": np.asarray(clip.fps, dtype=np.float32),
    }
    dtypes = {"viseme": np.int16, "landmark_visible": np.bool_, "affected": np.uint8, "affected_mask": np.bool_}
    for key in LABEL_KEYS:
        value = getattr(clip, key)
        if value is not None:
            arrays[key] = np.asarray(value, dtype=dtypes.get(key, np.float32))
    meta = dict(clip.meta, clip_id=clip.clip_id)
    arrays["meta"] = np.asarray(json.dumps(meta, sort_keys=True))
    return arrays


def save_clip(path: str | Path, clip: Clip, compress: bool = True) -> str:
    """Write a clip archive deterministically; returns its sha256."""
    _check_clip(clip, str(path))
    path = Path(path)
    buffer = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for key, array in sorted(clip_arrays(clip).items()):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            archive.writestr(info, _array_bytes(array), compresslevel=1 if compress else None)
    data = buffer.getvalue()
    atomic_write(path, data)
    return hashlib.sha256(data).hexdigest()


def load_clip(path: str | Path, sha256: str | None = None) -> Clip:
    """Read a clip archive; with ``sha256`` (its manifest entry's), refuse a file whose bytes changed since."""
    path = Path(path)
    try:
        data = path.read_bytes()  # read once: hashed here, decoded below
    except FileNotFoundError:
        raise ClipFormatError(f"{path}: no such clip file") from None
    except OSError as error:
        raise ClipFormatError(f"{path}: unreadable clip file ({error.strerror or error})") from None
    if sha256:
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ClipFormatError(f"{path}: changed since its manifest was written (sha256 {actual} != {sha256}); "
                                  "restore the file or rebuild the dataset")
    if not data.startswith(b"PK"):  # np.load would try it as a .npy or a pickle and say so confusingly
        raise ClipFormatError(f"{path}: not a clip archive (an .npz is a zip file; this one is not)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise ClipFormatError(f"{path}: not a readable clip archive ({error})") from None
    for key in ("frames", "audio", "fps", "meta"):
        if key not in arrays:
            raise ClipFormatError(f"{path}: clip archive has no '{key}' array")
    try:
        meta = json.loads(str(arrays.pop("meta").reshape(())))
        fps, sample_rate = float(arrays.pop("fps")), int(arrays.pop("sample_rate", SAMPLE_RATE))
    except (ValueError, TypeError) as error:  # JSONDecodeError is a ValueError; non-scalar arrays raise either
        raise ClipFormatError(f"{path}: 'meta' must be a JSON string and 'fps', 'sample_rate' scalars ({error})") from None
    if not isinstance(meta, dict):
        raise ClipFormatError(f"{path}: 'meta' must hold a JSON object, got {type(meta).__name__}")
    clip = Clip(
        clip_id=str(meta.get("clip_id", path.stem)),
        frames=arrays.pop("frames"),
        audio=arrays.pop("audio"),
        fps=fps,
        sample_rate=sample_rate,
        meta=meta,
        **{key: arrays[key] for key in LABEL_KEYS if key in arrays},
    )
    _check_clip(clip, str(path))
    return clip


def _check_clip(clip: Clip, where: str) -> None:
    frames = np.asarray(clip.frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ClipFormatError(f"{where}: frames must be uint8 T x H x W x 3, got {frames.dtype} {frames.shape}")
    n = frames.shape[0]
    if n == 0:
        raise ClipFormatError(f"{where}: the clip has no frames")
    if np.ndim(clip.audio) != 1:
        raise ClipFormatError(f"{where}: audio must be mono (one dimension), got shape {np.shape(clip.audio)}")
    if not (np.isfinite(clip.fps) and clip.fps > 0 and clip.sample_rate > 0):
        raise ClipFormatError(f"{where}: fps and sample_rate must be positive, got {clip.fps} and {clip.sample_rate}")
    for key in LABEL_KEYS:
        value = getattr(clip, key)
        if value is not None and np.shape(value)[:1] != (n,):
            raise ClipFormatError(f"{where}: label '{key}' has shape {np.shape(value)} for {n} frames")
    if clip.affected_mask is not None and np.shape(clip.affected_mask) != frames.shape[:3]:
        raise ClipFormatError(f"{where}: label 'affected_mask' has shape {np.shape(clip.affected_mask)}, "
                              f"not the frames' {frames.shape[:3]}")


@dataclass
class Dataset:
    """A dataset directory: its manifest and lazy access to its clips."""

    root: Path
    manifest: dict[str, Any]

    @property
    def entries(self) -> list[dict[str, Any]]:
        return list(self.manifest["clips"])

    def split(self, name: str) -> list[dict[str, Any]]:
        return [entry for entry in self.entries if entry["split"] == name]

    def clip(self, entry: dict[str, Any]) -> Clip:
        """Load one clip, checking its bytes against the manifest's sha256 (the data hash covers them)."""
        return load_clip(self.root / entry["file"], sha256=entry.get("sha256"))

    def clips(self, split: str) -> Iterator[Clip]:
        for entry in self.split(split):
            yield self.clip(entry)

    @property
    def content_hash(self) -> str:
        """Hash over the clip hashes: identifies the data a checkpoint was trained on."""
        digest = hashlib.sha256()
        for entry in sorted(self.entries, key=lambda e: e["id"]):
            digest.update(f"{entry['id']}:{entry.get('sha256', '')}\n".encode())
        return digest.hexdigest()


def write_manifest(root: str | Path, clips: list[dict[str, Any]], **info: Any) -> Path:
    """Write ``manifest.json`` for a dataset directory (atomically)."""
    root = Path(root)
    manifest = {"format": FORMAT, **info, "clips": sorted(clips, key=lambda e: e["id"])}
    return atomic_write(root / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def manifest_entry(clip: Clip, file: str, sha256: str) -> dict[str, Any]:
    height, width = clip.frames.shape[1:3]
    return {
        "id": clip.clip_id,
        "file": file,
        "split": clip.split,
        "stratum": clip.meta.get("stratum"),
        "identity": clip.identity,
        "n_frames": clip.n_frames,
        "fps": float(clip.fps),
        "height": int(height),
        "width": int(width),
        "sha256": sha256,
    }


# What a dataset is, for messages about directories that are not one.
DATASET_HINT = (f'a dataset is a directory with a {FORMAT} manifest.json (a JSON object with "format": "{FORMAT}" '
                'and "clips": [...]) and one .npz per clip, as `bench data synth --out DIR` writes; make one from a '
                'folder of videos with `bench data prepare` (--videos DIR --out DIR; `bench score` scores videos '
                'directly)')
PREPARE_STATE = ".prepare-state.json"  # bench.data.prepare's marker of an unfinished dataset
_ENTRY_KEYS = ("id", "file", "split")
_VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def _manifest_problem(manifest: Any) -> str | None:
    """What is wrong with a parsed manifest's shape, or None."""
    if not isinstance(manifest, dict):
        return f"a JSON {type(manifest).__name__}, not a {FORMAT} manifest"
    if manifest.get("format") != FORMAT:
        found = f"{manifest['format']!r}" if "format" in manifest else "none"
        return f'"format" is {found}, not "{FORMAT}"'
    if not isinstance(manifest.get("clips"), list):
        return 'has no "clips" list'
    ids: set[str] = set()
    for i, entry in enumerate(manifest["clips"]):
        if not isinstance(entry, dict):
            return f"clips[{i}] is a JSON {type(entry).__name__}, not an object"
        missing = [key for key in _ENTRY_KEYS if key not in entry]
        if missing:
            return f"clips[{i}] lacks {missing} (each clip entry needs {list(_ENTRY_KEYS)})"
        if not all(isinstance(entry[key], str) and entry[key] for key in _ENTRY_KEYS):
            return f"clips[{i}]: {list(_ENTRY_KEYS)} must be non-empty strings"
        if not isinstance(entry.get("sha256", ""), (str, type(None))):
            return f"clips[{i}]: \"sha256\" must be a hex string"
        if entry["id"] in ids:  # two clips under one id would be merged in every per-clip statistic
            return f"clips[{i}]: clip id {entry['id']!r} appears twice"
        ids.add(entry["id"])
    return None


def open_dataset(root: str | Path) -> Dataset:
    """Open a dataset directory; ClipFormatError (one line naming the file) for anything that is not one."""
    root = Path(root)
    if not root.exists():
        raise ClipFormatError(f"{root}: no such dataset directory; {DATASET_HINT}")
    if not root.is_dir():
        raise ClipFormatError(f"{root}: not a directory; {DATASET_HINT}")
    path = root / "manifest.json"
    if not path.is_file():
        videos = [p for p in root.iterdir() if p.suffix.lower() in _VIDEO_SUFFIXES]
        found = f" (it holds {len(videos)} video file(s))" if videos else ""
        if (root / PREPARE_STATE).is_file():
            raise ClipFormatError(f"{path}: not written yet: `bench data prepare` was interrupted in {root}; run "
                                  "the same command again to resume it")
        raise ClipFormatError(f"{path}: dataset manifest not found{found}; {DATASET_HINT}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ClipFormatError(f"{path}: not valid JSON ({error}); {DATASET_HINT}") from None
    except OSError as error:
        raise ClipFormatError(f"{path}: unreadable ({error.strerror or error})") from None
    problem = _manifest_problem(manifest)
    if problem:
        raise ClipFormatError(f"{path}: {problem}; {DATASET_HINT}")
    # Check every listed file now, not after minutes of training on the first ones.
    absent = [entry["file"] for entry in manifest["clips"] if not (root / entry["file"]).is_file()]
    if absent:
        more = f" and {len(absent) - 1} more" if len(absent) > 1 else ""
        raise ClipFormatError(f"{path}: lists clip file {absent[0]!r}{more}, not found in {root}")
    unchecked = sum(1 for entry in manifest["clips"] if not entry.get("sha256"))
    if unchecked:
        log.warning("%s: %d clip entries have no sha256: their files are not checked when loaded and the data "
                    "hash does not cover their content", path, unchecked)
    return Dataset(root=root, manifest=manifest)

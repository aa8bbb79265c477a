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
``meta``                  str          JSON: clip_id, identity, split, stratum, source,
                                       landmark_names, viseme_names
========================  ===========  =====================================================

Archives are written with fixed zip timestamps so the same content gives the same bytes.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

FORMAT = "talkbench-clips/1"
LABEL_KEYS = ("yaw", "pitch", "roll", "mouth_open", "viseme", "landmarks", "landmark_visible")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class ClipFormatError(ValueError):
    """A clip or dataset on disk does not follow the format; the message names the file."""


@dataclass
class Clip:
    clip_id: str
    frames: np.ndarray  # T x H x W x 3 uint8
    audio: np.ndarray  # N float32
    fps: float
    sample_rate: int = 16000
    yaw: np.ndarray | None = None
    pitch: np.ndarray | None = None
    roll: np.ndarray | None = None
    mouth_open: np.ndarray | None = None
    viseme: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    landmark_visible: np.ndarray | None = None
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
    dtypes = {"viseme": np.int16, "landmark_visible": np.bool_}
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
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return hashlib.sha256(data).hexdigest()


def load_clip(path: str | Path) -> Clip:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise ClipFormatError(f"{path}: no such clip file") from None
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ClipFormatError(f"{path}: not a readable clip archive ({error})") from None
    for key in ("frames", "audio", "fps", "meta"):
        if key not in arrays:
            raise ClipFormatError(f"{path}: clip archive has no '{key}' array")
    meta = json.loads(str(arrays.pop("meta").reshape(())))
    clip = Clip(
        clip_id=str(meta.get("clip_id", path.stem)),
        frames=arrays.pop("frames"),
        audio=arrays.pop("audio"),
        fps=float(arrays.pop("fps")),
        sample_rate=int(arrays.pop("sample_rate", 16000)),
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
    for key in LABEL_KEYS:
        value = getattr(clip, key)
        if value is not None and len(value) != n:
            raise ClipFormatError(f"{where}: label '{key}' has {len(value)} entries for {n} frames")


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
        return load_clip(self.root / entry["file"])

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
    path = root / "manifest.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


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


def open_dataset(root: str | Path) -> Dataset:
    root = Path(root)
    path = root / "manifest.json"
    if not path.is_file():
        raise ClipFormatError(f"{path}: dataset manifest not found")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ClipFormatError(f"{path}: not valid JSON ({error})") from None
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("clips"), list):
        raise ClipFormatError(f"{path}: not a {FORMAT} manifest")
    for entry in manifest["clips"]:
        missing = {"id", "file", "split"} - set(entry)
        if missing:
            raise ClipFormatError(f"{path}: clip entry lacks {sorted(missing)}")
    return Dataset(root=root, manifest=manifest)

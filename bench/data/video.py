"""Reading external outputs: video files, frame directories, audio tracks and uncertainty maps.

Videos go through PyAV (bundled ffmpeg), so any container and codec ffmpeg reads works. Frames come
out as uint8 RGB, H x W x 3, one at a time (``iter_frames``) so scoring memory does not grow with the
number of frames. A frame source is one of:

* a video file (any container PyAV opens; the first video stream is used);
* a directory of PNG/JPG frames, taken in natural order (``frame2.png`` before ``frame10.png``);
* a single PNG/JPG image (one frame).

Uncertainty maps are a per-pixel scale u (larger = less certain): one ``.npy`` of shape T x H x W, or
a directory of per-frame H x W ``.npy`` files in natural order. Every failure is a ``VideoError``
whose message is one line naming the file and the problem.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import numpy as np
from PIL import Image, UnidentifiedImageError

from bench.api import SAMPLE_RATE, VIDEO_FPS
from bench.errors import BenchError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".flv", ".ts", ".gif"})
_AV_ERRORS = (av.FFmpegError, OSError, ValueError, UnicodeDecodeError)


class VideoError(BenchError, ValueError):
    """An input file cannot be used; the message is one line naming the file."""


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    n_frames: int
    height: int
    width: int
    fps: float | None  # None for frame directories and images
    grayscale: bool = False  # one colour channel (a gray pixel format or image mode), as opposed to colour


def natural_key(name: str) -> list:
    """Sort key that orders embedded numbers by value: frame2 < frame10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _first_line(error: BaseException) -> str:
    if isinstance(error, av.FFmpegError) and error.strerror:  # without errno and the file name repeated
        return str(error.strerror)
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _exists(path: Path) -> Path:
    if not path.exists():
        raise VideoError(f"{path}: no such file or directory")
    return path


def frame_files(directory: Path) -> list[Path]:
    """The PNG/JPG frames of a directory, in natural order."""
    files = [p for p in Path(directory).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise VideoError(f"{directory}: directory holds no PNG or JPG frames")
    return sorted(files, key=lambda p: natural_key(p.name))


GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})  # PIL modes


def _image_header(path: Path) -> tuple[int, int, bool]:
    """(height, width, grayscale) from the image header, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            gray = image.mode in GRAY_MODES
    except (UnidentifiedImageError, OSError) as error:
        raise VideoError(f"{path}: not a readable image ({_first_line(error)})") from None
    return height, width, gray


def gray_format(name: str) -> bool:
    """A gray pixel format: one non-alpha component (gray*, ya*, mono*); pal8 indexes colours."""
    try:
        components = av.VideoFormat(name).components
    except (ValueError, av.FFmpegError):
        return False
    return not name.startswith("pal") and sum(not c.is_alpha for c in components) == 1


def _load_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as error:
        raise VideoError(f"{path}: not a readable image ({_first_line(error)})") from None


def _open(path: Path, what: str = "video") -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except _AV_ERRORS as error:
        raise VideoError(f"{path}: not a readable {what} ({_first_line(error)})") from None


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise VideoError(f"{path}: file has no video stream")
    return container.streams.video[0]


def _kind(gray: bool) -> str:
    return "grayscale" if gray else "colour"


def _probe_directory(path: Path) -> VideoInfo:
    files = frame_files(path)
    height, width, gray = _image_header(files[0])
    for file in files[1:]:
        size_h, size_w, file_gray = _image_header(file)
        if (size_h, size_w) != (height, width):
            raise VideoError(f"{path}: mixed frame sizes: {files[0].name} is {width}x{height} "
                             f"but {file.name} is {size_w}x{size_h}")
        if file_gray != gray:
            raise VideoError(f"{path}: mixed grayscale and colour frames: {files[0].name} is {_kind(gray)} "
                             f"but {file.name} is {_kind(file_gray)}")
    return VideoInfo(path, len(files), height, width, None, gray)


def probe(path: str | Path, exact: bool = False) -> VideoInfo:
    """Frame count, size, fps and colour (gray pixel format or image mode) of a frame source, checked before
    any scoring starts.

    For a video the count is of demuxed packets (no decoding) unless ``exact``, which decodes every
    frame; the two agree for ordinary files, and scoring re-checks the count as it decodes.
    """
    path = _exists(Path(path))
    if path.is_dir():
        return _probe_directory(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        height, width, gray = _image_header(path)
        return VideoInfo(path, 1, height, width, None, gray)
    with _open(path) as container:
        stream = _video_stream(container, path)
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        first: tuple[int, int] | None = None  # (height, width) of the first decoded frame
        gray = False
        packets = decoded = 0
        try:
            for packet in container.demux(stream):
                packets += packet.size > 0 and not packet.is_discard
                if first is None or exact:  # the flush packet (size 0) drains the decoder
                    for frame in packet.decode():
                        if first is None:
                            first, gray = (frame.height, frame.width), gray_format(frame.format.name)
                        decoded += 1
        except _AV_ERRORS as error:
            raise VideoError(f"{path}: video cannot be decoded ({_first_line(error)})") from None
    if first is None:
        raise VideoError(f"{path}: video has zero frames")
    count = decoded if exact else packets
    return VideoInfo(path, count, first[0], first[1], fps, gray)


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Frames one at a time as uint8 H x W x 3 RGB; decoding is lazy and the file is closed at the end."""
    path = _exists(Path(path))
    if path.is_dir():
        files = frame_files(path)
        size = None
        for file in files:
            frame = _load_image(file)
            size = size or frame.shape
            if frame.shape != size:
                raise VideoError(f"{path}: mixed frame sizes: {files[0].name} is {size[1]}x{size[0]} "
                                 f"but {file.name} is {frame.shape[1]}x{frame.shape[0]}")
            yield frame
        return
    if path.suffix.lower() in IMAGE_SUFFIXES:
        yield _load_image(path)
        return
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        size = None
        try:
            for index, frame in enumerate(container.decode(stream)):
                array = frame.to_ndarray(format="rgb24")
                size = size or array.shape
                if array.shape != size:
                    raise VideoError(f"{path}: frame {index} is {array.shape[1]}x{array.shape[0]} "
                                     f"but the first frame is {size[1]}x{size[0]}")
                yield array
        except _AV_ERRORS as error:
            raise VideoError(f"{path}: video cannot be decoded ({_first_line(error)})") from None
        if size is None:
            raise VideoError(f"{path}: video has zero frames")


def read_frames(path: str | Path) -> tuple[np.ndarray, float | None]:
    """All frames, uint8 T x H x W x 3, and the fps (None where unknown: frame directories, images).

    For library use and tests: the harness streams with ``iter_frames`` so memory holds one batch."""
    info = probe(path)
    frames = np.stack(list(iter_frames(path)))
    return frames, info.fps


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 waveform at ``sample_rate`` from a video's audio track or an audio file (.wav ...)."""
    path = _exists(Path(path))
    if path.is_dir():
        raise VideoError(f"{path}: is a directory, not an audio or video file")
    chunks: list[np.ndarray] = []
    with _open(path, "audio or video file") as container:
        if not container.streams.audio:
            raise VideoError(f"{path}: file has no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        try:
            for frame in container.decode(stream):
                chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
        except _AV_ERRORS as error:
            raise VideoError(f"{path}: audio cannot be decoded ({_first_line(error)})") from None
    wave = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if wave.size == 0:
        raise VideoError(f"{path}: audio stream has no samples")
    return wave


# ---------------------------------------------------------------- uncertainty maps
def _load_npy(path: Path) -> np.ndarray:
    """Memory-mapped, so checking the shape reads only the header."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise VideoError(f"{path}: not a readable .npy array ({_first_line(error)})") from None
    if not isinstance(array, np.ndarray):
        raise VideoError(f"{path}: holds an archive, not one .npy array")
    if array.dtype.kind not in "fiu":
        raise VideoError(f"{path}: uncertainty must be numeric, got dtype {array.dtype}")
    return array


def _shape_text(shape: tuple[int, ...]) -> str:
    return " x ".join(str(s) for s in shape)


def uncertainty_files(path: Path) -> list[Path]:
    files = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".npy"]
    if not files:
        raise VideoError(f"{path}: directory holds no .npy uncertainty maps")
    return sorted(files, key=lambda p: natural_key(p.name))


def check_uncertainty(path: str | Path, n_frames: int, height: int, width: int) -> None:
    """Shapes only (headers); values are checked as the maps stream in ``iter_uncertainty``."""
    path = _exists(Path(path))
    if path.is_dir():
        files = uncertainty_files(path)
        if len(files) != n_frames:
            raise VideoError(f"{path}: holds {len(files)} .npy maps but the video has {n_frames} frames")
        for file in files:
            shape = _load_npy(file).shape
            if shape != (height, width):
                raise VideoError(f"{file}: uncertainty map has shape {_shape_text(shape)}, "
                                 f"expected H x W = {height} x {width}")
        return
    if path.suffix.lower() != ".npy":
        raise VideoError(f"{path}: uncertainty must be a .npy file or a directory of .npy files")
    shape = _load_npy(path).shape
    if shape != (n_frames, height, width):
        raise VideoError(f"{path}: uncertainty has shape {_shape_text(shape)}, "
                         f"expected T x H x W = {n_frames} x {height} x {width}")


def _checked_map(array: np.ndarray, where: str) -> np.ndarray:
    u = np.asarray(array, dtype=np.float32)
    if not np.isfinite(u).all():
        raise VideoError(f"{where}: uncertainty has non-finite values (NaN or inf)")
    if (u < 0).any():
        raise VideoError(f"{where}: uncertainty has negative values (u is a scale, >= 0)")
    return u


def iter_uncertainty(path: str | Path, n_frames: int, height: int, width: int) -> Iterator[np.ndarray]:
    """Per-frame float32 H x W maps, validated (finite, >= 0) as they are read."""
    path = Path(path)
    check_uncertainty(path, n_frames, height, width)
    if path.is_dir():
        for file in uncertainty_files(path):
            yield _checked_map(_load_npy(file), str(file))
        return
    array = _load_npy(path)
    for index in range(n_frames):
        yield _checked_map(array[index], f"{path} (frame {index})")


def read_uncertainty(path: str | Path, n_frames: int, height: int, width: int) -> np.ndarray:
    """All maps as float32 T x H x W (see ``iter_uncertainty``). For library use and tests: the harness streams."""
    maps = np.empty((n_frames, height, width), dtype=np.float32)
    for index, u in enumerate(iter_uncertainty(path, n_frames, height, width)):
        maps[index] = u
    return maps


# ------------------------------------------------------------------------- frame rate: the one resampler
def resample_indices(n_frames: int, fps: float, target: float = VIDEO_FPS) -> np.ndarray:
    """Which input frame each output frame at ``target`` fps shows: the input nearest in time to k / target
    (ffmpeg's ``-r 25``, which syncnet_python's pipeline applies). Identity when the rates agree."""
    if abs(fps - target) <= 0.01:
        return np.arange(n_frames)
    count = int(n_frames * target / fps)
    return np.minimum(n_frames - 1, np.round(np.arange(count) * fps / target).astype(np.int64))


def resample_frames(frames: Iterator[np.ndarray], n_frames: int, fps: float,
                    target: float = VIDEO_FPS) -> Iterator[np.ndarray]:
    """``resample_indices`` over a stream of ``n_frames`` frames at ``fps``, holding one frame at a time."""
    sources = resample_indices(n_frames, fps, target)
    position = 0
    for index, frame in enumerate(frames):
        while position < len(sources) and sources[position] == index:
            yield frame
            position += 1

"""Decoding one source video for preparation: frame times, detection-size frames, crops, and aligned audio.

Every problem is a ``SourceError`` whose message is the reason only (the caller names the file). Video is
read twice: once small, for face detection, and once at full size, cropping only the frames kept at 25 fps,
so memory holds one full-size frame at a time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import av
import numpy as np
from scipy.signal import resample_poly

from bench.api import SAMPLE_RATE, VIDEO_FPS
from bench.data.video import gray_format, resample_indices
from bench.errors import BenchError

MIN_SIDE = 64  # px: a face in a smaller frame is too small to track
MAX_SIDE = 4096  # px: larger frames are refused rather than decoded at this size
DETECT_SIDE = 320  # px: frames are shrunk to at most this (longer side) for face detection
_AV_ERRORS = (av.FFmpegError, OSError, ValueError, UnicodeDecodeError, IndexError)


class SourceError(BenchError, ValueError):
    """A source file cannot be prepared; the message is the reason (one line, without the file name)."""


@dataclass
class VideoScan:
    times: np.ndarray  # seconds, one per decoded frame, ascending
    small: np.ndarray  # T_in x h x w x 3 uint8, the frames shrunk for detection
    scale: float  # full-size pixels per small pixel
    height: int
    width: int
    fps_in: float  # the stream's nominal rate (or the median frame interval's)
    grayscale: bool


def _reason(error: BaseException) -> str:
    if isinstance(error, av.FFmpegError) and error.strerror:
        return str(error.strerror)
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def open_container(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except _AV_ERRORS as error:
        raise SourceError(f"not a readable video (corrupt or truncated file: {_reason(error)})") from None


def scan_video(path: Path, max_seconds: float | None = None) -> VideoScan:
    """Decode every frame (up to ``max_seconds``) shrunk for detection, with its time stamp."""
    with open_container(path) as container:
        if not container.streams.video:
            kind = "audio only, no video stream" if container.streams.audio else "no video stream"
            raise SourceError(kind)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        times: list[float] = []
        small: list[np.ndarray] = []
        scale, size, gray, stopped = 1.0, (0, 0), False, False
        try:
            for index, frame in enumerate(container.decode(stream)):
                if not small:
                    size, gray = (frame.height, frame.width), gray_format(frame.format.name)
                    if min(size) < MIN_SIDE:
                        raise SourceError(f"resolution {size[1]}x{size[0]} is too small (shorter side < {MIN_SIDE} px)")
                    if max(size) > MAX_SIDE:
                        raise SourceError(f"resolution {size[1]}x{size[0]} is too large (longer side > {MAX_SIDE} px)")
                    scale = max(1.0, max(size) / DETECT_SIDE)
                time = frame.time if frame.time is not None else index / float(rate or VIDEO_FPS)
                if max_seconds is not None and times and time - times[0] >= max_seconds:
                    stopped = True
                    break
                if (frame.height, frame.width) != size:
                    raise SourceError(f"frame {index} is {frame.width}x{frame.height}, the first {size[1]}x{size[0]}")
                width, height = round(size[1] / scale), round(size[0] / scale)
                small.append(frame.to_ndarray(width=width, height=height, format="rgb24"))
                times.append(float(time))
        except SourceError:
            raise
        except _AV_ERRORS as error:
            if len(small) < 2:
                raise SourceError(f"video cannot be decoded (corrupt or truncated file: {_reason(error)})") from None
            raise SourceError(f"video is truncated or corrupt after {len(small)} frames ({_reason(error)})") from None
    if not small:
        raise SourceError("video has zero frames")
    declared = int(stream.frames or 0)
    if declared > 10 and len(small) < 0.9 * declared and (max_seconds is None or not stopped):
        raise SourceError(f"video is truncated: {len(small)} of the {declared} frames its header lists decode")
    order = np.argsort(times, kind="stable")
    stamps = np.asarray(times)[order]
    frames = np.stack([small[i] for i in order])
    intervals = np.diff(stamps)
    # The rate the frames were shot at: the typical interval (a file with dropped frames averages lower).
    step = float(np.median(intervals)) if len(intervals) else 0.0
    fps_in = 1.0 / step if step > 0 else float(rate or VIDEO_FPS)
    return VideoScan(stamps, frames, scale, size[0], size[1], fps_in, gray)


def variable_rate(times: np.ndarray) -> bool:
    """Uneven frame intervals (dropped or variable-rate frames): more than a quarter off the typical one."""
    intervals = np.diff(times)
    if len(intervals) < 2:
        return False
    step = float(np.median(intervals))
    return step <= 0 or bool(np.any(np.abs(intervals - step) > 0.25 * step))


def select_frames(times: np.ndarray, fps_in: float, target: float = VIDEO_FPS) -> np.ndarray:
    """Input frame index per output frame at ``target`` fps.

    Evenly spaced stamps go through ``bench.data.video.resample_indices`` (the one resampler); a variable
    frame rate (dropped or uneven frames) takes the frame nearest in time to each output instant
    (start + k / target), which is what that resampler computes for a constant rate.
    """
    n = len(times)
    if n < 2:
        return np.zeros(n, dtype=np.int64)
    step = float(np.median(np.diff(times)))
    if not variable_rate(times):
        return resample_indices(n, 1.0 / step, target)
    end = times[-1] + step  # the last frame lasts one typical interval
    count = int(math.floor((end - times[0]) * target + 1e-6))
    instants = times[0] + np.arange(count) / target
    right = np.clip(np.searchsorted(times, instants), 1, n - 1)
    left = right - 1
    nearer_left = instants - times[left] <= times[right] - instants
    return np.where(nearer_left, left, right).astype(np.int64)


def crop_frames(path: Path, indices: np.ndarray, boxes: np.ndarray, size: int,
                times: np.ndarray) -> np.ndarray:
    """Decode again at full size and cut ``boxes[k]`` (x0, y0, side; full-size pixels) out of frame
    ``indices[k]``, resized to ``size`` (zero padding outside the image)."""
    from PIL import Image

    wanted: dict[int, list[int]] = {}
    for k, index in enumerate(indices):
        wanted.setdefault(int(index), []).append(k)
    # Decoded stamp -> sorted position (as on the first pass); by position where stamps repeat.
    rank = {float(t): i for i, t in enumerate(times)} if len(set(times.tolist())) == len(times) else {}
    out = np.zeros((len(indices), size, size, 3), dtype=np.uint8)
    done = 0
    with open_container(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for position, frame in enumerate(container.decode(stream)):
                index = rank.get(float(frame.time), position) if frame.time is not None else position
                if index not in wanted:
                    continue
                image = Image.fromarray(frame.to_ndarray(format="rgb24"))
                for k in wanted.pop(index):
                    x0, y0, side = (float(v) for v in boxes[k])
                    box = (round(x0), round(y0), round(x0 + side), round(y0 + side))
                    out[k] = np.asarray(image.crop(box).resize((size, size), Image.BILINEAR, reducing_gap=2.0))
                    done += 1
                if not wanted:
                    break
        except _AV_ERRORS as error:
            raise SourceError(f"video cannot be decoded a second time ({_reason(error)})") from None
    if wanted:
        raise SourceError(f"{len(wanted)} frames decoded on the first pass were missing on the second")
    return out


@dataclass
class AudioTrack:
    wave: np.ndarray  # mono float32 at SAMPLE_RATE, starting at ``start`` seconds
    start: float
    rate_in: int
    channels: int


def read_audio(path: Path, max_seconds: float | None = None,
               progress: Callable[[], None] | None = None) -> AudioTrack:
    """The first audio track, mixed to mono and resampled to 16 kHz with a polyphase filter."""
    chunks: list[np.ndarray] = []
    with open_container(path) as container:
        if not container.streams.audio:
            raise SourceError("no audio track")
        stream = container.streams.audio[0]
        rate = int(stream.rate or stream.codec_context.sample_rate or 0)
        if rate <= 0:
            raise SourceError("audio track has no sample rate")
        channels = int(stream.channels or 1)
        start: float | None = None
        # Mono float at the source rate from ffmpeg; the rate change is done here, by resample_poly.
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        try:
            for frame in container.decode(stream):
                if start is None and frame.time is not None:
                    start = float(frame.time)
                chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
                if max_seconds is not None and sum(len(c) for c in chunks) > (max_seconds + 2) * rate:
                    break
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
        except _AV_ERRORS as error:
            if not chunks:
                raise SourceError(f"audio cannot be decoded ({_reason(error)})") from None
    wave = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if wave.size == 0:
        raise SourceError("audio track has no samples")
    if rate != SAMPLE_RATE:
        common = math.gcd(SAMPLE_RATE, rate)
        wave = resample_poly(wave, SAMPLE_RATE // common, rate // common).astype(np.float32)
    return AudioTrack(np.clip(wave, -1.0, 1.0), start or 0.0, rate, channels)


def align_audio(track: AudioTrack, video_start: float, n_frames: int) -> tuple[np.ndarray, int]:
    """Audio from the first video frame's time on, cut to ``n_frames`` frames' worth (samples per frame =
    16000 / 25); returns the waveform and how many whole frames the audio covers (<= n_frames)."""
    per_frame = SAMPLE_RATE // VIDEO_FPS
    offset = int(round((video_start - track.start) * SAMPLE_RATE))
    wave = track.wave[offset:] if offset >= 0 else np.concatenate([np.zeros(-offset, np.float32), track.wave])
    covered = min(n_frames, len(wave) // per_frame)
    return np.ascontiguousarray(wave[:covered * per_frame]), covered


def rms_dbfs(wave: np.ndarray) -> float:
    """Audio level, RMS in dB relative to full scale (-inf for silence)."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if wave.size else 0.0
    return 20.0 * math.log10(rms) if rms > 0 else float("-inf")

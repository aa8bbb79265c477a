"""Shot cuts and clip segments: one source video -> the frame ranges that become clips.

A hard cut is found two ways, on the 25 fps frames at detection size:
* the colour histogram (16 bins per RGB channel) changes by more than ``CUT_DISTANCE`` (half the L1
  distance, 0 ... 1) from one frame to the next, and the picture does not come back within ``FLASH_FRAMES``
  (a flash, a few inverted or blank frames, is not a cut: neither its start, where the old picture comes
  back, nor its end, where the new picture was there just before);
* the largest face's centre steps by more than ``JUMP`` face sizes between two frames and stays there
  (a cut between two shots with the same colours).
Measured on the 13 bundled real clips (25 fps, detection size): from one frame to the next within a shot
the histogram distance stays below 0.06; from the last frame of one clip to the first of another it is 0.25
or more. Within a shot the face moves a few per cent of its size per frame.

The pieces between cuts are split further into clips of at most ``max_frames`` (equal parts); pieces
shorter than the sync window are dropped, each with its reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bench.api import VIDEO_FPS

CUT_DISTANCE = 0.15  # histogram distance between consecutive frames that marks a cut
FLASH_FRAMES = 12  # a change whose frames come back (distance < CUT_DISTANCE / 2) within this many is no cut
JUMP = 0.5  # a face-centre step, in face sizes, that marks a cut when it holds
_BINS = 16


@dataclass(frozen=True)
class Cut:
    frame: int  # the first frame of the new shot (output frames at 25 fps)
    cue: str  # "picture" (histogram) or "face" (the face jumped)


@dataclass(frozen=True)
class Part:
    start: int  # output frames, stop exclusive
    stop: int
    reason: str = ""  # why it is dropped ("" if kept)

    @property
    def seconds(self) -> str:
        return f"{self.start / VIDEO_FPS:.2f}-{self.stop / VIDEO_FPS:.2f} s"


def histograms(frames: np.ndarray) -> np.ndarray:
    """T x h x w x 3 uint8 -> T x 3 x 16 per-channel histograms, each summing to 1."""
    flat = frames.reshape(len(frames), -1, 3).astype(np.int64) * _BINS // 256  # bin per channel value
    out = np.zeros((len(frames), 3, _BINS))
    for channel in range(3):
        offsets = flat[:, :, channel] + _BINS * np.arange(len(frames))[:, None]
        out[:, channel] = np.bincount(offsets.ravel(), minlength=_BINS * len(frames)).reshape(-1, _BINS)
    return out / max(1, flat.shape[1])


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Histogram distance (half the L1 distance per channel, averaged over channels): 0 same ... 1 disjoint."""
    return 0.5 * np.abs(a - b).sum(axis=-1).mean(axis=-1)


def find_cuts(frames: np.ndarray, centres: np.ndarray | None = None, sizes: np.ndarray | None = None) -> list[Cut]:
    """Cuts in T frames (T x h x w x 3 uint8); ``centres`` (T x 2) and ``sizes`` (T) of the largest face per
    frame (NaN where none) add the face cue."""
    cuts: dict[int, str] = {}
    if len(frames) >= 2:
        hist = histograms(frames)
        step = distance(hist[1:], hist[:-1])
        for k in np.flatnonzero(step > CUT_DISTANCE) + 1:
            # A flash's start: the old picture comes back soon; its end: the new picture was there just before.
            back = np.any(distance(hist[k:k + FLASH_FRAMES + 1], hist[k - 1]) < CUT_DISTANCE / 2)
            seen = np.any(distance(hist[max(0, k - 1 - FLASH_FRAMES):k - 1], hist[k]) < CUT_DISTANCE / 2)
            if not (back or seen):
                cuts[int(k)] = "picture"
    if centres is not None and sizes is not None:
        for k in _face_jumps(np.asarray(centres, float), np.asarray(sizes, float)):
            if not any(abs(k - other) <= 2 for other in cuts):
                cuts[k] = "face"
    return [Cut(k, cuts[k]) for k in sorted(cuts)]


def _face_jumps(centres: np.ndarray, sizes: np.ndarray, hold: int = 5) -> list[int]:
    """Frames k where the face centre steps by > JUMP sizes from k-1 and the medians of the ``hold`` found frames
    before and after differ as much (a lasting jump, not one frame on another face)."""
    found = np.isfinite(centres).all(axis=1) & np.isfinite(sizes)
    index = np.flatnonzero(found)
    jumps = []
    for position in range(1, len(index)):
        k, previous = index[position], index[position - 1]
        size = max(sizes[k], sizes[previous])
        if k - previous > 2 or np.linalg.norm(centres[k] - centres[previous]) <= JUMP * size:
            continue
        before = np.median(centres[index[max(0, position - hold):position]], axis=0)
        after = np.median(centres[index[position:position + hold]], axis=0)
        if position >= 2 and len(index) - position >= 2 and np.linalg.norm(after - before) > JUMP * size:
            jumps.append(int(k))
    return jumps


def plan_parts(n: int, cuts: list[Cut], max_frames: int | None, min_frames: int) -> list[Part]:
    """The frame ranges of the clips (reason "") and of the dropped pieces (with the reason), in order."""
    bounds = [0, *sorted({c.frame for c in cuts if 0 < c.frame < n}), n]
    parts = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        length = stop - start
        if length < min_frames:
            where = "between cuts" if 0 < start or stop < n else "in all"
            parts.append(Part(start, stop, f"{length} frames {where}, shorter than the sync window ({min_frames})"))
            continue
        pieces = max(1, math.ceil(length / max_frames)) if max_frames else 1
        edges = np.linspace(start, stop, pieces + 1).round().astype(int)
        parts.extend(Part(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]))
    return parts

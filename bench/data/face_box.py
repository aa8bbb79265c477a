"""Face boxes for the face-crop metrics (psnr_face, ssim_face, lpips_face, cpbd, csim): one square box per frame
from landmarks, as (x0, y0, x1, y1) integer pixels, x1 / y1 exclusive, clipped to the frame.

Two kinds of landmarks give boxes:

* the clip format's 8 named points (eyes, nose tip, mouth corners, lip midpoints, chin; synthetic heads and
  `bench data prepare`'s face track): they span eyes to chin only, so the box is 1.8 x their larger extent,
  its centre lifted by 0.1 of the side towards the forehead (``SPARSE``);
* MediaPipe's 468-point face mesh (``bench score``): it spans forehead to chin and cheek to cheek, so the box is
  1.2 x its larger extent, centred (``MESH``).

A frame without landmarks (NaN) has no box (None). Boxes are at least ``MIN_SIDE`` pixels (SSIM's 11-px window
fits) before clipping.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class BoxRule(NamedTuple):
    scale: float  # side = scale x the larger extent of the points
    lift: float  # the centre moves up by this share of the side


SPARSE = BoxRule(1.8, 0.1)
MESH = BoxRule(1.2, 0.0)
MIN_SIDE = 16

Box = tuple[int, int, int, int]


def face_boxes(points: np.ndarray, width: int, height: int, rule: BoxRule = SPARSE) -> list[Box | None]:
    """T x P x 2 landmark pixels (NaN: not found) of frames ``width`` x ``height`` -> one box or None per frame."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 3 or points.shape[-1] != 2:
        raise ValueError(f"expected T x P x 2 landmarks, got shape {points.shape}")
    out: list[Box | None] = []
    for frame in points:
        found = frame[np.isfinite(frame).all(axis=1)]
        if len(found) < 2:
            out.append(None)
            continue
        low, high = found.min(0), found.max(0)
        side = max(rule.scale * float((high - low).max()), float(MIN_SIDE))
        cx, cy = (low + high) / 2
        cy -= rule.lift * side
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        x1, y1 = x0 + int(round(side)), y0 + int(round(side))
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, int(width)), min(y1, int(height))
        out.append((x0, y0, x1, y1) if x1 - x0 >= 2 and y1 - y0 >= 2 else None)
    return out


def crop(frame: np.ndarray, box: Box) -> np.ndarray:
    """The H x W x C (or H x W) frame's pixels inside ``box``."""
    x0, y0, x1, y1 = box
    return frame[y0:y1, x0:x1]


def clip_face_boxes(landmarks: np.ndarray | None, frame_height: int, frame_width: int,
                    image_size: int) -> list[Box | None] | None:
    """A clip's boxes at the model's resolution (frames resized to ``image_size`` square, as
    ``bench.data.frames.resize_frames`` does) from its T x 8 x 2 landmarks; None without landmarks."""
    if landmarks is None:
        return None
    points = np.asarray(landmarks, dtype=np.float64) * np.array([image_size / frame_width, image_size / frame_height])
    return face_boxes(points, image_size, image_size, SPARSE)

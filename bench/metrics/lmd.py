"""LMD (landmark distance, Chen et al. 2018) per frame, on MediaPipe's face mesh (``bench.data.landmarks``).

Per frame: the mean Euclidean distance between the mouth landmarks found in the generated frame and
those found in the ground-truth frame, divided by the ground truth's inter-ocular distance (outer
eye corners), so that it does not depend on the resolution or on how large the face is. The same
detector runs on both frames, so its bias (on synthetic heads it draws a lip outline about 1.25 x
too tall) cancels in the difference. A frame in which either side has no face gets NaN; summaries
average the frames that have both, and report how many (``n``).
"""
from __future__ import annotations

import numpy as np
import torch

from bench.data.landmarks import EYE_CORNERS, FaceMesh


def landmark_distance(pred_points: np.ndarray, gt_points: np.ndarray, mouth: np.ndarray) -> np.ndarray:
    """Per frame: mean mouth-landmark distance / ground-truth inter-ocular distance (NaN if either is missing)."""
    distance = np.linalg.norm(pred_points[:, mouth] - gt_points[:, mouth], axis=-1).mean(axis=1)
    eyes = np.linalg.norm(gt_points[:, EYE_CORNERS[0]] - gt_points[:, EYE_CORNERS[1]], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(eyes > 0, distance / eyes, np.nan)


class LandmarkDistance:
    """LMD per frame for batches of (generated, ground truth) frames: ``lmd(pred_u8, gt_u8) -> B``."""

    def __init__(self, mesh: FaceMesh | None = None) -> None:
        self.mesh = mesh or FaceMesh()

    def __call__(self, pred_u8: torch.Tensor, gt_u8: torch.Tensor) -> np.ndarray:
        gt_points = self.mesh(gt_u8)  # first: the pose estimator may have just asked for the same batch
        return landmark_distance(self.mesh(pred_u8), gt_points, self.mesh.mouth)


def build_landmarks(device: torch.device | str = "cpu") -> LandmarkDistance:
    """The LMD scorer (MediaPipe runs on the CPU whatever ``device`` is)."""
    return LandmarkDistance()

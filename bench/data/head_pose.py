"""Head pose (yaw, pitch, roll in degrees) per frame from MediaPipe face-mesh landmarks.

Six mesh points (nose tip 1, chin 152, outer eye corners 33/263, mouth corners 61/291) are fitted
with ``cv2.solvePnP`` to a generic 3-D face. The six points are those of the generic 6-point model
used in many head-pose tutorials, but their coordinates come from MediaPipe's own canonical face
model (``mediapipe/modules/face_geometry/data/canonical_face_model.obj``, centimetres, shifted so
the nose tip is the origin): the tutorials' coordinates (nose (0, 0, 0), chin (0, -330, -65), eyes
(+-225, 170, -135), mouth (+-150, -150, -125)) set the eyes too shallow behind the nose, which
made |yaw| about 1.5 x too large on the synthetic heads. Camera: pinhole, focal length = image
width, principal point at the image centre, no distortion.

Conventions match the synthetic heads' labels (:mod:`bench.data.synth.geometry`): the head rotation,
in a frame with x to the image's right, y up and z towards the camera, is
``Ry(yaw) @ Rx(pitch) @ Rz(roll)`` there, so yaw > 0 turns the face to the image's left (the
subject's own right), pitch > 0 lifts the chin and roll > 0 tilts the top of the head to the
image's left. A frontal face is (0, 0, 0): solvePnP's rotation (OpenCV camera: y down, z away)
is flipped by 180 degrees about x first, so pitch never wraps to +-180.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

if TYPE_CHECKING:
    from .landmarks import FaceMesh

# MediaPipe indices -> generic model points. 33 and 61 lie on the image's left in an unmirrored
# frontal view (the subject's right eye / mouth corner), so they take the model's -x points.
MESH_INDICES = (1, 152, 33, 263, 61, 291)
MODEL_POINTS = np.array([  # x to the image's right, y up, z towards the camera (the face looks along +z)
    (0.0, 0.0, 0.0),  # nose tip
    (0.0, -8.277, -3.211),  # chin
    (-4.446, 3.791, -4.302),  # eye outer corner, image left
    (4.446, 3.791, -4.302),  # eye outer corner, image right
    (-2.456, -3.216, -3.192),  # mouth corner, image left
    (2.456, -3.216, -3.192),  # mouth corner, image right
])
_EYE_SPAN = float(np.linalg.norm(MODEL_POINTS[2] - MODEL_POINTS[3]))
# OpenCV camera (x right, y down, z away from the viewer) -> x right, y up, z towards the viewer.
_FLIP = np.diag([1.0, -1.0, -1.0])


def rotation_to_angles(rotation: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) degrees of R = Ry(yaw) Rx(pitch) Rz(roll) with the synth's matrices."""
    pitch = np.arcsin(np.clip(rotation[1, 2], -1.0, 1.0))
    yaw = np.arctan2(-rotation[0, 2], rotation[2, 2])
    roll = np.arctan2(rotation[1, 0], rotation[1, 1])
    return np.degrees([yaw, pitch, roll])


def _solve(image_points: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """Pose of one face: 6 x 2 pixel points -> (yaw, pitch, roll); NaN if the fit fails."""
    # Start in front of the camera, frontal, at a distance where the model spans the eye distance.
    eyes = np.linalg.norm(image_points[2] - image_points[3])
    if not np.isfinite(eyes) or eyes < 1e-6:
        return np.full(3, np.nan)
    depth = camera[0, 0] * _EYE_SPAN / eyes
    centre = (image_points[0] - camera[:2, 2]) * depth / camera[0, 0]
    rvec = np.array([[np.pi], [0.0], [0.0]])  # 180 degrees about x: the model faces the camera
    tvec = np.array([[centre[0]], [centre[1]], [depth]])
    ok, rvec, tvec = cv2.solvePnP(MODEL_POINTS, image_points.astype(np.float64), camera, None,
                                  rvec, tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok or tvec[2, 0] <= 0:
        return np.full(3, np.nan)
    return rotation_to_angles(_FLIP @ cv2.Rodrigues(rvec)[0])


def head_pose(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """B x 468 x 2 mesh points (pixels) -> B x 3 (yaw, pitch, roll) degrees; NaN rows: no face."""
    camera = np.array([[width, 0.0, width / 2.0], [0.0, width, height / 2.0], [0.0, 0.0, 1.0]])
    poses = np.full((len(points), 3), np.nan)
    for index, face in enumerate(np.asarray(points, dtype=np.float64)):
        image_points = face[list(MESH_INDICES)]
        if np.isfinite(image_points).all():
            poses[index] = _solve(image_points, camera)
    return poses


class PoseEstimator:
    """Callable: B x 3 x H x W frames (0-255, RGB) -> B x 3 (yaw, pitch, roll) degrees (NaN: no face)."""

    def __init__(self, mesh: FaceMesh | None = None) -> None:
        self._mesh = mesh

    @property
    def mesh(self) -> FaceMesh:
        """The face mesh, built on first use (MediaPipe loads only when frames arrive)."""
        if self._mesh is None:
            from .landmarks import FaceMesh
            self._mesh = FaceMesh()
        return self._mesh

    def __call__(self, frames: torch.Tensor) -> np.ndarray:
        height, width = frames.shape[-2:]
        return head_pose(self.mesh(frames), int(width), int(height))

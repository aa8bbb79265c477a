"""Head pose (yaw, pitch, roll in degrees) per frame from MediaPipe face-mesh landmarks.

Method (``PoseEstimator``, and ``head_pose`` on B x 468 x 3 points):

* the mesh comes from ``FaceMesh.points_3d`` (:mod:`bench.data.landmarks`): MediaPipe's 3-D landmarks
  (x, y pixels and its relative depth z), from a graph that keeps faces turned near profile;
* 33 of them - MediaPipe's own Procrustes basis for its face-geometry pipeline: nose, nose bridge,
  forehead, eye corners, brows, cheeks and the face's outline, no lip points (they move when speaking) -
  are fitted with a similarity transform (rotation, scale, shift; Kabsch/Umeyama, equal weights) to
  the same points of MediaPipe's canonical face model (``canonical_face_model.obj``, centimetres, nose
  tip at the origin). MediaPipe 0.10.21's wheel ships neither that model nor the pipeline's metadata,
  so the 33 points' coordinates are written out below (MediaPipe, Apache-2.0; symmetric: 3 on the
  midline, 15 mirrored pairs);
* MediaPipe's z is deeper than the canonical face's by about 1 / 0.65: z is scaled by
  ``DEPTH_SCALE`` = 0.65, the value at which the fit agrees with a depth-free fit of the same points'
  x, y (solvePnP) on real faces turned 10-35 degrees (ratio 0.98 on 640 frames of the bundled clips)
  and with the synthetic heads' labels (ratio 1.01);
* the mesh itself saturates near profile: on the synthetic heads its |yaw| reads about 48 at a true
  45-50 and about 50 for anything from 50 to 75 (the far half of the mesh collapses onto the outline;
  no choice of fitted points undoes that, nor does MediaPipe's attention mesh). What still grows
  there is how far the mesh bends away from a rigid face, the fit's RMS residual (0.85 frontal, 1.2 at
  40, 1.35 at 60-75 canonical cm; real faces follow the same line up to 35, the largest turn in the
  bundled clips). ``correct_saturation`` uses it past ``KNEE`` = 36 degrees (below, nothing changes);
  its numbers started as a least-squares fit on about 1,900 synthetic frames of 54 identities and were
  then tuned (knee 38 -> 36, slope 0.25 -> 0.35, gain 90 -> 85) by a grid search for the smallest 45-60
  error with 60-75 kept near its goal, on band samples of identity seeds 0-17 and 100-107. Pitch
  moves the residual too, but only near frontal, where it is not used. About 5% of frames past 60
  still collapse outright and read 25-38 (``smooth_pose`` removes them when they are isolated);
* a frame gives NaN when no face is found or the mesh does not fit a rigid face (residual above
  ``MAX_RESIDUAL`` = 2.5 cm: faces stay below 1.6, a shape that is no face gives 20 or more).

Measured by ``benchmarks/bench_head_pose.py`` on 40 frames per band of 48 identities the fit never saw,
at 128 / 256 px: mean |yaw| error 0.7 / 0.7 (0-15), 1.3 / 1.3 (15-30), 2.4 / 2.4 (30-45), 4.4 / 4.9
(45-60) and 10.0 / 8.8 (60-75) degrees, every face found (before the retuning: 2.6 / 2.5, 5.1 / 5.4 and
9.6 / 8.6 in the last three bands);
the old six-point fit: 1.4, 2.8-3.2, 4.0-4.3, 8.0-9.2 and 27.5-29.4, 4-24 frames past 45 without a
face, 76 / 73% in their bin. Frames of the synthetic extreme test clips in the extreme bin: 100 / 99%.

``head_pose`` on B x 468 x 2 points (no depth) fits the same 33 points with ``cv2.solvePnP``
instead; without depth it reads |yaw| low beyond about 45. ``six_point_pose`` keeps the previous
method (nose tip, chin, eye and mouth corners by solvePnP) for comparison. Camera for both:
pinhole, focal length = image width, principal point at the image centre, no distortion.

Conventions match the synthetic heads' labels (:mod:`bench.data.synth.geometry`): the head rotation,
in a frame with x to the image's right, y up and z towards the camera, is
``Ry(yaw) @ Rx(pitch) @ Rz(roll)`` there, so yaw > 0 turns the face to the image's left (the
subject's own right), pitch > 0 lifts the chin and roll > 0 tilts the top of the head to the
image's left. A frontal face is (0, 0, 0): solvePnP's rotation (OpenCV camera: y down, z away)
is flipped by 180 degrees about x first, so pitch never wraps to +-180.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

if TYPE_CHECKING:
    from .landmarks import FaceMesh

# Canonical face (cm, nose tip at the origin; x to the image's right for an unmirrored frontal face, y up,
# z towards the camera). Midline points, then pairs: the first id lies on the image's left (negative x),
# the second is its mirror image.
_MIDLINE = {4: (0.0, 0.664, 0.111), 6: (0.0, 3.600, -1.687), 10: (0.0, 9.389, -2.994)}
_PAIRS = {
    (33, 263): (4.446, 3.791, -4.302), (54, 284): (6.279, 7.742, -6.050), (67, 297): (3.524, 9.133, -3.746),
    (117, 346): (5.259, 2.073, -4.501), (119, 348): (3.301, 1.989, -3.603), (121, 350): (1.821, 2.595, -3.251),
    (127, 356): (7.743, 3.492, -9.481), (129, 358): (1.786, 0.149, -2.625), (132, 361): (7.271, -1.764, -9.728),
    (133, 362): (1.856, 3.712, -3.718), (136, 365): (5.085, -6.052, -6.761), (143, 372): (6.408, 3.363, -5.915),
    (147, 376): (6.235, -0.818, -5.812), (198, 420): (1.247, 1.357, -1.795), (205, 425): (3.833, -0.410, -3.338),
}
FIT_INDICES = tuple(_MIDLINE) + tuple(i for pair in _PAIRS for i in pair)
CANONICAL_POINTS = np.array(list(_MIDLINE.values())
                            + [p for x, y, z in _PAIRS.values() for p in ((-x, y, z), (x, y, z))])
DEPTH_SCALE = 0.65
MAX_RESIDUAL = 2.5
# correct_saturation's model, fitted on synthetic heads (about 1,900 frames, 54 identities, 128 and 256 px).
KNEE, RAMP = 36.0, 5.0
SLOPE_ABOVE, RESIDUAL_GAIN, RESIDUAL_AT_KNEE = 0.35, 85.0, 1.20
MAX_RAISE, MAX_YAW = 20.0, 90.0

# The previous method's six points (``six_point_pose``). 33 and 61 lie on the image's left in an
# unmirrored frontal view (the subject's right eye / mouth corner), so they take the model's -x points.
MESH_INDICES = (1, 152, 33, 263, 61, 291)
MODEL_POINTS = np.array([  # same frame and source as CANONICAL_POINTS
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


def correct_saturation(yaw: np.ndarray | float, residual: np.ndarray | float) -> np.ndarray:
    """The mesh fit's yaw and RMS residual (canonical cm) -> yaw corrected for the mesh's saturation.

    Up to ``KNEE`` the yaw is kept. From ``KNEE + RAMP`` on, |yaw| = KNEE + SLOPE_ABOVE (|yaw| - KNEE)
    + RESIDUAL_GAIN (residual - RESIDUAL_AT_KNEE), blended in linearly over the ramp; never below the
    mesh's own |yaw| (the mesh only ever reads too low there), at most ``MAX_RAISE`` above it (an odd
    residual must not throw a face far off) and at most 90. Past about 50 the mesh's |yaw| hardly
    moves, but the mesh bends more and more away from a rigid face: the residual carries the rest.
    """
    yaw = np.asarray(yaw, dtype=np.float64)
    size = np.abs(yaw)
    model = KNEE + SLOPE_ABOVE * (size - KNEE) + RESIDUAL_GAIN * (np.asarray(residual) - RESIDUAL_AT_KNEE)
    weight = np.clip((size - KNEE) / RAMP, 0.0, 1.0)
    raised = np.minimum(size + weight * (model - size), np.minimum(size + MAX_RAISE, MAX_YAW))
    return np.sign(yaw) * np.maximum(size, raised)


def fit_similarity(model: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Least-squares ``observed ~ scale * model @ R.T + shift`` (N x 3 each): R, scale and the RMS
    residual in model units (Umeyama; R is a proper rotation)."""
    a = model - model.mean(axis=0)
    b = observed - observed.mean(axis=0)
    u, s, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    scale = float((s[0] + s[1] + d * s[2]) / np.sum(a * a))
    if not scale > 0:
        return rotation, scale, float("inf")
    residual = float(np.sqrt(np.mean(np.sum((scale * a @ rotation.T - b) ** 2, axis=1))) / scale)
    return rotation, scale, residual


def _pose_3d(face: np.ndarray) -> np.ndarray:
    """One face's 468 x 3 mesh (pixels, MediaPipe z) -> (yaw, pitch, roll); NaN when untrustworthy."""
    observed = face[list(FIT_INDICES)] * np.array([1.0, -1.0, -DEPTH_SCALE])  # -> y up, z towards the camera
    if not np.isfinite(observed).all():
        return np.full(3, np.nan)
    rotation, _, residual = fit_similarity(CANONICAL_POINTS, observed)
    if not residual <= MAX_RESIDUAL:
        return np.full(3, np.nan)
    angles = rotation_to_angles(rotation)
    angles[0] = correct_saturation(angles[0], residual)
    return angles


def _solve_pnp(model: np.ndarray, image_points: np.ndarray, eyes: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """solvePnP from a frontal start: N x 2 pixel points -> (yaw, pitch, roll); NaN if the fit fails."""
    # Start in front of the camera, frontal, at a distance where the model spans the eye distance.
    eye_distance = np.linalg.norm(eyes[0] - eyes[1])
    if not np.isfinite(eye_distance) or eye_distance < 1e-6:
        return np.full(3, np.nan)
    depth = camera[0, 0] * _EYE_SPAN / eye_distance
    centre = (image_points.mean(axis=0) - camera[:2, 2]) * depth / camera[0, 0]
    rvec = np.array([[np.pi], [0.0], [0.0]])  # 180 degrees about x: the model faces the camera
    tvec = np.array([[centre[0]], [centre[1]], [depth]])
    ok, rvec, tvec = cv2.solvePnP(model, image_points.astype(np.float64), camera, None,
                                  rvec, tvec, useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok or tvec[2, 0] <= 0:
        return np.full(3, np.nan)
    return rotation_to_angles(_FLIP @ cv2.Rodrigues(rvec)[0])


def _camera(width: int, height: int) -> np.ndarray:
    return np.array([[width, 0.0, width / 2.0], [0.0, width, height / 2.0], [0.0, 0.0, 1.0]])


def head_pose(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """B x 468 x 3 mesh points (x, y pixels, MediaPipe z; see ``FaceMesh.points_3d``) -> B x 3 (yaw,
    pitch, roll) degrees, NaN rows where no face or no trustworthy fit. B x 468 x 2 points (no depth)
    are fitted by solvePnP instead (reads |yaw| low beyond about 45)."""
    points = np.asarray(points, dtype=np.float64)
    poses = np.full((len(points), 3), np.nan)
    if points.ndim == 3 and points.shape[-1] == 3:
        for index, face in enumerate(points):
            poses[index] = _pose_3d(face)
        return poses
    camera = _camera(width, height)
    for index, face in enumerate(points):
        image_points = face[list(FIT_INDICES), :2]
        if np.isfinite(image_points).all():
            poses[index] = _solve_pnp(CANONICAL_POINTS, image_points, image_points[[3, 4]], camera)
    return poses


def six_point_pose(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """The previous method, for comparison: six points (nose tip, chin, outer eye corners, mouth
    corners) of B x 468 x 2+ points fitted by solvePnP; |yaw| reads far too low beyond about 55."""
    camera = _camera(width, height)
    poses = np.full((len(points), 3), np.nan)
    for index, face in enumerate(np.asarray(points, dtype=np.float64)):
        image_points = face[list(MESH_INDICES), :2]
        if np.isfinite(image_points).all():
            poses[index] = _solve_pnp(MODEL_POINTS, image_points, image_points[[2, 3]], camera)
    return poses


def smooth_pose(angles: np.ndarray, window: int = 5) -> np.ndarray:
    """One clip's T x 3 angles -> running median over ``window`` consecutive frames (centred, shorter at
    the ends), NaN frames left out of their neighbours' medians and kept NaN. A median keeps a cut (a
    step) sharp while removing single-frame outliers."""
    angles = np.asarray(angles, dtype=np.float64)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number of frames, got {window}")
    half = window // 2
    padded = np.pad(angles, ((half, half), (0, 0)), constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)  # T x 3 x window
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows: NaN, as wanted
        smoothed = np.nanmedian(windows, axis=-1)
    return np.where(np.isfinite(angles), smoothed, np.nan)


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
        return head_pose(self.mesh.points_3d(frames), int(width), int(height))

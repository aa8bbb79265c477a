"""The ellipsoid head model, head pose, and analytic ray casting.

Coordinates. World and head frames are right-handed: x to the image's right, y up, z towards
the camera, which looks along -z with an orthographic projection. At zero pose the head frame
equals the world frame and the face looks at the camera (+z).

Pose. The head rotates about a neck pivot by ``R = Ry(yaw) @ Rx(pitch) @ Rz(roll)``:
yaw > 0 turns the face to the image's left, pitch > 0 lifts the chin, roll > 0 tilts the top
of the head to the image's left. All angles are in degrees.

Ray casting. An orthographic ray through (x, y) meets ellipsoid ``(p - c)^T M (p - c) = 1`` at
the depth solving a quadratic in z, so the front-most depth of every ellipsoid over all pixels
is a closed-form expression evaluated with numpy over the ellipsoid's bounding box.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .identity import Identity

NECK_PIVOT = np.array([0.0, -0.95, -0.2])
EYE_HEIGHT = 0.0  # head-frame y of the eye centres
EYE_SPREAD = 0.25  # head-frame |x| of the eye centres (times identity.eye_spacing)
MOUTH_HEIGHT = -0.6  # head-frame y of the closed lips' line
PART_NAMES: tuple[str, ...] = (
    "cranium", "hair", "face", "jaw", "chin", "nose", "nose_tip", "ear_l", "ear_r", "eye_l", "eye_r", "neck", "torso",
)
PART_ID = {name: i for i, name in enumerate(PART_NAMES)}
LANDMARK_NAMES: tuple[str, ...] = (
    "left_eye", "right_eye", "nose_tip", "mouth_left", "mouth_right", "upper_lip", "lower_lip", "chin",
)
"""Landmark names: "left"/"right" mean the image side in a frontal view (the subject's right
eye is ``left_eye``). With yaw > 0 the left-side points turn away from the camera."""


@dataclass(frozen=True)
class Part:
    """One ellipsoid: centre, rotation (columns are its axes) and radii."""

    name: str
    center: np.ndarray
    rotation: np.ndarray
    radii: np.ndarray

    def matrix(self) -> np.ndarray:
        """M of the quadric (p - c)^T M (p - c) = 1."""
        return self.rotation @ np.diag(1.0 / self.radii**2) @ self.rotation.T

    def transformed(self, rotation: np.ndarray, pivot: np.ndarray) -> "Part":
        """The part moved rigidly by ``rotation`` about ``pivot``."""
        return Part(self.name, pivot + rotation @ (self.center - pivot), rotation @ self.rotation, self.radii)


@dataclass(frozen=True)
class MouthShape:
    """The mouth decal in head coordinates (drawn on the face and jaw, seen along head z)."""

    center_y: float  # centre of the opening
    half_width: float
    half_height: float  # of the dark opening; 0 when closed
    upper_lip: float  # lip thicknesses
    lower_lip: float


def apply(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``points @ matrix`` for N x 3 points without BLAS.

    Large matrix products would start BLAS threads, which oversubscribe the cores when clips
    are rendered in parallel worker processes; three multiply-adds are as fast single-threaded.
    """
    return points[:, 0:1] * matrix[0] + points[:, 1:2] * matrix[1] + points[:, 2:3] * matrix[2]


def dot(points: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``points @ vector`` for N x 3 points without BLAS."""
    return points[:, 0] * vector[0] + points[:, 1] * vector[1] + points[:, 2] * vector[2]


def rot_x(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, s], [0, -s, c]])


def rot_y(deg: float) -> np.ndarray:
    """Rotation taking the forward axis (0, 0, 1) to (-sin, 0, cos): positive turns to image left."""
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, -s], [0, 1, 0], [s, 0, c]])


def rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def head_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    return rot_y(yaw) @ rot_x(pitch) @ rot_z(roll)


def mouth_shape(identity: Identity, mouth_open: float, width: float, rounding: float) -> MouthShape:
    """Mouth geometry from the articulator state: opening drives height, width/rounding width."""
    half_width = 0.17 * identity.mouth_width * (1 + 0.35 * (width - 0.5) - 0.28 * rounding)
    half_height = 0.14 * mouth_open * (1 + 0.15 * rounding)
    return MouthShape(
        center_y=MOUTH_HEIGHT - half_height * 0.8,
        half_width=float(half_width),
        half_height=float(half_height),
        upper_lip=0.028 * (1 + 0.3 * rounding),
        lower_lip=0.04 * (1 + 0.3 * rounding),
    )


def head_parts(identity: Identity, mouth_open: float) -> list[Part]:
    """The ellipsoids in head coordinates, the jaw dropped for ``mouth_open``."""
    s = identity
    eye = np.eye(3)
    p = lambda name, c, r, rot=eye: Part(name, np.array(c, float), rot, np.array(r, float))  # noqa: E731
    cranium = (0.72 * s.head_width, 0.86 * s.head_height, 0.96)
    shell = 0.035 + 0.03 * s.hair_volume
    parts = [
        p("cranium", (0, 0.19, -0.15), cranium),
        p("hair", (0, 0.19 + 0.6 * shell, -0.15 - 0.3 * shell), tuple(r + shell for r in cranium)),
        p("face", (0, -0.14, 0.1), (0.62 * s.face_width, 0.74, 0.70)),
    ]
    hinge = np.array([0.0, -0.25, -0.1])
    jaw = p("jaw", (0, -0.6, 0.12), (0.46 * s.jaw_width, 0.37, 0.62), rot_x(26))
    chin = p("chin", (0, -0.85, 0.36), (0.26 * s.jaw_width, 0.16, 0.16), rot_x(20))
    drop = rot_x(-13.0 * mouth_open)
    parts += [jaw.transformed(drop, hinge), chin.transformed(drop, hinge)]
    length, width = s.nose_length, s.nose_width
    parts.append(p("nose", (0, -0.02 - 0.1 * length, 0.77 + 0.04 * length),
                   (0.07 * width, 0.19 * length, 0.1), rot_x(26)))
    parts.append(p("nose_tip", (0, -0.03 - 0.28 * length, 0.82 + 0.07 * length), (0.085 * width, 0.08, 0.085)))
    ear = (0.065, 0.22 * s.ear_size, 0.14 * s.ear_size)
    x_ear = 0.67 * s.head_width
    parts.append(p("ear_l", (-x_ear, -0.1, -0.15), ear, rot_y(-8)))
    parts.append(p("ear_r", (x_ear, -0.1, -0.15), ear, rot_y(8)))
    r_eye = 0.12 * s.eye_size
    x_eye = EYE_SPREAD * s.eye_spacing
    parts.append(p("eye_l", (-x_eye, EYE_HEIGHT, 0.64), (r_eye,) * 3))
    parts.append(p("eye_r", (x_eye, EYE_HEIGHT, 0.64), (r_eye,) * 3))
    return parts


def body_parts() -> list[Part]:
    """Neck and shoulders, which follow the head only partly."""
    eye = np.eye(3)
    return [
        Part("neck", np.array([0.0, -1.15, -0.2]), eye, np.array([0.37, 0.65, 0.4])),
        Part("torso", np.array([0.0, -2.2, -0.35]), eye, np.array([1.45, 0.78, 0.62])),
    ]


def posed_parts(identity: Identity, yaw: float, pitch: float, roll: float, mouth_open: float) -> list[Part]:
    """All ellipsoids in world coordinates for one frame, in PART_NAMES order."""
    rotation = head_rotation(yaw, pitch, roll)
    neck_rotation = head_rotation(0.35 * yaw, 0.3 * pitch, 0.3 * roll)
    head = [part.transformed(rotation, NECK_PIVOT) for part in head_parts(identity, mouth_open)]
    neck, torso = body_parts()
    parts = head + [neck.transformed(neck_rotation, NECK_PIVOT), torso]
    return sorted(parts, key=lambda part: PART_ID[part.name])


def ellipsoid_depth(part: Part, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Front-most z of the part along orthographic rays at (x, y); -inf where missed.

    ``x`` and ``y`` broadcast against each other (e.g. a row of xs and a column of ys).
    """
    m = part.matrix()
    dx = x - part.center[0]
    dy = y - part.center[1]
    linear = m[0, 2] * dx + m[1, 2] * dy
    quad = m[0, 0] * dx * dx + m[1, 1] * dy * dy + 2 * m[0, 1] * dx * dy - 1.0
    disc = linear * linear - m[2, 2] * quad
    hit = disc > 0
    root = np.sqrt(np.where(hit, disc, 0))
    z = part.center[2] + (root - linear) / m[2, 2]
    return np.where(hit, z, -np.inf)


def bounding_box(part: Part) -> tuple[float, float, float, float]:
    """(x_min, x_max, y_min, y_max) of the part's orthographic silhouette."""
    extent = np.sqrt((part.rotation**2) @ (part.radii**2))
    return (part.center[0] - extent[0], part.center[0] + extent[0],
            part.center[1] - extent[1], part.center[1] + extent[1])


def raycast(
    parts: list[Part],
    xs: np.ndarray,
    ys: np.ndarray,
    clip: dict[int, Callable[[np.ndarray], np.ndarray]] | None = None,
    keep: tuple[int, ...] = (),
) -> tuple[np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """Depth and part-index buffers for the pixel grid xs (increasing) x ys (decreasing).

    ``clip[i]`` maps world hit points (N x 3) of part i to a keep mask, making that part a
    partial shell (the hair). The full depth maps of the parts in ``keep`` are returned too,
    for blending normals where surfaces meet.
    """
    clip = clip or {}
    depth = np.full((len(ys), len(xs)), -np.inf, dtype=xs.dtype)
    index = np.full((len(ys), len(xs)), -1, dtype=np.int8)
    kept = {i: np.full_like(depth, -np.inf) for i in keep}
    neg_ys = -ys
    for i, part in enumerate(parts):
        x0, x1, y0, y1 = bounding_box(part)
        a, b = np.searchsorted(xs, [x0, x1])
        c, d = np.searchsorted(neg_ys, [-y1, -y0])
        if a >= b or c >= d:
            continue
        z = ellipsoid_depth(part, xs[None, a:b], ys[c:d, None]).astype(xs.dtype)
        if i in clip:
            rows, cols = np.nonzero(np.isfinite(z))
            points = np.column_stack([xs[a + cols], ys[c + rows], z[rows, cols]])
            drop = ~clip[i](points)
            z[rows[drop], cols[drop]] = -np.inf
        if i in kept:
            kept[i][c:d, a:b] = z
        window = depth[c:d, a:b]
        nearer = z > window
        window[nearer] = z[nearer]
        index[c:d, a:b][nearer] = i
    return depth, index, kept


def surface_normals(part: Part, points: np.ndarray) -> np.ndarray:
    """Unit outward normals at points (N x 3) on the part's surface."""
    normals = apply(points - part.center, part.matrix())
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)


def landmark_points(identity: Identity, mouth_open: float, width: float, rounding: float) -> np.ndarray:
    """Landmarks in head coordinates (K x 3), in LANDMARK_NAMES order."""
    parts = {part.name: part for part in head_parts(identity, mouth_open)}
    mouth = mouth_shape(identity, mouth_open, width, rounding)
    eyes = [parts[n].center + np.array([0, 0, parts[n].radii[2]]) for n in ("eye_l", "eye_r")]
    nose = parts["nose_tip"]
    tip = nose.center + nose.rotation @ (nose.radii * np.array([0.0, -0.3, 0.954]))
    jaw = parts["chin"]
    chin = jaw.center + jaw.rotation @ (jaw.radii * np.array([0.0, -0.6, 0.8]))
    xy = np.array([
        [-mouth.half_width, mouth.center_y],
        [mouth.half_width, mouth.center_y],
        [0.0, mouth.center_y + mouth.half_height + mouth.upper_lip],
        [0.0, mouth.center_y - mouth.half_height - mouth.lower_lip],
    ])
    surface = [parts["face"], parts["jaw"], parts["chin"]]
    z = np.max([ellipsoid_depth(part, xy[:, 0], xy[:, 1]) for part in surface], axis=0)
    mouth_points = np.column_stack([xy, z])
    return np.vstack([eyes[0], eyes[1], tip, mouth_points, chin])


def point_depth(parts: list[Part], x: np.ndarray, y: np.ndarray,
                clip: dict[int, Callable[[np.ndarray], np.ndarray]] | None = None) -> np.ndarray:
    """Front-most depth over all parts at points (x, y), honouring clipped parts like raycast."""
    depths = []
    for i, part in enumerate(parts):
        z = ellipsoid_depth(part, x, y)
        if clip and i in clip:
            hit = np.isfinite(z)
            keep = np.zeros_like(hit)
            keep[hit] = clip[i](np.column_stack([x[hit], y[hit], z[hit]]))
            z = np.where(keep, z, -np.inf)
        depths.append(z)
    return np.max(depths, axis=0)


def project_landmarks(
    identity: Identity, parts: list[Part], yaw: float, pitch: float, roll: float,
    mouth_open: float, width: float, rounding: float,
    clip: dict[int, Callable[[np.ndarray], np.ndarray]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """World (x, y) of each landmark and whether it is seen (not behind another surface)."""
    rotation = head_rotation(yaw, pitch, roll)
    points = NECK_PIVOT + apply(landmark_points(identity, mouth_open, width, rounding) - NECK_PIVOT, rotation.T)
    depth = point_depth(parts, points[:, 0], points[:, 1], clip)
    visible = points[:, 2] >= depth - 0.015
    return points[:, :2], visible

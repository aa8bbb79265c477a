"""Rendering one frame: ray-cast ellipsoids, procedural textures, two lights, 2x supersampling.

Pose convention (see :mod:`bench.data.synth.geometry`): yaw > 0 turns the face to the image's
left, pitch > 0 lifts the chin, roll > 0 tilts the top of the head to the image's left; the
head rotates about a neck pivot. Projection is orthographic.

Shading is deferred: the ray cast yields a depth and a part index per sub-pixel, then each
part's pixels are shaded together. Skin details (hair, brows, lips and mouth opening, eye
sockets) are decals in head coordinates, so they turn with the head and foreshorten with the
surface. The dark mouth opening's height follows ``mouth_open`` and its width follows
``width`` and ``rounding``; the jaw ellipsoid drops as the mouth opens.

Landmarks are pixel coordinates (x, y) with pixel centres at integers, so the landmark's
pixel is ``image[round(y), round(x)]``. A landmark is visible unless another surface lies in
front of it along the view ray (exact ray-cast depth test, the hair shell included).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import (
    EYE_HEIGHT, EYE_SPREAD, NECK_PIVOT, PART_ID, Part, apply, dot, head_parts, head_rotation, mouth_shape,
    posed_parts, project_landmarks, raycast, surface_normals,
)
from .dynamics import SceneState, apply_scene
from .identity import Identity

VIEW_SPAN = 3.1  # world units across the image
VIEW_CENTER = (0.0, -0.3)
KEY_LIGHT = np.array([-0.45, 0.55, 0.75]) / np.linalg.norm([-0.45, 0.55, 0.75])
FILL_LIGHT = np.array([0.65, 0.05, 0.75]) / np.linalg.norm([0.65, 0.05, 0.75])
BLENDED = ("cranium", "face", "jaw", "chin", "nose", "nose_tip")  # parts whose creases are smoothed
HALF_VECTOR = (KEY_LIGHT + [0, 0, 1]) / np.linalg.norm(KEY_LIGHT + [0, 0, 1])


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # H x W x 3 uint8
    landmarks: np.ndarray  # K x 2 float32 pixel (x, y)
    visible: np.ndarray  # K bool
    affected: np.ndarray | None = None  # H x W bool: the scene event's pixels (bench.data.synth.dynamics)


@dataclass(frozen=True)
class FaceState:
    """The per-frame non-rigid state: articulators, eyelids and gaze."""

    mouth_open: float = 0.0
    width: float = 0.5
    rounding: float = 0.0
    blink: float = 0.0  # 0 open ... 1 shut
    gaze_x: float = 0.0  # gaze direction offsets in head coordinates
    gaze_y: float = 0.0


# The camera: (x shift, y shift) in world units and a zoom factor (> 1 shows the head larger).
View = tuple[float, float, float]
STILL: View = (0.0, 0.0, 1.0)


def _camera(view: View) -> tuple[float, float, float]:
    """The view's centre and span in world units."""
    dx, dy, zoom = view
    return VIEW_CENTER[0] + dx, VIEW_CENTER[1] + dy, VIEW_SPAN / zoom


def pixel_grid(size: int, supersample: int = 1, view: View = STILL) -> tuple[np.ndarray, np.ndarray]:
    """World x of pixel columns (increasing) and y of rows (decreasing), at sub-pixel centres."""
    n = size * supersample
    cx, cy, span = _camera(view)
    t = ((np.arange(n) + 0.5) / n - 0.5) * span
    return (cx + t).astype(np.float32), (cy - t).astype(np.float32)


def world_to_pixel(xy: np.ndarray, size: int, view: View = STILL) -> np.ndarray:
    """World (x, y) to pixel (x, y), pixel centres at integers: ``frames[round(y), round(x)]``."""
    cx, cy, span = _camera(view)
    scale = size / span
    px = (xy[..., 0] - cx) * scale + size / 2 - 0.5
    py = (cy - xy[..., 1]) * scale + size / 2 - 0.5
    return np.stack([px, py], axis=-1)


def render_frame(
    identity: Identity,
    yaw: float = 0.0,
    pitch: float = 0.0,
    roll: float = 0.0,
    state: FaceState = FaceState(),
    size: int = 128,
    supersample: int = 2,
    view: View = STILL,
    scene: SceneState | None = None,
) -> Frame:
    """One RGB frame with its projected landmarks; angles in degrees. ``view`` moves the camera,
    ``scene`` draws a scene event (bench.data.synth.dynamics) and labels its pixels."""
    xs, ys = pixel_grid(size, supersample, view)
    parts = posed_parts(identity, yaw, pitch, roll, state.mouth_open)
    rotation = head_rotation(yaw, pitch, roll)
    to_head = lambda points: NECK_PIVOT + apply(points - NECK_PIVOT, rotation)  # noqa: E731
    clip = {PART_ID["hair"]: lambda points: hair_mask(identity, to_head(points)) > 0.5}
    blend = tuple(PART_ID[name] for name in BLENDED)
    depth, index, depths = raycast(parts, xs, ys, clip=clip, keep=blend)
    image = background(identity, xs, ys)
    local = {part.name: part for part in head_parts(identity, state.mouth_open)}
    flat_index = index.ravel()
    order = np.argsort(flat_index, kind="stable")
    counts = np.bincount(flat_index + 1, minlength=len(parts) + 1)
    starts = np.concatenate([[0], np.cumsum(counts)])
    flat_image = image.reshape(-1, 3)
    for i, part in enumerate(parts):
        pixels = order[starts[i + 1]:starts[i + 2]]
        if len(pixels) == 0:
            continue
        rows, cols = np.divmod(pixels, len(xs))
        points = np.column_stack([xs[cols], ys[rows], depth.ravel()[pixels]]).astype(np.float64)
        if i in depths:
            normals = blended_normals(parts, depths, pixels, points)
        else:
            normals = surface_normals(part, points)
        flat_image[pixels] = shade_part(identity, part, local, to_head(points), normals, state)
    affected = apply_scene(image, index >= 0, xs, ys, scene) if scene is not None else None
    if supersample > 1:
        image = image.reshape(size, supersample, size, supersample, 3).mean(axis=(1, 3))
        if affected is not None:  # a pixel is affected when at least a quarter of it is
            affected = affected.reshape(size, supersample, size, supersample).mean(axis=(1, 3)) >= 0.25
    pixels8 = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
    xy, visible = project_landmarks(identity, parts, yaw, pitch, roll,
                                    state.mouth_open, state.width, state.rounding, clip)
    if affected is None and scene is not None:
        affected = np.zeros((size, size), dtype=bool)
    pixel_xy = world_to_pixel(xy, size, view).astype(np.float32)
    if scene is not None and scene.occluder is not None:  # points behind the bar are hidden
        col, row = np.clip(np.round(pixel_xy).astype(int), 0, size - 1).T
        visible = visible & ~affected[row, col]
    return Frame(pixels8, pixel_xy, visible, affected)


def blended_normals(parts: list[Part], depths: dict[int, np.ndarray], pixels: np.ndarray,
                    points: np.ndarray, softness: float = 0.06) -> np.ndarray:
    """Normals averaged over nearby surfaces, so creases between face ellipsoids look smooth."""
    total = np.zeros_like(points)
    for k, depth in depths.items():
        z = depth.ravel()[pixels].astype(np.float64)
        weight = np.exp(np.minimum(z - points[:, 2], 0) / softness)
        near = weight > 1e-3
        if not np.any(near):
            continue
        surface = points[near].copy()
        surface[:, 2] = z[near]
        total[near] += weight[near, None] * surface_normals(parts[k], surface)
    return total / np.linalg.norm(total, axis=1, keepdims=True)


def background(identity: Identity, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """A vertical gradient with a soft light patch behind the head: plain but not flat."""
    top, bottom = np.array(identity.background_top), np.array(identity.background_bottom)
    t = ((ys - ys[0]) / (ys[-1] - ys[0]))[:, None, None]
    image = top * (1 - t) + bottom * t
    glow = np.exp(-((xs[None, :] + 0.3) ** 2 + (ys[:, None] - 0.2) ** 2) / 1.2)[..., None]
    image = image * (0.88 + 0.2 * glow)
    return np.broadcast_to(image, (len(ys), len(xs), 3)).astype(np.float32)


def lighting(normals: np.ndarray, wrap: float = 0.25) -> np.ndarray:
    """Ambient (sky-tinted from above) + wrapped Lambert key and fill lights."""
    key = np.clip((dot(normals, KEY_LIGHT) + wrap) / (1 + wrap), 0, None)
    fill = np.clip((dot(normals, FILL_LIGHT) + wrap) / (1 + wrap), 0, None)
    ambient = 0.26 + 0.06 * normals[:, 1]
    return (ambient + 0.68 * key + 0.26 * fill)[:, None]


def specular(normals: np.ndarray, strength: float, power: float) -> np.ndarray:
    return (strength * np.clip(dot(normals, HALF_VECTOR), 0, None) ** power)[:, None]


def shade_part(identity: Identity, part: Part, local: dict[str, Part], q: np.ndarray,
               normals: np.ndarray, state: FaceState) -> np.ndarray:
    """Colours (N x 3) of one part's visible points; q are the points in head coordinates."""
    name = part.name
    skin = np.array(identity.skin)
    if name in ("cranium", "face", "jaw", "chin"):
        albedo, gloss = head_skin(identity, q, state)
        return albedo * lighting(normals) + specular(normals, 0.10, 18) * gloss
    if name == "hair":
        hair = hair_colour(identity, q)
        return hair * lighting(normals, 0.1) + specular(normals, 0.12, 10)
    if name == "nose":
        return skin * [1.0, 0.96, 0.94] * lighting(normals) + specular(normals, 0.14, 20)
    if name == "nose_tip":
        albedo = np.broadcast_to(skin * [1.0, 0.94, 0.92], q.shape).copy()
        tip = local["nose_tip"]
        v = (q - tip.center) / tip.radii
        for side in (-1, 1):
            nostril = ((v[:, 0] - 0.5 * side) / 0.3) ** 2 + ((v[:, 1] + 0.7) / 0.3) ** 2 < 1
            albedo[nostril & (v[:, 2] < 0.7)] *= 0.3
        return albedo * lighting(normals) + specular(normals, 0.18, 24)
    if name in ("ear_l", "ear_r"):
        ear = local[name]
        v = apply(q - ear.center, ear.rotation) / ear.radii
        outward = np.sign(ear.center[0]) * v[:, 0]
        bowl = (outward > 0.25) & (v[:, 1] ** 2 / 0.5 + v[:, 2] ** 2 / 0.45 < 1)
        albedo = np.where(bowl[:, None], skin * [0.68, 0.55, 0.52], skin * [0.97, 0.9, 0.88])
        return albedo * lighting(normals)
    if name in ("eye_l", "eye_r"):
        return eye_colour(identity, local[name], q, normals, state)
    if name == "neck":
        shadow = np.clip((q[:, 1] + 1.0) / 0.5, 0, 1)[:, None]  # darker under the jaw
        return skin * (0.85 - 0.3 * shadow) * lighting(normals)
    shirt = np.array(identity.shirt)
    return shirt * lighting(normals) + specular(normals, 0.04, 8)


def hair_mask(identity: Identity, q: np.ndarray) -> np.ndarray:
    """Soft 0..1 hair coverage over the cranium from a hairline that falls from brow to nape."""
    azimuth = np.degrees(np.arctan2(q[:, 2] + 0.15, np.abs(q[:, 0])))  # 90 front, -90 back
    hairline = np.interp(
        azimuth,
        [-90, -25, 5, 38, 62, 90],
        [identity.hairline_back, identity.hairline_back, identity.hairline_side,
         identity.hairline_side + 0.05, identity.hairline_front, identity.hairline_front],
    )
    if identity.fringe > 0:
        hairline = hairline - identity.fringe * np.clip(1 - (q[:, 0] / 0.42) ** 2, 0, 1) * (azimuth > 45)
    hairline = hairline + 0.007 * np.sin(q[:, 0] * 40 + 3 * np.sin(q[:, 2] * 7))
    return np.clip((q[:, 1] - hairline) / 0.035 + 0.5, 0, 1)


def hair_colour(identity: Identity, q: np.ndarray) -> np.ndarray:
    """Hair with strand-like streaks radiating from the crown."""
    theta = np.arctan2(q[:, 0], q[:, 2] + 0.35)
    height = q[:, 1]
    # Strand frequencies stay well below the pixel rate at 128 px, so moving heads do not shimmer.
    streak = np.sin(theta * 22 + 2.5 * np.sin(theta * 5 + height * 4) + height * 6)
    fine = np.sin(theta * 41 + height * 13)
    shade = 0.82 + 0.13 * streak + 0.05 * fine
    hair = np.array(identity.hair)
    return np.clip(hair * shade[:, None] + 0.03 * (streak[:, None] > 0.85), 0, 1)


def head_skin(identity: Identity, q: np.ndarray, state: FaceState) -> tuple[np.ndarray, np.ndarray]:
    """Albedo and specular weight on cranium, face and jaw: skin with all the decals."""
    skin = np.array(identity.skin)
    x, y, z = q[:, 0], q[:, 1], q[:, 2]
    front = z > 0.25
    albedo = np.broadcast_to(skin, q.shape).copy()
    gloss = np.ones((len(q), 1))
    # Cheeks a little redder, eye sockets and under-nose a little darker.
    cheek = np.exp(-(((np.abs(x) - 0.34) / 0.13) ** 2 + ((y - EYE_HEIGHT + 0.32) / 0.12) ** 2)) * front
    albedo *= 1 - 0.12 * cheek[:, None] * [0.0, 1.0, 0.8]
    eye_x = EYE_SPREAD * identity.eye_spacing
    socket = np.exp(-(((np.abs(x) - eye_x) / 0.16) ** 2 + ((y - EYE_HEIGHT - 0.03) / 0.11) ** 2)) * front
    albedo *= 1 - 0.22 * socket[:, None]
    # Eyebrows: arched bands above the eyes.
    for side in (-1, 1):
        u = (x - side * (eye_x + 0.02)) / 0.17
        arch = EYE_HEIGHT + 0.16 + 0.045 * (1 - u**2)
        thickness = 0.032 * (1.25 - 0.5 * np.abs(u + side * 0.3))
        brow = (np.abs(u) < 1) & (np.abs(y - arch) < thickness) & front
        albedo[brow] = albedo[brow] * 0.25 + np.array(identity.brow) * 0.75
    # Hair above the hairline.
    cover = hair_mask(identity, q)[:, None]
    if np.any(cover > 0):
        albedo = albedo * (1 - cover) + hair_colour(identity, q) * cover
        gloss = gloss * (1 - 0.7 * cover)
    mouth_decal(identity, q, state, albedo, gloss)
    return albedo, gloss


def mouth_decal(identity: Identity, q: np.ndarray, state: FaceState, albedo: np.ndarray,
                gloss: np.ndarray) -> None:
    """Lips and the dark opening (with teeth), drawn in place."""
    mouth = mouth_shape(identity, state.mouth_open, state.width, state.rounding)
    x, y = q[:, 0], q[:, 1]
    near = (q[:, 2] > 0.3) & (np.abs(x) < mouth.half_width + 0.05) & (np.abs(y - mouth.center_y) < 0.3)
    if not np.any(near):
        return
    idx = np.nonzero(near)[0]
    xn = x[idx] / (mouth.half_width + 0.012)
    dy = y[idx] - mouth.center_y
    across = np.clip(1 - xn**2, 0, 1)
    upper_edge = (mouth.half_height + mouth.upper_lip * (0.55 + 0.45 * across)) * np.sqrt(across)
    lower_edge = (mouth.half_height + mouth.lower_lip * (0.55 + 0.45 * across)) * np.sqrt(across)
    # Cupid's bow: the upper lip's top dips slightly at the centre.
    upper_edge = upper_edge - 0.008 * np.exp(-(x[idx] / 0.03) ** 2)
    lips = (dy < upper_edge) & (dy > -lower_edge) & (across > 0)
    lip = np.array(identity.lip)
    shade = np.where(dy > 0, 0.88, 1.0)[:, None]  # upper lip slightly darker
    albedo[idx[lips]] = lip * shade[lips]
    gloss[idx[lips]] = 1.6
    inner = mouth.half_height * np.sqrt(across)
    opening = (np.abs(dy) < inner) & (across > 0)
    # A thin dark line between closed lips keeps the mouth readable.
    line = (np.abs(dy) < 0.008 + inner) & (across > 0.05) & ~opening
    albedo[idx[line]] = lip * 0.45
    if np.any(opening):
        depth_shade = 0.5 + 0.5 * across[:, None]
        inside = np.where((dy > inner * 0.45)[:, None], np.array([0.86, 0.84, 0.78]), [0.22, 0.06, 0.07])
        tongue = dy < -inner * 0.55
        inside = np.where(tongue[:, None], [0.55, 0.22, 0.22], inside) * depth_shade
        albedo[idx[opening]] = inside[opening]
        gloss[idx[opening]] = 0.2


def eye_colour(identity: Identity, eye: Part, q: np.ndarray, normals: np.ndarray, state: FaceState) -> np.ndarray:
    """Sclera, iris, pupil and lids with a dark lash line; eyelids close with ``blink``."""
    u = (q - eye.center) / eye.radii[0]
    gaze = np.array([state.gaze_x, state.gaze_y, 1.0])
    gaze /= np.linalg.norm(gaze)
    cos = dot(u, gaze)
    iris = np.array(identity.iris)
    colour = np.where((cos > 0.80)[:, None], iris, np.array([0.92, 0.90, 0.87]))
    colour = np.where(((cos > 0.80) & (cos < 0.85))[:, None], iris * 0.55, colour)
    colour = np.where((cos > 0.955)[:, None], np.array([0.03, 0.02, 0.02]), colour)
    sclera_shade = np.clip(0.75 + 0.25 * u[:, 2], 0, 1)[:, None]
    colour = colour * np.where((cos > 0.80)[:, None], 1.0, sclera_shade)
    top = 0.64 - 1.45 * state.blink - 0.3 * u[:, 0] ** 2
    bottom = -0.6 + 0.25 * u[:, 0] ** 2
    lid = (u[:, 1] > top) | (u[:, 1] < bottom)
    lash = (u[:, 1] > top - 0.2) & ~lid
    skin = np.array(identity.skin)
    colour = np.where(lid[:, None], skin * 0.9, colour)
    colour = np.where(lash[:, None], skin * 0.2, colour)
    lit = colour * lighting(normals, 0.1)
    catchlight = specular(normals, 0.9, 80) * ~lid[:, None]
    return lit + catchlight


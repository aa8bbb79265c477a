"""Synthetic identities: colours, head proportions, hair style and voice.

Identities are drawn from palettes through a seed-wide permutation, so the first few
identities of a dataset differ visibly in skin and hair rather than by chance alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .audio import Voice, random_voice

RGB = tuple[float, float, float]

SKIN_TONES: tuple[RGB, ...] = (
    (0.93, 0.76, 0.64),
    (0.55, 0.37, 0.26),
    (0.84, 0.65, 0.50),
    (0.36, 0.24, 0.17),
    (0.97, 0.82, 0.74),
    (0.71, 0.51, 0.36),
    (0.88, 0.70, 0.56),
    (0.46, 0.30, 0.21),
)
HAIR_COLOURS: tuple[RGB, ...] = (
    (0.07, 0.05, 0.04),
    (0.74, 0.58, 0.34),
    (0.28, 0.16, 0.09),
    (0.50, 0.22, 0.10),
    (0.62, 0.62, 0.64),
    (0.16, 0.10, 0.06),
    (0.86, 0.76, 0.52),
)
IRIS_COLOURS: tuple[RGB, ...] = (
    (0.30, 0.18, 0.10),
    (0.25, 0.42, 0.62),
    (0.30, 0.45, 0.28),
    (0.45, 0.35, 0.18),
    (0.18, 0.12, 0.08),
)


@dataclass(frozen=True)
class Identity:
    """Everything that stays the same across one person's clips."""

    name: str
    skin: RGB
    hair: RGB
    brow: RGB
    lip: RGB
    iris: RGB
    shirt: RGB
    background_top: RGB
    background_bottom: RGB
    # Head proportions: multipliers on the reference head's ellipsoid radii.
    head_width: float = 1.0
    head_height: float = 1.0
    face_width: float = 1.0
    jaw_width: float = 1.0
    nose_length: float = 1.0
    nose_width: float = 1.0
    ear_size: float = 1.0
    eye_size: float = 1.0
    eye_spacing: float = 1.0
    mouth_width: float = 1.0
    # Hair style: hairline height at the forehead, at the temples, at the nape; volume.
    hairline_front: float = 0.58
    hairline_side: float = 0.22
    hairline_back: float = -0.5
    hair_volume: float = 1.0
    fringe: float = 0.0  # > 0 brings hair down over the forehead centre
    voice: Voice = Voice()


def _hsv(h: float, s: float, v: float) -> RGB:
    """HSV to RGB, so backgrounds and shirts can be drawn with a controlled saturation."""
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return (float(r), float(g), float(b))


def make_identity(seed: int, index: int) -> Identity:
    """Identity ``index`` of the dataset with ``seed``: the same inputs give the same person."""
    order = np.random.default_rng((seed, 7919))
    skin_order = order.permutation(len(SKIN_TONES))
    hair_order = order.permutation(len(HAIR_COLOURS))
    hue_offset = order.random()
    rng = np.random.default_rng((seed, 7919, index))
    skin = np.array(SKIN_TONES[skin_order[index % len(SKIN_TONES)]]) * rng.uniform(0.96, 1.04, 3)
    skin = np.clip(skin, 0, 1)
    hair = np.array(HAIR_COLOURS[hair_order[index % len(HAIR_COLOURS)]]) * rng.uniform(0.9, 1.1)
    hair = np.clip(hair, 0, 1)
    brow = np.clip(np.minimum(hair, skin * 0.55) * 0.9, 0, 1)
    lip = np.clip(skin * np.array([0.92, 0.55, 0.55]) + np.array([0.06, 0.0, 0.02]), 0, 1)
    golden = (hue_offset + index * 0.618034) % 1.0  # well-spread hues across identities
    background_top = _hsv(golden, rng.uniform(0.15, 0.35), rng.uniform(0.78, 0.92))
    background_bottom = _hsv((golden + 0.05) % 1.0, rng.uniform(0.25, 0.45), rng.uniform(0.40, 0.55))
    shirt = _hsv((golden + 0.45 + rng.uniform(-0.1, 0.1)) % 1.0, rng.uniform(0.35, 0.75), rng.uniform(0.3, 0.8))
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    style = int(rng.integers(0, 3))  # 0 short, 1 fuller with fringe, 2 receding
    return Identity(
        name=f"id{index:02d}",
        skin=tuple(float(c) for c in skin),
        hair=tuple(float(c) for c in hair),
        brow=tuple(float(c) for c in brow),
        lip=tuple(float(c) for c in lip),
        iris=IRIS_COLOURS[int(rng.integers(0, len(IRIS_COLOURS)))],
        shirt=shirt,
        background_top=background_top,
        background_bottom=background_bottom,
        head_width=u(0.93, 1.07),
        head_height=u(0.95, 1.05),
        face_width=u(0.92, 1.06),
        jaw_width=u(0.88, 1.12),
        nose_length=u(0.85, 1.2),
        nose_width=u(0.85, 1.2),
        ear_size=u(0.85, 1.15),
        eye_size=u(0.92, 1.08),
        eye_spacing=u(0.94, 1.06),
        mouth_width=u(0.9, 1.1),
        hairline_front=u(0.55, 0.62) + (0.12 if style == 2 else 0.0),
        hairline_side=u(0.18, 0.28),
        hairline_back=u(-0.6, -0.4),
        hair_volume=u(0.9, 1.0) if style != 1 else u(1.0, 1.1),
        fringe=u(0.12, 0.22) if style == 1 else 0.0,
        voice=random_voice(rng),
    )

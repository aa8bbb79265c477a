"""Opt-in scene dynamics for the synthetic heads, with labels per frame and per pixel.

The paper leaves open how uncertainty behaves when the scene itself changes. Each clip of a dataset
made with ``SynthConfig.conditions`` shows one condition (cycled over clip indices, so every
condition has clips in every split) during a window of 30-50 % of its frames:

- ``background``: diagonal stripes on the backdrop, still outside the window, sliding inside it;
  the affected pixels are the backdrop's.
- ``lighting``: the light on the person dims and warms and comes back (a smooth dip); the affected
  pixels are the person's (head, neck and shoulders).
- ``occluder``: a rounded bar (an arm, a microphone) comes in from one side across the lower face,
  past its middle, and goes back out; the affected pixels are the bar's.

Labels: ``affected`` (uint8 per frame, a bit per condition, :data:`CONDITION_BITS`) and
``affected_mask`` (bool per pixel, the condition's pixels in affected frames, empty elsewhere).
Every draw comes from ``default_rng((seed, clip index, 3))``: clips without conditions are unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONDITIONS = ("background", "lighting", "occluder")
CONDITION_BITS = {name: 1 << i for i, name in enumerate(CONDITIONS)}
STRIPE_PERIOD = 0.45  # world units (the view is 3.1 across)


@dataclass(frozen=True)
class SceneEvent:
    """One condition over frames [start, stop) of a clip, with its drawn parameters."""

    condition: str
    start: int
    stop: int
    angle: float = 0.0  # stripes' direction (radians)
    speed: float = 0.0  # stripes' slide, world units per frame
    colour: tuple[float, float, float] = (0.5, 0.5, 0.5)  # stripes or occluder
    depth: float = 0.0  # lighting: the dip's depth (0..1)
    height: float = 0.0  # occluder: world y of its axis
    radius: float = 0.0  # occluder: half thickness
    direction: float = 1.0  # occluder: +1 comes in from the left
    reach: float = 0.0  # occluder: how far past the centre line its tip gets (world units)

    def active(self, frame: int) -> bool:
        return self.start <= frame < self.stop

    def progress(self, frame: int) -> float:
        """0 at the window's first frame ... 1 after its last, clamped outside it."""
        return float(np.clip((frame - self.start + 0.5) / (self.stop - self.start), 0.0, 1.0))


@dataclass(frozen=True)
class SceneState:
    """What one frame shows of its clip's event (None fields: nothing to draw)."""

    stripes: tuple[float, float, float, tuple[float, float, float]] | None = None  # angle, period, offset, colour
    light_gain: tuple[float, float, float] | None = None  # RGB gain on the person
    occluder: tuple[float, float, float, float, tuple[float, float, float]] | None = None  # x0, x1, y, r, colour
    affected: str | None = None  # the condition whose pixels this frame labels


def plan_event(conditions: tuple[str, ...], seed: int, index: int, n_frames: int) -> SceneEvent | None:
    """The event of clip ``index`` (None without conditions)."""
    if not conditions:
        return None
    rng = np.random.default_rng((seed, index, 3))
    condition = conditions[index % len(conditions)]
    length = max(1, int(round(n_frames * rng.uniform(0.3, 0.5))))
    first = int(round(0.15 * n_frames))
    last = max(first, n_frames - length - int(round(0.1 * n_frames)))
    start = int(rng.integers(first, last + 1))
    common = {"condition": condition, "start": start, "stop": min(n_frames, start + length)}
    if condition == "background":
        tone = rng.uniform(0.15, 0.85, 3)
        return SceneEvent(**common, angle=float(rng.uniform(0.3, 1.2)), speed=float(rng.uniform(0.02, 0.04)),
                          colour=tuple(float(v) for v in tone))
    if condition == "lighting":
        return SceneEvent(**common, depth=float(rng.uniform(0.35, 0.55)))
    tone = rng.uniform(0.2, 0.9) * np.array([1.0, 0.78, 0.62]) if rng.random() < 0.5 else rng.uniform(0.05, 0.35, 3)
    return SceneEvent(**common, colour=tuple(float(v) for v in tone), height=float(rng.uniform(-0.7, -0.4)),
                      radius=float(rng.uniform(0.1, 0.16)), direction=float(rng.choice([-1.0, 1.0])),
                      reach=float(rng.uniform(0.1, 0.5)))


def scene_state(event: SceneEvent | None, frame: int) -> SceneState:
    """What frame ``frame`` shows: stripes stay put outside the window, the other events are absent."""
    if event is None:
        return SceneState()
    active = event.active(frame)
    affected = event.condition if active else None
    if event.condition == "background":
        slide = event.speed * (min(max(frame, event.start), event.stop) - event.start)
        return SceneState(stripes=(event.angle, STRIPE_PERIOD, slide, event.colour), affected=affected)
    if event.condition == "lighting":
        if not active:
            return SceneState()
        dip = event.depth * np.sin(np.pi * event.progress(frame)) ** 2
        gain = (1.0 - dip, 1.0 - 1.15 * dip, 1.0 - 1.4 * dip)  # dimmer and warmer
        return SceneState(light_gain=tuple(float(np.clip(g, 0.05, 1.0)) for g in gain), affected=affected)
    if not active:
        return SceneState()
    # An arm from beyond one edge: its tip comes in past the face's middle and goes back out.
    edge = 1.75  # just outside the view's half width (1.55) plus the rounded tip
    tip = -edge + (edge + event.reach) * np.sin(np.pi * event.progress(frame))
    x0, x1 = event.direction * -4.0, event.direction * tip
    return SceneState(occluder=(x0, x1, event.height, event.radius, event.colour), affected=affected)


def stripes(xs: np.ndarray, ys: np.ndarray, angle: float, period: float, offset: float) -> np.ndarray:
    """Soft stripe weight (rows x cols, 0..1) on the world grid, slid by ``offset`` along the stripes' normal."""
    along = xs[None, :] * np.cos(angle) + ys[:, None] * np.sin(angle) - offset
    return 0.5 + 0.5 * np.tanh(3.0 * np.sin(2 * np.pi * along / period))


def capsule(xs: np.ndarray, ys: np.ndarray, x0: float, x1: float, y: float, radius: float) -> np.ndarray:
    """Bool coverage (rows x cols) of a horizontal capsule from x0 to x1 at height y."""
    nearest = np.clip(xs, min(x0, x1), max(x0, x1))[None, :]
    return (xs[None, :] - nearest) ** 2 + (ys[:, None] - y) ** 2 < radius**2


def apply_scene(image: np.ndarray, person: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                state: SceneState) -> np.ndarray | None:
    """Draw ``state`` into the super-sampled ``image`` (rows x cols x 3, float, in place); ``person`` is
    where the ray cast hit the person. Returns the affected sub-pixels, or None when the frame has none."""
    affected = None
    if state.stripes is not None:
        angle, period, offset, colour = state.stripes
        weight = 0.55 * stripes(xs, ys, angle, period, offset)[..., None]
        backdrop = ~person
        image[backdrop] = (image * (1 - weight) + np.asarray(colour) * weight)[backdrop]
        affected = backdrop
    if state.light_gain is not None:
        image[person] *= np.asarray(state.light_gain, dtype=image.dtype)
        affected = person
    if state.occluder is not None:
        x0, x1, y, radius, colour = state.occluder
        bar = capsule(xs, ys, x0, x1, y, radius)
        # Shaded as a cylinder lit from above, so it reads as an object, not a flat cut-out.
        across = np.clip((ys[:, None] - y) / radius, -1, 1)
        shade = (0.55 + 0.45 * np.sqrt(1 - across**2) + 0.15 * across)[..., None]
        image[bar] = (np.asarray(colour) * shade * np.ones_like(image))[bar]
        affected = bar
    return affected if state.affected else None

"""The embedded default dataset: procedural talking heads written in the common clip format.

Every random draw comes from ``np.random.default_rng((seed, clip_index, stream))``, never from
global state or worker order, so the same :class:`SynthConfig` always gives byte-identical
files, with any number of workers.

Test clips are stratified by head yaw. Each clip's base yaw is drawn with margins, and the
per-frame sway is bounded by ``sway_deg``, so every frame's |yaw| stays inside its stratum. Val
clips (held out for fitting recalibration maps) are stratified the same way and planned after
every train and test clip, so adding them changed no train or test clip's bytes.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bench.cache import cache_root
from bench.files import stable_hash, without_legacy
from bench.config import SynthConfig  # the data's settings live with every other config
from bench.data.clips import Clip, Dataset, manifest_entry, open_dataset, save_clip, write_manifest
from .audio import synthesize
from .dynamics import CONDITION_BITS, plan_event, scene_state
from .geometry import LANDMARK_NAMES
from .identity import make_identity
from .render import FaceState, render_frame

log = logging.getLogger(__name__)

GENERATOR_VERSION = "2"
# Stratum name, |yaw| lower bound, upper bound (degrees): the labels of every clip.
STRATA: tuple[tuple[str, float, float], ...] = (
    ("frontal", 0.0, 15.0),
    ("moderate", 15.0, 30.0),
    ("extreme", 30.0, 75.0),
)
# Range of test clips' base |yaw| per stratum: margins of 3+ degrees for the sway.
TEST_BASE_YAW: tuple[tuple[str, float, float], ...] = (
    ("frontal", 0.0, 9.0),
    ("moderate", 19.0, 26.0),
    ("extreme", 35.0, 70.0),
)


@dataclass(frozen=True)
class ClipPlan:
    """What one clip will show, decided before any rendering."""

    index: int
    clip_id: str
    split: str
    stratum: str
    identity: int
    base_yaw: float


def stratum_of(abs_yaw: float) -> str:
    """The stratum label for a |yaw| in degrees."""
    for name, low, high in STRATA:
        if low <= abs_yaw < high:
            return name
    return STRATA[-1][0]


def plan_clips(config: SynthConfig) -> list[ClipPlan]:
    """Train clips spread |yaw| over [0, max) in shuffled bins; test clips, then val clips, per stratum."""
    plans: list[ClipPlan] = []
    top = config.max_train_yaw - config.sway_deg
    bins = np.random.default_rng((config.seed, 104729)).permutation(max(config.train_clips, 1))
    for i in range(config.train_clips):
        rng = np.random.default_rng((config.seed, i, 0))
        magnitude = (bins[i] + rng.uniform(0.05, 0.95)) / config.train_clips * top
        yaw = float(magnitude * rng.choice([-1.0, 1.0]))
        plans.append(ClipPlan(i, f"train_{i:03d}", "train", stratum_of(abs(yaw)), i % config.identities, yaw))
    index = config.train_clips
    # Val clips come last, so every train and test clip keeps its index (its seed streams and its bytes).
    for split, per_stratum in (("test", config.test_clips_per_stratum), ("val", config.val_clips_per_stratum)):
        for name, low, high in TEST_BASE_YAW:
            for k in range(per_stratum):
                rng = np.random.default_rng((config.seed, index, 0))
                yaw = float(rng.uniform(low, high) * rng.choice([-1.0, 1.0]))
                # Every stratum holds the same identities, so pose bins are not confounded with identity.
                plans.append(ClipPlan(index, f"{split}_{name}_{k:03d}", split, name, k % config.identities, yaw))
                index += 1
    return plans


def _sway(rng: np.random.Generator, t: np.ndarray, amplitude: float) -> np.ndarray:
    """Smooth motion bounded by ``amplitude``: a few slow sinusoids with amplitudes summing below it."""
    weights = rng.dirichlet(np.ones(3)) * amplitude * rng.uniform(0.6, 1.0)
    freqs = rng.uniform(0.15, 0.9, 3)
    phases = rng.uniform(0, 2 * np.pi, 3)
    return np.sum(weights[:, None] * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None]), axis=0)


def _wander(rng: np.random.Generator, t: np.ndarray, amplitude: float) -> np.ndarray:
    """Slow head turns within a clip, |value| <= ``amplitude``: nods and turns of a few seconds each."""
    if amplitude <= 0:
        return np.zeros_like(t)
    freqs = rng.uniform(0.08, 0.45, 3)
    phases = rng.uniform(0, 2 * np.pi, 3)
    weights = rng.dirichlet(np.ones(3))
    path = np.sum(weights[:, None] * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None]), axis=0)
    return amplitude * path / max(1.0, float(np.abs(path).max()))


def _blinks(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Eyelid closure per frame: occasional 0.2 s blinks."""
    closure = np.zeros_like(t)
    when = rng.uniform(-1.0, 1.5)
    while when < t[-1] + 0.2:
        closure = np.maximum(closure, np.clip(1 - np.abs(t - when) / 0.1, 0, 1))
        when += rng.uniform(1.5, 4.5)
    return closure


def render_clip(config: SynthConfig, plan: ClipPlan) -> Clip:
    """Render one planned clip: audio, frames and every label."""
    identity = make_identity(config.seed, plan.identity)
    speech = synthesize(np.random.default_rng((config.seed, plan.index, 1)), config.seconds, config.fps,
                        identity.voice, config.sample_rate)
    n = config.n_frames
    t = (np.arange(n) + 0.5) / config.fps
    motion = np.random.default_rng((config.seed, plan.index, 2))
    base_pitch, base_roll = motion.uniform(-5, 5), motion.uniform(-4, 4)
    yaw = plan.base_yaw + _sway(motion, t, config.sway_deg)
    pitch = base_pitch + _sway(motion, t, config.sway_deg)
    roll = base_roll + _sway(motion, t, config.sway_deg)
    blink = _blinks(motion, t)
    gaze = motion.uniform(-0.08, 0.08, 2)
    views = _camera_path(config, plan, t)
    if config.head_motion_deg > 0:  # its own stream: clips without it keep their bytes
        turns = np.random.default_rng((config.seed, plan.index, 4))
        yaw = yaw + _wander(turns, t, config.head_motion_deg)
        pitch = pitch + _wander(turns, t, config.head_motion_deg / 2)
        roll = roll + _wander(turns, t, config.head_motion_deg / 2)
        if plan.split == "train":  # train frames stay below the configured |yaw|
            yaw = np.clip(yaw, -config.max_train_yaw + 0.01, config.max_train_yaw - 0.01)
    event = plan_event(config.conditions, config.seed, plan.index, n)
    frames = np.empty((n, config.size, config.size, 3), dtype=np.uint8)
    landmarks = np.empty((n, len(LANDMARK_NAMES), 2), dtype=np.float32)
    visible = np.empty((n, len(LANDMARK_NAMES)), dtype=bool)
    affected = np.zeros(n, dtype=np.uint8) if event else None
    affected_mask = np.zeros((n, config.size, config.size), dtype=bool) if event else None
    for f in range(n):
        state = FaceState(float(speech.mouth_open[f]), float(speech.width[f]), float(speech.rounding[f]),
                          float(blink[f]), float(gaze[0]), float(gaze[1]))
        scene = scene_state(event, f) if event else None
        frame = render_frame(identity, float(yaw[f]), float(pitch[f]), float(roll[f]), state,
                             config.size, config.supersample, view=views[f], scene=scene)
        frames[f], landmarks[f], visible[f] = frame.image, frame.landmarks, frame.visible
        if event and scene is not None and scene.affected and frame.affected is not None:
            affected[f] = CONDITION_BITS[scene.affected]
            affected_mask[f] = frame.affected
    meta: dict[str, Any] = {
        "clip_id": plan.clip_id,
        "identity": identity.name,
        "split": plan.split,
        "stratum": plan.stratum,
        "source": "synth",
        "landmark_names": list(LANDMARK_NAMES),
        "viseme_names": list(speech.viseme_names),
        "base_yaw": round(plan.base_yaw, 4),
        "phonemes": [[p, round(s, 4), round(e, 4)] for p, s, e in speech.phonemes if s < config.seconds],
        "generator_version": GENERATOR_VERSION,
    }
    if event:
        meta["condition"] = {"name": event.condition, "start": event.start, "stop": event.stop}
    return Clip(
        clip_id=plan.clip_id, frames=frames, audio=speech.waveform, fps=config.fps,
        sample_rate=config.sample_rate, yaw=yaw.astype(np.float32), pitch=pitch.astype(np.float32),
        roll=roll.astype(np.float32), mouth_open=speech.mouth_open, viseme=speech.viseme,
        landmarks=landmarks, landmark_visible=visible, affected=affected, affected_mask=affected_mask, meta=meta,
    )


def _camera_path(config: SynthConfig, plan: ClipPlan, t: np.ndarray) -> list[tuple[float, float, float]]:
    """Per-frame camera (x, y shift in world units, zoom): still unless ``camera_motion`` > 0."""
    if config.camera_motion <= 0:
        return [(0.0, 0.0, 1.0)] * len(t)
    rng = np.random.default_rng((config.seed, plan.index, 5))
    span = 3.1 * config.camera_motion  # the view is 3.1 world units across
    dx, dy = _wander(rng, t, span), _wander(rng, t, span / 2)
    zoom = 1.0 + _wander(rng, t, config.camera_motion)
    return [(float(x), float(y), float(z)) for x, y, z in zip(dx, dy, zoom)]


def _write_clip(config: SynthConfig, plan: ClipPlan, root: str) -> dict[str, Any]:
    """Worker task: render and save one clip, return its manifest entry."""
    clip = render_clip(config, plan)
    file = f"{plan.clip_id}.npz"
    sha = save_clip(Path(root) / file, clip)
    return manifest_entry(clip, file, sha)


def _mp_context() -> multiprocessing.context.BaseContext:
    """Fork on Linux: cheap, and callers' scripts need no ``__main__`` guard. Spawn elsewhere."""
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def generate_dataset(config: SynthConfig, root: Path, workers: int = 2, progress: bool = True) -> Dataset:
    """Write every clip and then the manifest into ``root``; returns the opened dataset."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    plans = plan_clips(config)
    entries: list[dict[str, Any]] = []
    progress_bar = lambda: tqdm(total=len(plans) * config.n_frames, unit="frame",  # noqa: E731
                                desc="synth data", file=sys.stderr, disable=not progress, leave=False)
    if workers <= 1 or len(plans) <= 1:
        with progress_bar() as bar:
            for plan in plans:
                entries.append(_write_clip(config, plan, str(root)))
                bar.update(config.n_frames)
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(plans)), mp_context=_mp_context()) as pool:
            futures = [pool.submit(_write_clip, config, plan, str(root)) for plan in plans]
            try:
                with progress_bar() as bar:  # its monitor thread must start after the workers exist
                    for future in as_completed(futures):
                        entries.append(future.result())
                        bar.update(config.n_frames)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)  # fail (or stop) now, not after every clip
                raise
    write_manifest(root, entries, source="synth", generator={"version": GENERATOR_VERSION, **asdict(config)})
    log.info("wrote %d synthetic clips to %s", len(entries), root)
    return open_dataset(root)


# Settings added after datasets were cached, with the value every earlier dataset had: left out of the key at
# that value (not at today's default), so a still dataset keeps its key and a default that moves gets a new one.
_ADDED_LATER = {"head_motion_deg": 0.0, "camera_motion": 0.0, "conditions": ()}


def config_hash(config: SynthConfig) -> str:
    """Cache key: first 12 hex digits of sha256 over the config, the generator version and numpy's major
    version (renderings under numpy 1.26 and 2.x differ by a few grey levels in some pixels)."""
    return stable_hash({"config": without_legacy(asdict(config), _ADDED_LATER), "version": GENERATOR_VERSION,
                        "numpy": np.__version__.split(".")[0]})


def default_cache_dir() -> Path:
    """``$TALKBENCH_CACHE/data``, else ``~/.cache/talkbench/data``."""
    return cache_root() / "data"


def dataset_path(config: SynthConfig, cache_dir: Path | None = None) -> Path:
    """Where :func:`ensure_dataset` keeps the dataset for ``config``."""
    return Path(cache_dir or default_cache_dir()) / f"synth-{config_hash(config)}"


def ensure_dataset(config: SynthConfig, cache_dir: Path | None = None, workers: int = 2,
                   progress: bool = True) -> Dataset:
    """The cached dataset for ``config``, generated first if no complete copy exists.

    Generation happens in a temporary sibling directory that is renamed into place only after
    its manifest is written, so a directory at the final path with a manifest is complete.
    """
    target = dataset_path(config, cache_dir)
    if (target / "manifest.json").is_file():
        log.debug("reusing synthetic dataset %s", target)
        return open_dataset(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(target)
    partial = Path(tempfile.mkdtemp(prefix=f"{target.name}.partial-{os.getpid()}-", dir=target.parent))
    try:
        generate_dataset(config, partial, workers=workers, progress=progress)
        if target.exists() and not (target / "manifest.json").is_file():
            shutil.rmtree(target)  # an incomplete copy left by something else: never trust it
        try:
            partial.rename(target)
        except OSError:
            if not (target / "manifest.json").is_file():
                raise
            log.debug("another process finished %s first", target)  # keep theirs
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return open_dataset(target)


def _remove_stale_partials(target: Path) -> None:
    """Delete partial directories of this dataset whose generating process is gone."""
    for path in target.parent.glob(f"{target.name}.partial-*"):
        try:
            pid = int(path.name.split(".partial-")[1].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
            log.info("removed interrupted generation %s", path)
        except (ValueError, IndexError, PermissionError, OSError):
            continue

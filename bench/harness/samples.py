"""The sample frames of a run (samples.npz): a few per pose bin, of any mix of resolutions.

Each sample is a dict of ``gt``, ``pred`` (H x W x 3 uint8), ``error``, ``uncertainty`` (H x W float)
and labels (``clip_id``, ``frame``, ``yaw``). Stacked, samples of different sizes are padded at the
bottom and right to the largest height and width, and ``height`` / ``width`` give each one's own size.
"""
from __future__ import annotations

import numpy as np

from bench.config import POSE_BINS

SAMPLE_ARRAYS = ("gt", "pred", "error", "uncertainty")  # per-sample images and maps (the rest are labels)


def wanted(group: str, per_bin: int) -> int:
    """Samples a run shows from a group: ``per_bin`` per pose bin; as many as all bins together from frames
    outside them (no pose), which ``select_samples`` falls back to when no frame has a pose bin."""
    bins = [name for name, _, _ in POSE_BINS]
    return per_bin if group in bins else per_bin * len(bins)


def spread(items: list, count: int) -> list:
    """``count`` items evenly spread over ``items`` (all of them when there are fewer)."""
    if not items:
        return []
    picks = np.linspace(0, len(items) - 1, min(count, len(items))).round().astype(int)
    return [items[i] for i in picks]


def pad_to(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """H x W (x C) -> height x width (x C), the original at the top left; 0 for integers, NaN for floats."""
    if array.shape[:2] == (height, width):
        return array
    fill = np.nan if array.dtype.kind == "f" else 0
    out = np.full((height, width, *array.shape[2:]), fill, dtype=array.dtype)
    out[:array.shape[0], :array.shape[1]] = array
    return out


def stack_samples(pool: dict[str, list[dict]], per_bin: int, groups: list[str] | None = None) -> dict[str, np.ndarray]:
    """``per_bin`` evenly spread samples from each pool group (default: the pose bins), stacked per key.

    Clips of different resolutions give samples of different sizes: each is padded to the largest
    height and width (images with 0, error and uncertainty maps with NaN), and the int64 arrays
    ``height`` / ``width`` hold every sample's own size, so ``gt[i, :height[i], :width[i]]`` is its frame.
    """
    chosen = []
    for name in groups if groups is not None else [name for name, _, _ in POSE_BINS]:
        chosen.extend(spread(pool.get(name, []), per_bin))
    if not chosen:
        return {}
    sizes = np.array([np.asarray(item["gt"]).shape[:2] for item in chosen], dtype=np.int64)
    height, width = (int(v) for v in sizes.max(0))
    out = {}
    for key in chosen[0]:
        values = [np.asarray(item[key]) for item in chosen]
        if key in SAMPLE_ARRAYS:
            values = [pad_to(v, height, width) for v in values]
        out[key] = np.stack(values)
    out["height"], out["width"] = sizes[:, 0], sizes[:, 1]
    return out


def select_samples(pool: dict[str, list[dict]], per_bin: int) -> dict[str, np.ndarray]:
    """``per_bin`` samples per pose bin; when no frame has a pose bin (external videos scored without a pose
    estimate), as many as all bins together from the frames outside them."""
    samples = stack_samples(pool, per_bin)
    if not samples:
        bins = [name for name, _, _ in POSE_BINS]
        rest = [item for group, items in pool.items() if group not in bins for item in items]
        samples = stack_samples({"any": rest}, per_bin * len(bins), ["any"])
    return samples

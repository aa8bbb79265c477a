"""The sample frames of a run (samples.npz: a few per pose bin; worst.npz: the worst frames), of any mix of
resolutions.

Each sample is a dict of ``gt``, ``pred`` (H x W x 3 uint8), ``error``, ``uncertainty`` (H x W float)
and labels (``clip_id``, ``frame``, ``yaw``). Stacked, samples of different sizes are padded at the
bottom and right to the largest height and width, and ``height`` / ``width`` give each one's own size.
"""
from __future__ import annotations

import heapq
from typing import Any

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


def stack_items(chosen: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Samples stacked per key, images and maps padded to the largest height and width (see ``stack_samples``)."""
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


def stack_samples(pool: dict[str, list[dict]], per_bin: int, groups: list[str] | None = None) -> dict[str, np.ndarray]:
    """``per_bin`` evenly spread samples from each pool group (default: the pose bins), stacked per key.

    Clips of different resolutions give samples of different sizes: each is padded to the largest
    height and width (images with 0, error and uncertainty maps with NaN), and the int64 arrays
    ``height`` / ``width`` hold every sample's own size, so ``gt[i, :height[i], :width[i]]`` is its frame.
    """
    chosen = []
    for name in groups if groups is not None else [name for name, _, _ in POSE_BINS]:
        chosen.extend(spread(pool.get(name, []), per_bin))
    return stack_items(chosen)


def select_samples(pool: dict[str, list[dict]], per_bin: int) -> dict[str, np.ndarray]:
    """``per_bin`` samples per pose bin; when no frame has a pose bin (external videos scored without a pose
    estimate), as many as all bins together from the frames outside them."""
    samples = stack_samples(pool, per_bin)
    if not samples:
        bins = [name for name, _, _ in POSE_BINS]
        rest = [item for group, items in pool.items() if group not in bins for item in items]
        samples = stack_samples({"any": rest}, per_bin * len(bins), ["any"])
    return samples


# worst.npz: the frames with the largest err_mean, then those with the largest unc_mean (frames.parquet's columns).
WORST_BY = {"error": "err_mean", "uncertainty": "unc_mean"}
WORST_COUNT = 4


class WorstFrames:
    """The ``count`` frames with the largest value per criterion (``WORST_BY``), kept in min-heaps while
    scoring, so memory holds at most ``count`` frames per criterion whatever the number of frames.

    A frame is identified by its row (its index in frames.parquet); on equal values the earlier row stays,
    so the choice depends only on the rows' values and order, not on how scoring was split up.
    """

    def __init__(self, count: int = WORST_COUNT) -> None:
        self.count = count
        self.heaps: dict[str, list[tuple[float, int, dict[str, Any]]]] = {by: [] for by in WORST_BY}

    def wants(self, by: str, value: float, row: int) -> bool:
        """Whether a frame with this value would enter (ask before building its images)."""
        if value is None or not np.isfinite(value):
            return False
        heap = self.heaps[by]
        return len(heap) < self.count or (float(value), -row) > heap[0][:2]

    def add(self, by: str, value: float, row: int, item: dict[str, Any]) -> None:
        """Offer a frame (a sample dict, see the module docstring); kept if it is among the largest."""
        if not self.wants(by, value, row):
            return
        entry = (float(value), -row, item)  # rows are unique per heap: the dicts are never compared
        if len(self.heaps[by]) < self.count:
            heapq.heappush(self.heaps[by], entry)
        else:
            heapq.heapreplace(self.heaps[by], entry)

    def entries(self) -> list[tuple[str, float, int, dict[str, Any]]]:
        """(by, value, row, item) per kept frame: criteria in ``WORST_BY`` order, each largest value first."""
        return [(by, value, -negated, item) for by in WORST_BY
                for value, negated, item in sorted(self.heaps[by], key=lambda e: e[:2], reverse=True)]

    def stack(self) -> dict[str, np.ndarray]:
        """worst.npz: the sample arrays and labels, plus ``by`` ("error" | "uncertainty"), ``value`` (the frame's
        err_mean or unc_mean) and ``row`` (its index in frames.parquet), padded like samples.npz."""
        return stack_items([{**item, "by": by, "value": value, "row": row} for by, value, row, item in self.entries()])

"""The sample frames of a run (samples.npz: a few per pose bin; worst.npz: the worst frames; clip_samples.npz: a
frame of the best, median and worst clip by mean PSNR), of any mix of resolutions.

Each sample is a dict of ``gt``, ``pred`` (H x W x 3 uint8), ``error``, ``uncertainty`` (H x W float)
and labels (``clip_id``, ``frame``, ``yaw``). Stacked, samples of different sizes are padded at the
bottom and right to the largest height and width, and ``height`` / ``width`` give each one's own size.
"""
from __future__ import annotations

import heapq
from typing import Any

import numpy as np

from bench.config import POSE_BINS
from bench.metrics.specs import PSNR_CAP

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


# clip_samples.npz: one frame of the best, the median and the worst clip by mean PSNR.
CLIP_RANKS = ("best", "median", "worst")
CLIP_POOL = 16  # clips nearest the running median whose frame is kept, besides the best and the worst clip
MIDDLE_KEEP = 8  # at most 2x this many frames of the clip being scored are held to pick its middle one


class ClipRanks:
    """Each clip's mean PSNR (capped as summary.json caps it) and one representative frame, the scored frame
    nearest the clip's middle, for the best, median and worst clip; memory stays bounded.

    Frames of a clip arrive together (both callers score clip by clip): while a clip is scored, every
    ``stride``-th frame is held (at most ``2 * MIDDLE_KEEP``, the stride doubling when full), so the frame
    picked is within ``stride / 2`` of the middle (exactly the middle for clips of up to 16 frames). Once
    the clip ends, only its mean (two floats) is kept for every clip, and its frame only while it is the
    best, the worst or among the ``pool`` clips ranked nearest the median so far. Best and worst are
    therefore exact; the median is exact when the run has at most ``pool + 2`` clips, or when the median
    clip stays near the running median, and otherwise the kept clip ranked nearest it (its own rank is
    recorded). Ties rank the earlier clip first; the choice depends only on the clips' order and values.
    """

    def __init__(self, pool: int = CLIP_POOL) -> None:
        self.pool = pool
        self.clips: dict[str, list] = {}  # clip_id -> [PSNR sum, frames with a finite PSNR, frames, order]
        self.kept: dict[str, dict[str, Any]] = {}  # clip_id -> its representative frame (a sample dict)
        self.open: str | None = None  # the clip being scored
        self.buffer: list[tuple[int, dict[str, Any]]] = []  # (position in the clip, item), every stride-th
        self.stride, self.seen, self.psnr_sum, self.psnr_count = 1, 0, 0.0, 0

    def add(self, clip_id: str, psnr: float, item: dict[str, Any]) -> None:
        """One scored frame of ``clip_id`` (a sample dict, see the module docstring) and its PSNR."""
        if clip_id != self.open:
            self.close()
            self.open, self.buffer, self.stride, self.seen, self.psnr_sum, self.psnr_count = clip_id, [], 1, 0, 0.0, 0
        if self.seen % self.stride == 0:
            self.buffer.append((self.seen, item))
            if len(self.buffer) > 2 * MIDDLE_KEEP:
                self.buffer, self.stride = self.buffer[::2], 2 * self.stride  # still every stride-th frame
        self.seen += 1
        value = min(float(psnr), PSNR_CAP) if psnr is not None else float("nan")
        if np.isfinite(value):
            self.psnr_sum, self.psnr_count = self.psnr_sum + value, self.psnr_count + 1

    def open_record(self) -> tuple[str, float, int, int, dict[str, Any]] | None:
        """(clip_id, PSNR sum, finite count, frames, middle frame) of the clip being scored, if any."""
        if self.open is None or not self.buffer:
            return None
        middle = (self.seen - 1) // 2
        _, item = min(self.buffer, key=lambda entry: (abs(entry[0] - middle), entry[0]))
        return self.open, self.psnr_sum, self.psnr_count, self.seen, item

    def close(self) -> None:
        """End the clip being scored (the next frame of another clip, or the result, does this)."""
        record = self.open_record()
        self.open, self.buffer = None, []
        if record is not None:
            self.add_record(*record)

    def add_record(self, clip_id: str, psnr_sum: float, count: int, frames: int, item: dict[str, Any] | None) -> None:
        """A whole clip: its PSNR sum over ``count`` frames with a finite PSNR, and its middle frame (None: not
        kept, e.g. a saved state's clip whose frame was dropped)."""
        if clip_id in self.clips:  # frames of a clip that came back later: one clip, its first frame stays
            entry = self.clips[clip_id]
            entry[0], entry[1], entry[2] = entry[0] + psnr_sum, entry[1] + count, entry[2] + frames
        else:
            self.clips[clip_id] = [float(psnr_sum), int(count), int(frames), len(self.clips)]
            if item is not None:
                self.kept[clip_id] = item
        self._prune()

    def ranked(self) -> list[tuple[str, float]]:
        """(clip_id, mean PSNR) of the clips with a finite mean, best first (ties: the earlier clip first)."""
        means = [(cid, s / n, order) for cid, (s, n, _, order) in self.clips.items() if n]
        return [(cid, mean) for cid, mean, _ in sorted(means, key=lambda m: (-m[1], m[2]))]

    def _prune(self) -> None:
        if len(self.kept) <= self.pool + 2:
            return
        ranks = {cid: i for i, (cid, _) in enumerate(self.ranked())}
        n = len(ranks)
        middle = (n - 1) // 2
        while len(self.kept) > self.pool + 2:
            # the farthest from the median rank goes (on a tie the later clip); the best and the worst stay
            droppable = [cid for cid in self.kept if ranks.get(cid, -1) not in (0, n - 1)]
            drop = max(droppable, key=lambda cid: (abs(ranks[cid] - middle) if cid in ranks else n,
                                                   self.clips[cid][3]))
            del self.kept[drop]

    def picks(self) -> list[dict[str, Any]]:
        """The best, median and worst clip's frame with ``rank``, ``clip_psnr`` (its mean PSNR), ``position``
        (1 = best) and ``n_clips``; a clip picked twice (fewer than three clips) is listed once."""
        snapshot = ClipRanks(self.pool)
        snapshot.clips = {cid: list(entry) for cid, entry in self.clips.items()}
        snapshot.kept = dict(self.kept)
        record = self.open_record()
        if record is not None:
            snapshot.add_record(*record)
        ranked = snapshot.ranked()
        n = len(ranked)
        kept = [i for i, (cid, _) in enumerate(ranked) if cid in snapshot.kept]
        out, used = [], set()
        for label, target in zip(CLIP_RANKS, (0, (n - 1) // 2, n - 1)):
            if not kept:
                break
            i = min(kept, key=lambda k: (abs(k - target), k))
            cid, mean = ranked[i]
            if cid in used:
                continue
            used.add(cid)
            out.append({**snapshot.kept[cid], "rank": label, "clip_psnr": float(mean), "position": i + 1,
                        "n_clips": n, "clip_frames": snapshot.clips[cid][2]})
        return out

    def stack(self) -> dict[str, np.ndarray]:
        """clip_samples.npz: the sample arrays and labels of ``picks``, padded like samples.npz."""
        return stack_items(self.picks())

"""Clip-level bootstrap (frames of one clip are not independent: the clip is the unit resampled).

Every resample draws C clip indices with replacement from the C clips (``rng.integers``, seeded).
Percentile intervals; resamples whose statistic is not finite are left out of the percentiles.

* ``bootstrap_sums``: statistics of per-clip sufficient statistics (sums, counts, histograms...).
  A resample is a row of clip multiplicities W (R x C), so all resampled totals are one matrix
  product W @ S; ``stat_fn`` maps totals to the statistic, vectorised over the resample axis.
  Example, the frame mean: S = [[sum_c, n_c]], stat_fn = lambda t: t[:, 0] / t[:, 1].
* ``bootstrap_ci``: any statistic of per-clip or per-frame arrays, one ``stat_fn`` call a resample
  (per-frame arrays with ``clip_ids``: a resample holds all frames of each drawn clip, repeats too).
* ``paired_bootstrap``: two runs on the same clips, see its docstring.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class BootstrapResult:
    estimate: float  # the statistic on the data as given
    low: float
    high: float
    level: float
    n_clips: int
    samples: np.ndarray = field(repr=False, compare=False)  # the resampled statistics

    @property
    def ci(self) -> list[float] | None:
        return None if not np.isfinite([self.low, self.high]).all() else [self.low, self.high]


@dataclass(frozen=True)
class PairedResult:
    mean_a: float  # mean over shared clips of the per-clip mean of A
    mean_b: float
    diff: float  # mean_b - mean_a
    low: float
    high: float
    p_value: float
    n_clips: int
    n_frames: int

    @property
    def ci(self) -> list[float] | None:
        return None if not np.isfinite([self.low, self.high]).all() else [self.low, self.high]


def clip_bootstrap_ci(values: np.ndarray, clip_ids: np.ndarray, resamples: int = 1000,
                      seed: int = 0, level: float = 0.95) -> list[float] | None:
    """Percentile CI of the frame mean, resampling whole clips with replacement."""
    values = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(values)
    values, clip_ids = values[keep], np.asarray(clip_ids)[keep]
    unique, inverse = np.unique(clip_ids, return_inverse=True)
    if unique.size < 2 or resamples <= 0:
        return None
    sums = np.bincount(inverse, weights=values)
    counts = np.bincount(inverse).astype(np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, unique.size, size=(resamples, unique.size))
    means = sums[picks].sum(1) / counts[picks].sum(1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return [float(low), float(high)]


def clip_weights(n_clips: int, resamples: int, seed: int = 0) -> np.ndarray:
    """R x C multiplicities: how often each clip is drawn in each resample (rows sum to C)."""
    picks = np.random.default_rng(seed).integers(0, n_clips, size=(resamples, n_clips))
    flat = picks + n_clips * np.arange(resamples)[:, None]
    return np.bincount(flat.ravel(), minlength=resamples * n_clips).reshape(resamples, n_clips)


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if finite.size < 2:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_sums(stat_fn: Callable[..., np.ndarray], *per_clip: np.ndarray, resamples: int = 1000,
                   seed: int = 0, level: float = 0.95) -> BootstrapResult:
    """CI of ``stat_fn(*totals)`` where totals are the per-clip arrays (C x ...) summed over clips.

    ``stat_fn`` receives each total with a leading resample axis (R x ...) and returns R values;
    the estimate is the same call on the plain totals (leading axis of 1). Cost: one R x C matrix
    product per array, so 2000 resamples of 10^3 clips with 100 sums each take milliseconds.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in per_clip]
    n_clips = arrays[0].shape[0]
    if any(a.shape[0] != n_clips for a in arrays):
        raise ValueError("every per-clip array needs the same number of clips (first axis)")
    estimate = float(np.asarray(stat_fn(*[a.sum(0)[None] for a in arrays])).ravel()[0])
    if n_clips < 2 or resamples <= 0:
        return BootstrapResult(estimate, float("nan"), float("nan"), level, n_clips, np.empty(0))
    weights = clip_weights(n_clips, resamples, seed).astype(np.float64)
    totals = [(weights @ a.reshape(n_clips, -1)).reshape(resamples, *a.shape[1:]) for a in arrays]
    samples = np.asarray(stat_fn(*totals), dtype=np.float64).ravel()
    return BootstrapResult(estimate, *_percentiles(samples, level), level, n_clips, samples)


def _clip_frame_index(clip_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame order grouped by clip, start of each clip in it, frames per clip)."""
    _, inverse, counts = np.unique(np.asarray(clip_ids).ravel(), return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    return order, np.r_[0, np.cumsum(counts)[:-1]], counts


def bootstrap_ci(stat_fn: Callable[..., float], *arrays: np.ndarray, clip_ids: np.ndarray | None = None,
                 resamples: int = 1000, seed: int = 0, level: float = 0.95) -> BootstrapResult:
    """CI of any statistic ``stat_fn(*arrays) -> float`` by resampling clips.

    Without ``clip_ids`` each array's first axis is the clips (per-clip values or sums); with
    ``clip_ids`` (one per row) the arrays are per frame and a resample takes every frame of each
    drawn clip. ``stat_fn`` is called once per resample, so keep it cheap (or use bootstrap_sums).
    """
    arrays = tuple(np.asarray(a) for a in arrays)
    estimate = float(stat_fn(*arrays))
    if clip_ids is None:
        n_clips = arrays[0].shape[0]
        order, starts, counts = np.arange(n_clips), np.arange(n_clips), np.ones(n_clips, dtype=np.int64)
    else:
        order, starts, counts = _clip_frame_index(clip_ids)
        n_clips = counts.size
    if any(a.shape[0] != order.size for a in arrays):
        raise ValueError("arrays must have one row per clip (or per frame, with clip_ids)")
    if n_clips < 2 or resamples <= 0:
        return BootstrapResult(estimate, float("nan"), float("nan"), level, n_clips, np.empty(0))
    picks = np.random.default_rng(seed).integers(0, n_clips, size=(resamples, n_clips))
    samples = np.empty(resamples)
    for r, drawn in enumerate(picks):
        lengths = counts[drawn]
        offsets = np.repeat(starts[drawn] - (np.cumsum(lengths) - lengths), lengths)
        rows = order[offsets + np.arange(lengths.sum())]
        samples[r] = stat_fn(*(a[rows] for a in arrays))
    return BootstrapResult(estimate, *_percentiles(samples, level), level, n_clips, samples)


def bootstrap_rows(statistic: Callable[[np.ndarray], np.ndarray], estimate: float, clip_ids: np.ndarray,
                   resamples: int = 1000, seed: int = 0, level: float = 0.95,
                   cells: int = 1 << 22) -> BootstrapResult:
    """``bootstrap_ci`` for a statistic of weighted rows, with the same draws and without copying any row.

    ``statistic(W)`` takes a block of resamples as row multiplicities (``W[r, i]``: how often row i, of clip
    ``clip_ids[i]``, is in resample r) and returns one value per resample (``bench.metrics.weighted``). Blocks
    hold about ``cells`` multiplicities. ``estimate`` is the statistic on the rows as given.
    """
    _, clip_of_row = np.unique(np.asarray(clip_ids).ravel(), return_inverse=True)
    n_clips = int(clip_of_row.max()) + 1 if clip_of_row.size else 0
    if n_clips < 2 or resamples <= 0:
        return BootstrapResult(estimate, float("nan"), float("nan"), level, n_clips, np.empty(0))
    per_clip = clip_weights(n_clips, resamples, seed).astype(np.float64)
    samples = np.empty(resamples)
    block = max(1, cells // clip_of_row.size)
    for start in range(0, resamples, block):
        samples[start:start + block] = statistic(per_clip[start:start + block][:, clip_of_row])
    return BootstrapResult(estimate, *_percentiles(samples, level), level, n_clips, samples)


def paired_bootstrap(values_a: np.ndarray, values_b: np.ndarray, clip_ids: np.ndarray, resamples: int = 2000,
                     seed: int = 0, level: float = 0.95) -> PairedResult:
    """Paired clip bootstrap of B - A for two runs scored on the same frames.

    Rows are frames present in both runs (NaN in either: dropped). Per clip, d_c = mean_B - mean_A
    over its frames; the statistic is the mean of d_c over clips (each clip counts once; with
    equal-length clips this is the frame-mean difference). Resampling clips gives the percentile
    CI, and the two-sided p-value 2 * min(share of resampled diffs <= 0, share >= 0), within
    [1/(R+1), 1]: how often the resampled difference lands on the other side of zero.
    """
    a = np.asarray(values_a, dtype=np.float64).ravel()
    b = np.asarray(values_b, dtype=np.float64).ravel()
    ids = np.asarray(clip_ids).ravel()
    if not a.size == b.size == ids.size:
        raise ValueError(f"values_a ({a.size}), values_b ({b.size}) and clip_ids ({ids.size}) differ in length")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b, ids = a[keep], b[keep], ids[keep]
    nan = float("nan")
    if a.size == 0:
        return PairedResult(nan, nan, nan, nan, nan, nan, 0, 0)
    _, inverse = np.unique(ids, return_inverse=True)
    counts = np.bincount(inverse).astype(np.float64)
    mean_a = np.bincount(inverse, weights=a) / counts
    mean_b = np.bincount(inverse, weights=b) / counts
    d = mean_b - mean_a
    n_clips = d.size
    diff = float(d.mean())
    if n_clips < 2 or resamples <= 0:
        return PairedResult(float(mean_a.mean()), float(mean_b.mean()), diff, nan, nan, nan, n_clips, a.size)
    boot = clip_weights(n_clips, resamples, seed) @ d / n_clips
    low, high = _percentiles(boot, level)
    tail = min(np.count_nonzero(boot <= 0), np.count_nonzero(boot >= 0)) / resamples
    p_value = float(min(1.0, max(2.0 * tail, 1.0 / (resamples + 1))))
    return PairedResult(float(mean_a.mean()), float(mean_b.mean()), diff, low, high, p_value, n_clips, int(a.size))


# ------------------------------------------------------------------ experiments: pooled over seeds, many claims
@dataclass(frozen=True)
class PooledResult:
    """A difference pooled over seeds: the mean over seeds of each seed's estimate."""

    diff: float
    low: float
    high: float
    p_value: float
    per_seed: tuple[float, ...]
    method: str  # how the interval was made (clip bootstrap within seed, or over seeds)

    @property
    def ci(self) -> list[float] | None:
        return None if not np.isfinite([self.low, self.high]).all() else [self.low, self.high]


def _two_sided(boot: np.ndarray) -> float:
    """2 min(P(d* <= 0), P(d* >= 0)) within [1/(R+1), 1] (as ``paired_bootstrap``)."""
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return float("nan")
    tail = min(np.count_nonzero(boot <= 0), np.count_nonzero(boot >= 0)) / boot.size
    return float(min(1.0, max(2.0 * tail, 1.0 / (boot.size + 1))))


def seed_pooled_bootstrap(per_seed: list[tuple[np.ndarray, ...]], statistic: Callable[..., np.ndarray],
                          resamples: int = 2000, seed: int = 0, level: float = 0.95) -> PooledResult:
    """Clip bootstrap within each seed, pooled over seeds by the mean.

    ``per_seed[s]`` holds seed s's per-clip arrays (the per-clip differences B - A of a paired comparison,
    or the per-clip means of two pose bins). ``statistic(*weights, *arrays)`` takes one R x C matrix of
    clip multiplicities per array and returns R statistics (``paired_clip_mean``, ``unpaired_bin_means``).
    Replicate r of the pooled statistic is the mean over seeds of replicate r of each seed (clips are
    resampled in every seed independently; the seeds themselves are fixed: with 3 seeds a resample of
    seeds would be mostly repeats). The percentile CI and two-sided p-value come from the replicates.
    """
    rng_seed = np.random.SeedSequence(seed)
    estimates, replicates = [], []
    for arrays, child in zip(per_seed, rng_seed.spawn(len(per_seed))):
        arrays = tuple(np.asarray(a, dtype=np.float64) for a in arrays)
        estimates.append(float(statistic(*[np.ones((1, a.size)) for a in arrays], *arrays)[0]))
        weights = [clip_weights(a.size, resamples, int(child.generate_state(1)[0]) + i) for i, a in enumerate(arrays)]
        replicates.append(statistic(*weights, *arrays))
    diff = float(np.mean(estimates)) if estimates else float("nan")
    if not replicates:
        return PooledResult(diff, float("nan"), float("nan"), float("nan"), tuple(estimates), "no data")
    boot = np.mean(np.stack(replicates), axis=0)
    low, high = _percentiles(boot, level)
    return PooledResult(diff, low, high, _two_sided(boot), tuple(estimates),
                        f"clip bootstrap within each of {len(per_seed)} seed(s), replicates averaged over seeds")


def paired_clip_mean(weights: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Mean of per-clip differences under clip multiplicities (R x C): the paired statistic."""
    return weights @ d / np.maximum(weights.sum(axis=1), 1.0)


def unpaired_bin_means(weights_a: np.ndarray, weights_b: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """mean(b) - mean(a) of two independent sets of per-clip values (e.g. extreme vs frontal clips)."""
    return (weights_b @ b / np.maximum(weights_b.sum(axis=1), 1.0)
            - weights_a @ a / np.maximum(weights_a.sum(axis=1), 1.0))


def over_seeds(values: np.ndarray, level: float = 0.95) -> PooledResult:
    """For a statistic with no per-clip values (FID, pooled correlations, failure AUROC): the per-seed values
    of a difference, a Student-t interval over seeds and its two-sided p-value (NaN with fewer than 2 seeds)."""
    from scipy import stats as st

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    mean = float(v.mean()) if v.size else float("nan")
    if v.size < 2:
        return PooledResult(mean, float("nan"), float("nan"), float("nan"), tuple(v), "one seed: no interval")
    sem = float(v.std(ddof=1) / np.sqrt(v.size))
    if sem == 0:
        p = 0.0 if mean != 0 else 1.0
        return PooledResult(mean, mean, mean, p, tuple(v), f"t over {v.size} seeds (no spread)")
    t = st.t.ppf(0.5 + level / 2, v.size - 1)
    p = float(2 * st.t.sf(abs(mean) / sem, v.size - 1))
    return PooledResult(mean, mean - t * sem, mean + t * sem, p, tuple(v), f"t over {v.size} seeds")


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error over the claims of one experiment); NaN stays NaN."""
    p = np.asarray(p_values, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(p))
    adjusted = np.full(p.shape, np.nan)
    m = finite.size
    running = 0.0
    for rank, index in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()

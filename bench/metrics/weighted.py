"""Correlations of weighted rows, many weightings at once: the bootstrap's resamples without copying rows.

A clip bootstrap resample holds every row of each drawn clip, a clip drawn k times k times. Rank and moment
statistics only need each row's multiplicity: ``W[r, i]`` is how often row i appears in resample r. So x and y
are sorted once, and each resample's average ranks are a cumulative sum of multiplicities over that order
(O(N) instead of a sort), vectorised over a block of resamples.

Each function returns, per row of W, the value the unweighted statistic gives on the expanded data
(``np.repeat(x, W[r])``); they agree with ``calibration.spearman`` and ``np.corrcoef`` to float rounding
(ranks are exact half-integers; only the order of the final sums differs). Tested against the expansion.
"""
from __future__ import annotations

import numpy as np

from bench.metrics.calibration import tie_runs

__all__ = ["moment_sums", "pearson", "pearson_of_sums", "spearman"]


class _Ranking:
    """One stable sort of x, reused for its average ranks under any multiplicities."""

    def __init__(self, x: np.ndarray) -> None:
        self.order, first = tie_runs(x)
        self.starts = np.flatnonzero(first)
        self.group_of = np.empty(x.size, dtype=np.int64)
        self.group_of[self.order] = np.cumsum(first) - 1

    def ranks(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(R x N mean ranks of the expanded data, R numbers of distinct values present)."""
        group_weight = np.add.reduceat(weights[:, self.order], self.starts, axis=1)
        # a group of w equal values after c - w others takes ranks c - w + 1 .. c: mean c - (w - 1) / 2
        mean_rank = np.cumsum(group_weight, axis=1) - (group_weight - 1.0) / 2.0
        return mean_rank[:, self.group_of], np.count_nonzero(group_weight, axis=1)


def _rows(weights: np.ndarray, n: int) -> np.ndarray:
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if weights.shape[1] != n:
        raise ValueError(f"weights have {weights.shape[1]} columns for {n} values")
    return weights


def _correlation(cx: np.ndarray, cy: np.ndarray, weights: np.ndarray) -> np.ndarray:
    sxy = np.einsum("ri,ri,ri->r", weights, cx, cy)
    sxx = np.einsum("ri,ri,ri->r", weights, cx, cx)
    syy = np.einsum("ri,ri,ri->r", weights, cy, cy)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sxy / np.sqrt(sxx * syy)
    return np.clip(r, -1.0, 1.0)


def spearman(x: np.ndarray, y: np.ndarray, weights: np.ndarray, drop_nonfinite: bool = False) -> np.ndarray:
    """Spearman correlation of (x, y) with row i repeated ``weights[r, i]`` times, for each r.

    NaN where the expanded data has fewer than 3 pairs or a constant side, and (as ``calibration.spearman``)
    where it holds a NaN; ``drop_nonfinite`` instead leaves out pairs with a NaN or infinity on either side
    first (as ``quality.unc_frame_spearman``)."""
    x, y = np.ravel(x).astype(np.float64), np.ravel(y).astype(np.float64)
    weights = _rows(weights, x.size)
    bad = ~(np.isfinite(x) & np.isfinite(y)) if drop_nonfinite else np.isnan(x) | np.isnan(y)
    poisoned = np.zeros(weights.shape[0], dtype=bool)
    if bad.any():
        if not drop_nonfinite:
            poisoned = (weights[:, bad] > 0).any(axis=1)
        keep = ~bad
        x, y, weights = x[keep], y[keep], weights[:, keep]
    rank_x, rank_y = _Ranking(x), _Ranking(y)
    ranks_x, distinct_x = rank_x.ranks(weights)
    ranks_y, distinct_y = rank_y.ranks(weights)
    total = weights.sum(axis=1)
    middle = ((total + 1.0) / 2.0)[:, None]  # the mean rank of any expansion
    r = _correlation(ranks_x - middle, ranks_y - middle, weights)
    r[(total < 3) | (distinct_x < 2) | (distinct_y < 2) | poisoned] = np.nan
    return r


def pearson(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pearson correlation of (x, y) with row i repeated ``weights[r, i]`` times, for each r (finite x, y);
    NaN with fewer than 3 pairs or a constant side."""
    x, y = np.ravel(x).astype(np.float64), np.ravel(y).astype(np.float64)
    weights = _rows(weights, x.size)
    total = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_x = (weights @ x / total)[:, None]
        mean_y = (weights @ y / total)[:, None]
    r = _correlation(x[None] - mean_x, y[None] - mean_y, weights)
    r[(total < 3) | _constant(x, weights) | _constant(y, weights)] = np.nan
    return r


def _constant(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row of weights: do the rows it draws hold one value only (the variance may round to non-zero)?"""
    present = weights > 0
    return np.where(present, values, -np.inf).max(axis=1) == np.where(present, values, np.inf).min(axis=1)


def moment_sums(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per group (0 .. G-1), the sufficient statistics of Pearson's r: [n, sum x, sum y, sum xx, sum yy, sum xy]
    of x and y centred on their overall means (less cancellation). Resampling groups sums rows of this
    (``stats.bootstrap_sums``), far cheaper than weighting every row when groups hold many rows."""
    x, y = np.ravel(x).astype(np.float64), np.ravel(y).astype(np.float64)
    x, y = x - x.mean(), y - y.mean()
    columns = [np.ones_like(x), x, y, x * x, y * y, x * y]
    return np.stack([np.bincount(groups, weights=c) for c in columns], axis=1)


def pearson_of_sums(totals: np.ndarray) -> np.ndarray:
    """Pearson's r from R x 6 totals of ``moment_sums``; NaN with fewer than 3 pairs or no spread."""
    n, sx, sy, sxx, syy, sxy = np.atleast_2d(totals).T
    with np.errstate(invalid="ignore", divide="ignore"):
        vx, vy = sxx - sx * sx / n, syy - sy * sy / n
        r = np.clip((sxy - sx * sy / n) / np.sqrt(vx * vy), -1.0, 1.0)
    r[(n < 3) | ~(vx > 0) | ~(vy > 0)] = np.nan
    return r

"""Calibration of a predicted uncertainty map against the true error.

Definitions (per pixel): error e = |pred - gt| averaged over colour channels, on a [0, 1] scale;
u = exp(log_scale), the predicted scale (larger = less certain).

Sparsification (Ilg et al. 2018): remove pixels in descending order of u and measure the mean
error of what remains, at fractions 0, 0.01, ..., 0.99; the oracle removes by e itself. Pixels
with tied u are removed in random order, and we use that order's expected value (each tied pixel
counts with its tie group's mean error), so a constant map gives the flat random curve exactly.
AUSE is the area between the model and oracle curves over the fraction axis (trapezoids); the
headline ``ause`` is computed per frame on raw (not normalised) MAE curves and averaged over
frames (Poggi et al. 2020).
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def sparsification_fractions(step: float = 0.01) -> np.ndarray:
    return np.round(np.arange(0.0, 1.0 - step / 2, step), 10)


def _remaining_mean_error(order_key: np.ndarray, error: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Mean error after removing round(f * N) pixels with the largest key, ties in expectation."""
    order = np.argsort(-order_key, kind="stable")
    key_sorted = order_key[order]
    err_sorted = error[order].astype(np.float64)
    # Replace each error by its tie group's mean: the expectation under random tie-breaking.
    starts = np.flatnonzero(np.r_[True, key_sorted[1:] != key_sorted[:-1]])
    sums = np.add.reduceat(err_sorted, starts)
    counts = np.diff(np.r_[starts, err_sorted.size])
    err_sorted = np.repeat(sums / counts, counts)
    removed = np.r_[0.0, np.cumsum(err_sorted)]
    total, n = removed[-1], err_sorted.size
    k = np.round(fractions * n).astype(int)
    return (total - removed[k]) / (n - k)


def sparsification_curves(error: np.ndarray, uncertainty: np.ndarray,
                          fractions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(model curve, oracle curve) of remaining MAE for one set of pixels."""
    e = np.asarray(error, dtype=np.float64).ravel()
    u = np.asarray(uncertainty, dtype=np.float64).ravel()
    return _remaining_mean_error(u, e, fractions), _remaining_mean_error(e, e, fractions)


def area(curve: np.ndarray, fractions: np.ndarray) -> float:
    # Written out: np.trapezoid is numpy>=2 only, np.trapz is gone from numpy 2.4.
    return float(np.sum((curve[1:] + curve[:-1]) * np.diff(fractions)) / 2.0)


def ause(model_curve: np.ndarray, oracle_curve: np.ndarray, fractions: np.ndarray) -> float:
    return area(model_curve - oracle_curve, fractions)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation; NaN when either side is constant (no ranking to compare)."""
    x, y = np.ravel(x), np.ravel(y)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)

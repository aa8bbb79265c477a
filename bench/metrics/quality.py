"""Uncertainty as a per-frame quality indicator: does a high mean u flag the bad frames?

A frame's score is its mean uncertainty (higher = predicted worse). ``bad_frames`` marks the worst
10% of frames by a quality metric within each group (split / pose bin), so "bad" is relative to
what the same data allow; ``fail_auroc`` / ``fail_auprc`` then ask how well the score ranks them.
"""
from __future__ import annotations

import math

import numpy as np

from bench.metrics.calibration import average_ranks, spearman


def _scores_labels(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores but {y.size} labels")
    keep = ~np.isnan(s)
    return s[keep], y[keep]


def fail_auroc(mean_u: np.ndarray, bad: np.ndarray) -> float:
    """ROC AUC of mean u as a detector of bad frames: P(score_bad > score_good) + P(tie) / 2.

    Computed from mid-ranks (Mann-Whitney U), which is exactly the trapezoidal ROC area that
    sklearn's roc_auc_score gives with ties. NaN unless both classes occur; NaN scores are dropped.
    """
    s, y = _scores_labels(mean_u, bad)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = average_ranks(s)  # mean ranks for ties, as scipy.stats.rankdata
    u_stat = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u_stat / (n_pos * n_neg))


def roc_curve(mean_u: np.ndarray, bad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate) of mean u as a detector of bad frames, one point per distinct
    score from the highest down (tied scores enter together), starting at (0, 0). Its trapezoidal area is
    ``fail_auroc``. Empty arrays unless both classes occur."""
    s, y = _scores_labels(mean_u, bad)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    ends = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]
    tp = np.cumsum(y)[ends]
    fp = (ends + 1) - tp
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]


def fail_auprc(mean_u: np.ndarray, bad: np.ndarray) -> float:
    """Average precision, sum_k (R_k - R_{k-1}) P_k over thresholds at each distinct score, from
    the highest down (tied scores enter together, as in sklearn's average_precision_score).
    A random score gives about the bad rate; NaN when there is no bad frame."""
    s, y = _scores_labels(mean_u, bad)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    ends = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]  # last index of each tie group
    tp = np.cumsum(y)[ends]
    precision = tp / (ends + 1.0)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def bad_frames(values: np.ndarray, higher_is_better: bool, worst_fraction: float = 0.1,
               groups: np.ndarray | None = None) -> np.ndarray:
    """Mask of the worst ``worst_fraction`` of frames by ``values`` within each group.

    In a group of n frames with a value, k = max(1, round(worst_fraction * n)) frames are bad: the
    k worst, plus any frame tied with the k-th worst (so the set never depends on row order).
    NaN values are never bad and do not count in n; +-inf are ordinary values (PSNR of a perfect
    frame is +inf: best). ``groups``: one label per frame (e.g. split or pose bin); None: one group.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if not 0.0 < worst_fraction < 1.0:
        raise ValueError(f"worst_fraction must be in (0, 1), got {worst_fraction}")
    labels = np.zeros(v.size, dtype=np.int64) if groups is None else np.unique(np.asarray(groups).ravel(),
                                                                               return_inverse=True)[1]
    if labels.size != v.size:
        raise ValueError(f"{v.size} values but {labels.size} group labels")
    badness = -v if higher_is_better else v
    out = np.zeros(v.size, dtype=bool)
    for g in np.unique(labels):
        idx = np.flatnonzero((labels == g) & ~np.isnan(v))
        if idx.size == 0:
            continue
        k = max(1, int(round(worst_fraction * idx.size)))
        cut = np.sort(badness[idx])[::-1][k - 1]
        out[idx] = badness[idx] >= cut
    return out


def psnr_r2(mean_u: np.ndarray, psnr: np.ndarray) -> float:
    """R^2 of the least-squares line PSNR ~ a + b * ln(mean u) (= squared Pearson r).

    Log, because PSNR is -10 log10(MSE): if u tracks the error magnitude, PSNR is linear in ln u.
    Pairs with a non-finite PSNR (cap +inf first, e.g. at 100 dB) or u <= 0 are dropped; NaN with
    fewer than 3 pairs or a constant side.
    """
    u = np.asarray(mean_u, dtype=np.float64).ravel()
    p = np.asarray(psnr, dtype=np.float64).ravel()
    keep = np.isfinite(u) & (u > 0) & np.isfinite(p)
    x, y = np.log(u[keep]), p[keep]
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    r = np.corrcoef(x, y)[0, 1]
    return float(r * r)


def unc_frame_spearman(mean_u: np.ndarray, mean_e: np.ndarray) -> float:
    """Spearman correlation across frames of mean u and mean error (1: u ranks frames perfectly)."""
    u = np.asarray(mean_u, dtype=np.float64).ravel()
    e = np.asarray(mean_e, dtype=np.float64).ravel()
    keep = np.isfinite(u) & np.isfinite(e)
    return spearman(u[keep], e[keep])


def frame_quality(mean_u: np.ndarray, mean_e: np.ndarray, psnr: np.ndarray, groups: np.ndarray | None = None,
                  worst_fraction: float = 0.1) -> dict[str, float]:
    """All of the above for one set of frames, bad = worst PSNR within each group.

    For library use and tests: the summary computes each indicator on its own, with a clip bootstrap."""
    bad = bad_frames(psnr, True, worst_fraction, groups)
    auprc = fail_auprc(mean_u, bad)
    return {"fail_auroc": fail_auroc(mean_u, bad), "fail_auprc": auprc,
            "bad_rate": float(bad.mean()) if bad.size else math.nan,
            "psnr_r2": psnr_r2(mean_u, psnr), "unc_frame_spearman": unc_frame_spearman(mean_u, mean_e)}

"""Calibration of a predicted uncertainty map against the true error.

Definitions (per pixel): error e = |pred - gt| averaged over colour channels, on a [0, 1] scale;
u = exp(log_scale), the predicted Laplace scale (larger = less certain). Pixel metrics below are
means over all pixels given (pooled: every pixel weighs the same); pixels where e or u is not
finite are dropped.

Sparsification (Ilg et al. 2018; Poggi et al. 2020): remove pixels in descending order of u and
measure the error (MAE, or RMSE) of what remains, at fractions 0, 0.01, ..., 0.99; the oracle
removes by e itself. round(f * N) pixels are removed, at least one pixel is always kept. Pixels
with tied u are removed in random order and we use that order's expected value (a partly removed
tie group keeps its share at the group's mean error; for RMSE the expected remaining *squared*
error, then the root), so a constant map gives the flat random curve exactly. One sort: O(N log N),
exact at 10^7 pixels. AUSE is the area between the model and oracle curves over the fraction axis
(trapezoids); AURG the area between the random curve (flat at the full-set error, curve[0]) and the
model curve (> 0: better than random). Normalised curves are divided by the full-set error, so
areas become scale free. The per-frame headline ``ause`` averages per-frame raw MAE AUSEs.

Scale calibration: see ``nll_laplace`` ... ``crps_laplace``; ``CalibrationAccumulator`` streams
them exactly in constant memory. ``hist_kl``: JULNet's histogram KL (Lun2) as a metric.
"""
from __future__ import annotations

import numpy as np

HIST_BINS = 11
HIST_QUANTILE = 0.99  # the shared histogram range is [0, this quantile of e in the frame]
HIST_MIN_RANGE = 1.0 / 255.0  # ... but at least one grey level: smaller errors are quantisation
HIST_EPS = 1e-4  # probability smoothing before the KL


# ---------------------------------------------------------------- sparsification
def sparsification_fractions(step: float = 0.01) -> np.ndarray:
    return np.round(np.arange(0.0, 1.0 - step / 2, step), 10)


def _finite_pair(error: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|e| as float64 and ``other`` (dtype kept: ties are defined at its precision), both flat."""
    e = np.asarray(error, dtype=np.float64).ravel()
    e = e if e.size == 0 or e.min() >= 0 else np.abs(e)  # skip a copy when already |e|
    o = np.asarray(other).ravel()
    if e.shape != o.shape:
        raise ValueError(f"error has {e.size} pixels, uncertainty {o.size}")
    ok = np.isfinite(e) & np.isfinite(o)
    return (e, o) if ok.all() else (e[ok], o[ok])


def _kept_counts(n: int, fractions: np.ndarray) -> np.ndarray:
    removed = np.round(np.asarray(fractions, dtype=np.float64) * n).astype(np.int64)
    return n - np.clip(removed, 0, max(n - 1, 0))


def _remaining_by_key(key: np.ndarray, value: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Mean ``value`` left after removing the largest keys, tie groups in expectation."""
    n = value.size
    kept = _kept_counts(n, fractions)
    order = np.argsort(key)  # ascending: the kept pixels are a prefix
    val_sorted = value[order]
    key_sorted = np.sort(key)  # same as key[order], and a SIMD sort beats that random gather
    new_group = key_sorted[1:] != key_sorted[:-1]
    if new_group.all():  # no ties: plain prefix sums
        return np.cumsum(val_sorted)[kept - 1] / kept
    starts = np.flatnonzero(np.r_[True, new_group])
    group_sums = np.add.reduceat(val_sorted, starts)
    group_counts = np.diff(np.r_[starts, n])
    before = np.r_[0.0, np.cumsum(group_sums)]  # sum of the groups before group g
    g = np.searchsorted(starts, kept, side="right") - 1  # the group the cut falls in
    kept_sum = before[g] + (kept - starts[g]) * (group_sums[g] / group_counts[g])
    return kept_sum / kept


def _remaining_oracle(value: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """The oracle removes by the value itself: ties have equal values, so a plain sort is exact."""
    kept = _kept_counts(value.size, fractions)
    return np.cumsum(np.sort(value))[kept - 1] / kept


def sparsification_curves(error: np.ndarray, uncertainty: np.ndarray, fractions: np.ndarray | None = None,
                          metric: str = "mae", normalise: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(model curve, oracle curve) of the remaining error over all pixels given (pooled).

    ``metric``: "mae" (default) or "rmse". ``normalise`` divides both curves by the full-set
    error (their shared first value; NaN when that is 0). For the pooled curve pass all frames'
    pixels concatenated: exact, one argsort; 10^7 pixels take 1-2 s and ~32 bytes a pixel of scratch.
    """
    if metric not in ("mae", "rmse"):
        raise ValueError(f"unknown sparsification metric {metric!r}; choose 'mae' or 'rmse'")
    fractions = sparsification_fractions() if fractions is None else np.asarray(fractions, dtype=np.float64)
    e, u = _finite_pair(error, uncertainty)
    if e.size == 0:
        nan = np.full(fractions.shape, np.nan)
        return nan, nan.copy()
    value = e if metric == "mae" else e * e
    model, oracle = _remaining_by_key(u, value, fractions), _remaining_oracle(value, fractions)
    if metric == "rmse":
        model, oracle = np.sqrt(model), np.sqrt(oracle)
    if normalise:
        full = model[0] if fractions[0] == 0 else (np.sqrt(value.mean()) if metric == "rmse" else value.mean())
        with np.errstate(divide="ignore", invalid="ignore"):
            model, oracle = model / full, oracle / full
    return model, oracle


def area(curve: np.ndarray, fractions: np.ndarray) -> float:
    # Written out: np.trapezoid is numpy>=2 only, np.trapz is gone from numpy 2.4.
    return float(np.sum((curve[1:] + curve[:-1]) * np.diff(fractions)) / 2.0)


def ause(model_curve: np.ndarray, oracle_curve: np.ndarray, fractions: np.ndarray) -> float:
    """Area under the sparsification error (model - oracle); 0 is a perfect ranking."""
    return area(model_curve - oracle_curve, fractions)


def aurg(model_curve: np.ndarray, fractions: np.ndarray) -> float:
    """Area under the random gain: random curve (flat at curve[0], needs fractions[0] == 0) - model."""
    return area(model_curve[0] - model_curve, fractions)


def sparsification_metrics(error: np.ndarray, uncertainty: np.ndarray, fractions: np.ndarray | None = None,
                           metric: str = "mae") -> dict[str, float]:
    """ause, aurg and their normalised (divided by the full-set error) versions, from one sort.

    For library use (the normalised variants the README names) and tests; the scorer takes the curves."""
    fractions = sparsification_fractions() if fractions is None else np.asarray(fractions, dtype=np.float64)
    model, oracle = sparsification_curves(error, uncertainty, fractions, metric)
    full = model[0]
    out = {"ause": ause(model, oracle, fractions), "aurg": aurg(model, fractions)}
    scale = 1.0 / full if full > 0 else float("nan")
    out.update(ause_norm=float(out["ause"] * scale), aurg_norm=float(out["aurg"] * scale))
    return out


def tie_runs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(stable sort order of a 1-d x, along that order whether each value is the first of a run of equal ones)."""
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    return order, np.r_[True, ordered[1:] != ordered[:-1]]


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their mean rank: scipy.stats.rankdata(x) to the bit (every rank is an integer or
    a half), without its per-call overhead, which dominated the summaries' thousands of bootstrap resamples."""
    x = np.ravel(x)
    order, first = tie_runs(x)
    starts = np.flatnonzero(first)
    mean_rank = (starts + np.r_[starts[1:], x.size] + 1) / 2.0  # of positions start+1 .. end
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = mean_rank[np.cumsum(first) - 1]
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (scipy.stats.spearmanr's value, bit for bit); NaN when either side is constant
    (no ranking to compare) or has a NaN."""
    x, y = np.ravel(x), np.ravel(y)
    if x.size < 3 or np.isnan(x).any() or np.isnan(y).any() or (x == x[0]).all() or (y == y[0]).all():
        return float("nan")
    # the Pearson correlation of the ranks, with spearmanr's own layout (pairs as rows)
    return float(np.corrcoef(np.column_stack((average_ranks(x), average_ranks(y))), rowvar=False)[1, 0])


# ---------------------------------------------------------------- u as a Laplace scale
# |e| is a colour-channel mean of absolute errors, so the sign of the error is unknown; the
# Laplace(0, u) is symmetric, so NLL, coverage and CRPS of the signed error depend on |e| only.
def nll_laplace(error: np.ndarray, scale: np.ndarray) -> float:
    """Mean negative log-likelihood of the error under Laplace(0, u): log(2u) + |e|/u.

    (Lun1, |e|/u + log u, is this minus log 2. For |e| ~ Exponential(u) drop the log 2.)
    Expected value when |e| really has scale u: log(2u) + 1.
    """
    e, u = _finite_pair(error, np.asarray(scale, dtype=np.float64))
    return float(np.mean(np.log(2.0 * u) + e / u))


def nll_gaussian(error: np.ndarray, sigma: np.ndarray) -> float:
    """Mean NLL under N(0, sigma^2), taking u itself as the std (not the Laplace std u*sqrt(2)):
    0.5*log(2*pi*sigma^2) + e^2/(2*sigma^2). A misspecification check, not the model's own law."""
    e, s = _finite_pair(error, np.asarray(sigma, dtype=np.float64))
    return float(np.mean(0.5 * np.log(2.0 * np.pi * s * s) + e * e / (2.0 * s * s)))


def coverage_levels(step: float = 0.01) -> np.ndarray:
    """Central-interval probabilities p = step, 2*step, ..., 1 - step (0.01 ... 0.99: 99 levels)."""
    return np.round(np.arange(step, 1.0 - step / 2, step), 10)


def laplace_half_width(scale: np.ndarray | float, level: np.ndarray | float) -> np.ndarray:
    """Half-width of the central p-interval of Laplace(0, u): u * ln(1 / (1 - p))."""
    return np.asarray(scale) * -np.log1p(-np.asarray(level, dtype=np.float64))


def _inside_counts(ratio: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Per level, how many |e|/u <= ln(1/(1-p)): one binary search per pixel, O(N log L)."""
    q = laplace_half_width(1.0, levels)  # in units of u
    first = np.searchsorted(q, ratio, side="left")  # pixel inside every level from index `first` on
    return np.cumsum(np.bincount(first, minlength=q.size + 1))[: q.size]


def coverage_curve(error: np.ndarray, scale: np.ndarray,
                   levels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(expected, observed): per level p, the share of pixels with |e| <= u * ln(1/(1-p))."""
    levels = coverage_levels() if levels is None else np.asarray(levels, dtype=np.float64)
    e, u = _finite_pair(error, np.asarray(scale, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        counts = _inside_counts(e / u, levels)
    return levels.copy(), counts / max(e.size, 1)


def miscalibration_area(expected: np.ndarray, observed: np.ndarray) -> float:
    """Mean |observed - expected| over the levels: the area between the calibration curve and the
    diagonal on [0.01, 0.99] for evenly spaced levels (uncertainty-toolbox's miscalibration area /
    mean absolute calibration error). 0 is perfect, 0.5 the worst."""
    return float(np.mean(np.abs(np.asarray(observed) - np.asarray(expected))))


def rms_calibration_error(expected: np.ndarray, observed: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(observed) - np.asarray(expected)) ** 2)))


def sharpness(scale: np.ndarray, rms: bool = False) -> float:
    """Mean u (same units as the MAE); ``rms``: sqrt(mean u^2), uncertainty-toolbox's sharpness.
    Smaller is sharper; only meaningful beside a calibration score."""
    u = np.asarray(scale, dtype=np.float64).ravel()
    u = u[np.isfinite(u)]
    return float(np.sqrt(np.mean(u * u)) if rms else np.mean(u))


def crps_laplace(error: np.ndarray, scale: np.ndarray) -> float:
    """Mean CRPS of Laplace(0, u) against the error: |e| + u*exp(-|e|/u) - 3u/4 (lower is better;
    same units as the MAE, equals the MAE for u -> 0)."""
    e, u = _finite_pair(error, np.asarray(scale, dtype=np.float64))
    return float(np.mean(e + u * np.exp(-e / u) - 0.75 * u))


# ---------------------------------------------------------------- histogram KL (Lun2)
def hist_normalise(error: np.ndarray, scale: np.ndarray, quantile: float = HIST_QUANTILE,
                   min_range: float = HIST_MIN_RANGE) -> tuple[np.ndarray, np.ndarray]:
    """Divide e and u of one frame by the same number: max(quantile_q(e), min_range).

    One shared range, set by the error alone, keeps the scale: u == e gives identical histograms,
    u == 2e does not (a per-map max would call them equal and hinge on single outlier pixels).
    """
    e, u = _finite_pair(error, np.asarray(scale, dtype=np.float64))
    if e.size == 0:
        return e, u
    top = max(float(np.quantile(e, quantile)), min_range)
    return e / top, u / top


def hard_histogram(x: np.ndarray, bins: int = HIST_BINS) -> np.ndarray:
    """Counts in ``bins`` equal bins over [0, 1]; values outside are clipped into the end bins."""
    x = np.asarray(x, dtype=np.float64).ravel()
    index = np.clip(np.floor(x[np.isfinite(x)] * bins), 0, bins - 1).astype(np.int64)
    return np.bincount(index, minlength=bins).astype(np.float64)


def kl_divergence(p: np.ndarray, q: np.ndarray, eps: float = HIST_EPS) -> float:
    """KL(P || Q) of two histograms (counts or probabilities), each smoothed as (p + eps)/(1 + B*eps)."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    p = (p / p.sum() + eps) / (1.0 + p.size * eps)
    q = (q / q.sum() + eps) / (1.0 + q.size * eps)
    return max(float(np.sum(p * np.log(p / q))), 0.0)


def frame_histograms(error: np.ndarray, scale: np.ndarray, bins: int = HIST_BINS, quantile: float = HIST_QUANTILE,
                     min_range: float = HIST_MIN_RANGE) -> tuple[np.ndarray, np.ndarray]:
    """(error counts, uncertainty counts) of one frame after ``hist_normalise``."""
    x_e, x_u = hist_normalise(error, scale, quantile, min_range)
    return hard_histogram(x_e, bins), hard_histogram(x_u, bins)


def hist_kl(error: np.ndarray, scale: np.ndarray, bins: int = HIST_BINS, quantile: float = HIST_QUANTILE,
            min_range: float = HIST_MIN_RANGE, eps: float = HIST_EPS) -> float:
    """KL(P_err || P_unc) of one frame's hard histograms (JULNet's Lun2 as a metric); 0 when u == e.

    The direction penalises u for leaving error mass uncovered. Same normalisation, bins and
    smoothing as the training loss ``bench.blocks.histogram.histogram_kl``, which bins softly.
    """
    p, q = frame_histograms(error, scale, bins, quantile, min_range)
    return kl_divergence(p, q, eps) if p.sum() > 0 else float("nan")


# ---------------------------------------------------------------- streaming
_SUMS = ("abs_err", "sq_err", "nll_laplace", "nll_gaussian", "scale", "scale_sq", "crps")


class CalibrationAccumulator:
    """Streams the pixel calibration metrics exactly, in constant memory (sums and counts).

    ``update(error, scale)`` takes one frame (H x W; a flat array counts as one frame) or a batch
    (N x H x W, or N x 1 x H x W): frames matter for ``hist_kl``, normalised per frame. ``compute()``
    equals the one-shot functions on all pixels at once (up to float summation order), with
    ``hist_kl`` the mean of per-frame KLs and ``hist_kl_pooled`` the KL of the summed histograms.
    """

    def __init__(self, levels: np.ndarray | None = None, bins: int = HIST_BINS, quantile: float = HIST_QUANTILE,
                 min_range: float = HIST_MIN_RANGE, eps: float = HIST_EPS) -> None:
        self.levels = coverage_levels() if levels is None else np.asarray(levels, dtype=np.float64)
        self.bins, self.quantile, self.min_range, self.eps = bins, quantile, min_range, eps
        self.n_pixels = 0
        self.n_frames = 0
        self.sums = dict.fromkeys(_SUMS, 0.0)
        self.inside = np.zeros(self.levels.size, dtype=np.int64)
        self.hist_err = np.zeros(bins)
        self.hist_unc = np.zeros(bins)
        self.kl_sum = 0.0

    def update(self, error: np.ndarray, scale: np.ndarray) -> None:
        error, scale = np.asarray(error), np.asarray(scale)
        if error.shape != scale.shape:
            raise ValueError(f"error shape {error.shape} != uncertainty shape {scale.shape}")
        if error.ndim >= 3:
            error, scale = error.reshape(-1, *error.shape[-2:]), scale.reshape(-1, *scale.shape[-2:])
        else:
            error, scale = error[None], scale[None]
        for e_frame, u_frame in zip(error, scale):
            self._update_frame(e_frame, u_frame)

    def _update_frame(self, error: np.ndarray, scale: np.ndarray) -> None:
        e, u = _finite_pair(error, np.asarray(scale, dtype=np.float64))
        if e.size == 0:
            return
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = e / u
        s = self.sums
        s["abs_err"] += float(e.sum())
        s["sq_err"] += float(np.dot(e, e))
        s["nll_laplace"] += float(np.sum(np.log(2.0 * u) + ratio))
        s["nll_gaussian"] += float(np.sum(0.5 * np.log(2.0 * np.pi * u * u) + e * e / (2.0 * u * u)))
        s["scale"] += float(u.sum())
        s["scale_sq"] += float(np.dot(u, u))
        s["crps"] += float(np.sum(e + u * np.exp(-ratio) - 0.75 * u))
        self.inside += _inside_counts(ratio, self.levels)
        self.n_pixels += e.size
        p, q = frame_histograms(e, u, self.bins, self.quantile, self.min_range)
        self.hist_err += p
        self.hist_unc += q
        self.kl_sum += kl_divergence(p, q, self.eps)
        self.n_frames += 1

    def merge(self, other: "CalibrationAccumulator") -> "CalibrationAccumulator":
        """Add another accumulator's state (same levels and bins) into this one; returns self."""
        if not np.array_equal(self.levels, other.levels) or self.bins != other.bins:
            raise ValueError("cannot merge accumulators with different levels or bins")
        for key in _SUMS:
            self.sums[key] += other.sums[key]
        self.inside += other.inside
        self.hist_err += other.hist_err
        self.hist_unc += other.hist_unc
        self.kl_sum += other.kl_sum
        self.n_pixels += other.n_pixels
        self.n_frames += other.n_frames
        return self

    def coverage(self) -> tuple[np.ndarray, np.ndarray]:
        """(expected, observed) coverage curve so far."""
        return self.levels.copy(), self.inside / max(self.n_pixels, 1)

    def compute(self) -> dict[str, float]:
        n = self.n_pixels
        if n == 0:
            names = ("mae", "rmse", "nll_laplace", "nll_gaussian", "crps", "sharpness", "sharpness_rms",
                     "miscal_area", "rms_cal_error", "hist_kl", "hist_kl_pooled")
            return {**dict.fromkeys(names, float("nan")), "n_pixels": 0.0, "n_frames": 0.0}
        mean = {key: value / n for key, value in self.sums.items()}
        expected, observed = self.coverage()
        return {
            "mae": mean["abs_err"], "rmse": float(np.sqrt(mean["sq_err"])),
            "nll_laplace": mean["nll_laplace"], "nll_gaussian": mean["nll_gaussian"], "crps": mean["crps"],
            "sharpness": mean["scale"], "sharpness_rms": float(np.sqrt(mean["scale_sq"])),
            "miscal_area": miscalibration_area(expected, observed),
            "rms_cal_error": rms_calibration_error(expected, observed),
            "hist_kl": self.kl_sum / self.n_frames,
            "hist_kl_pooled": kl_divergence(self.hist_err, self.hist_unc, self.eps),
            "n_pixels": float(n), "n_frames": float(self.n_frames),
        }

"""Recalibration: could this uncertainty map be made calibrated by a map fitted on held-out data?

The per-pixel uncertainty u is read as the scale of a Laplace(0, u) error (as everywhere in talkbench),
so |e| given u is exponential with mean u, and the maximum-likelihood scale of a group of pixels is
the mean of their |e|. Two maps of u, each fitted on a calibration split the model did not train on
and applied to the test split:

* ``ScaleMap``: u -> s u with the one scalar s = mean(|e| / u) that maximises the Laplace likelihood
  (a map that is calibrated already gets s = 1; a 2x over-wide one gets s = 1/2);
* ``IsotonicMap``: u -> g(u), g the isotonic (non-decreasing) regression of |e| on u
  (``sklearn.isotonic.IsotonicRegression``): per level of u, the likelihood-optimal scale, under
  the one constraint that more uncertain stays at least as uncertain.

Both are monotone, so neither changes which pixels the map ranks as most uncertain: AUSE and AURG
(ranking metrics) are unchanged by construction. Isotonic regression is flat on stretches of u;
ties it would create there are broken by the original u (a vanishing slope is added), so the
ranking, and hence AUSE, is exactly the model's own. What recalibration can improve is what
depends on the scale: NLL, CRPS, coverage (miscalibration area).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.metrics import calibration

__all__ = ["IsotonicMap", "ScaleMap", "fit_isotonic", "fit_scale", "recalibration_report"]

_MIN_SCALE = 1e-6  # a scale of 0 would make the likelihood infinite; errors are on [0, 1]
_TIE_SLOPE = 1e-9  # relative slope added on the isotonic map's flat stretches (keeps the ranking strict)


def _pair(u: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u, e = np.ravel(np.asarray(u, dtype=np.float64)), np.abs(np.ravel(np.asarray(e, dtype=np.float64)))
    if u.shape != e.shape:
        raise ValueError(f"u and e differ in size ({u.size} vs {e.size})")
    keep = np.isfinite(u) & np.isfinite(e) & (u > 0)
    if not keep.any():
        raise ValueError("no finite pixels with u > 0 to fit a recalibration on")
    return u[keep], e[keep]


@dataclass(frozen=True)
class ScaleMap:
    """u -> scale * u."""

    scale: float

    def __call__(self, u: np.ndarray) -> np.ndarray:
        return np.asarray(u, dtype=np.float64) * self.scale

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "scale", "scale": self.scale}


@dataclass(frozen=True)
class IsotonicMap:
    """u -> g(u), piecewise linear through the fitted knots, constant beyond them, plus a vanishing slope."""

    knots_u: np.ndarray
    knots_scale: np.ndarray

    def __call__(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        mapped = np.interp(u, self.knots_u, self.knots_scale)
        span = max(float(self.knots_scale.max()), _MIN_SCALE)
        return np.maximum(mapped, _MIN_SCALE) + _TIE_SLOPE * span * u / max(float(self.knots_u.max()), _MIN_SCALE)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "isotonic", "knots_u": self.knots_u.tolist(), "knots_scale": self.knots_scale.tolist()}


def fit_scale(u: np.ndarray, e: np.ndarray) -> ScaleMap:
    """The Laplace maximum-likelihood scalar: argmin_s mean(log 2su + |e|/(su)) = mean(|e| / u)."""
    u, e = _pair(u, e)
    return ScaleMap(float(max(np.mean(e / u), _MIN_SCALE)))


def fit_isotonic(u: np.ndarray, e: np.ndarray, max_points: int = 200_000, seed: int = 0) -> IsotonicMap:
    """Isotonic regression of |e| on u (on at most ``max_points`` pixels, drawn with ``seed``)."""
    from sklearn.isotonic import IsotonicRegression

    u, e = _pair(u, e)
    if u.size > max_points:
        pick = np.random.default_rng(seed).choice(u.size, max_points, replace=False)
        u, e = u[pick], e[pick]
    fit = IsotonicRegression(increasing=True, out_of_bounds="clip").fit(u, e)
    return IsotonicMap(np.asarray(fit.X_thresholds_, dtype=np.float64), np.asarray(fit.y_thresholds_, dtype=np.float64))


def _scores(u: np.ndarray, e: np.ndarray) -> dict[str, float]:
    u, e = _pair(u, e)
    return {
        "miscal_area": calibration.miscalibration_area(*calibration.coverage_curve(e, u)),
        "nll": float(np.mean(np.log(2 * u) + e / u)),
        "ause": calibration.ause(*calibration.sparsification_curves(e, u, calibration.sparsification_fractions()),
                                 calibration.sparsification_fractions()),
    }


def recalibration_report(u_cal: np.ndarray, e_cal: np.ndarray, u_test: np.ndarray,
                         e_test: np.ndarray) -> dict[str, Any]:
    """Fit both maps on the calibration pixels; miscalibration area, NLL and AUSE on the test pixels before and
    after each. ``{"before": {...}, "scale": {..., "map": {...}}, "isotonic": {..., "map": {...}}}``."""
    out: dict[str, Any] = {"before": _scores(u_test, e_test)}
    for name, fitted in (("scale", fit_scale(u_cal, e_cal)), ("isotonic", fit_isotonic(u_cal, e_cal))):
        out[name] = {**_scores(fitted(u_test), e_test), "map": fitted.to_dict()}
    return out

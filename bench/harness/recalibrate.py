"""summary.json's "recalibration" block: could the run's uncertainty map be made calibrated by a map of u?

Both maps of ``bench.metrics.recalibration`` (the Laplace ML scalar and the isotonic map) are fitted on
held-out pixels and scored on the test pixels: the fixed pixel subsample of the scorer (every
``spearman_stride``-th generated pixel, at most 256 a frame: ``EvalResult.subsample``).

* With a val split (the synthetic data has one): fitted on all val pixels, scored on the test pixels,
  overall and per pose bin (the same two maps applied to each bin's test pixels).
* Without one (a user dataset, `bench score`): 2-fold cross-fitting over the test clips (clips
  alternately into two halves, in the order they were scored; each half is mapped by the maps fitted
  on the other, and the two mapped halves are scored together). The "map" entries are then fitted on
  all test pixels, for reuse; the scores come from the cross-fit. One clip alone is split by frames
  (first and second half). Pooling two halves mapped by two different maps can move AUSE a little;
  with a val split AUSE is unchanged by construction (monotone maps).

``{"fit_on": "...", "before": {miscal_area, nll, ause}, "scale": {..., "map": {...}},
"isotonic": {..., "map": {...}}, "by_pose": {bin: {"before", "scale", "isotonic"} | None}}``
(None for a bin without test pixels). No block without an uncertainty map.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

from bench.config import POSE_BINS
from bench.harness.scorer import EvalResult
from bench.metrics import calibration
from bench.metrics.recalibration import fit_isotonic, fit_scale, recalibration_report

log = logging.getLogger(__name__)

FITTERS: dict[str, Callable[[np.ndarray, np.ndarray], Any]] = {"scale": fit_scale, "isotonic": fit_isotonic}


def _pixels(result: EvalResult) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(u, |e|, frame row) of the usable subsample pixels (finite, u > 0, as the fits require), or None."""
    if not result.has_uncertainty or result.subsample is None:
        return None
    u, e, row = (np.asarray(a) for a in result.subsample)
    u, e = u.astype(np.float64), np.abs(e.astype(np.float64))
    keep = np.isfinite(u) & np.isfinite(e) & (u > 0)
    return (u[keep], e[keep], row[keep]) if keep.any() else None


def _scores(u: np.ndarray, e: np.ndarray) -> dict[str, float]:
    """The scores ``recalibration_report`` gives (miscalibration area, Laplace NLL, AUSE) of one (u, e) set."""
    fractions = calibration.sparsification_fractions()
    return {"miscal_area": calibration.miscalibration_area(*calibration.coverage_curve(e, u)),
            "nll": float(np.mean(np.log(2 * u) + e / u)),
            "ause": calibration.ause(*calibration.sparsification_curves(e, u, fractions), fractions)}


def _block(u: np.ndarray, mapped: dict[str, np.ndarray], e: np.ndarray) -> dict[str, Any]:
    return {"before": _scores(u, e), **{name: _scores(values, e) for name, values in mapped.items()}}


def _folds(result: EvalResult, row: np.ndarray) -> tuple[np.ndarray, str]:
    """Per pixel: True in the first fold. By clip (alternately, in scoring order); one clip by frame halves."""
    frames = result.frames
    clip_ids = frames["clip_id"].to_numpy()
    order = list(dict.fromkeys(clip_ids))  # first appearance = scoring order
    if len(order) >= 2:
        first = np.isin(clip_ids, order[::2])
        return first[row], f"2-fold cross-fitting over the test clips (no val split; {len(order)} clips)"
    half = np.arange(len(frames)) < (len(frames) + 1) // 2
    return half[row], "2-fold cross-fitting over the frames of the one test clip (no val split)"


def recalibration_summary(test: EvalResult, val: EvalResult | None = None) -> dict[str, Any] | None:
    """The "recalibration" block (module docstring), or None without an uncertainty map or usable pixels."""
    pixels = _pixels(test)
    if pixels is None:
        return None
    u, e, row = pixels
    cal = _pixels(val) if val is not None else None
    if cal is not None:
        n_clips = val.frames["clip_id"].nunique()
        out: dict[str, Any] = {"fit_on": f"val split ({n_clips} clip{'s' if n_clips != 1 else ''})",
                               **recalibration_report(cal[0], cal[1], u, e)}
        maps = {name: fit(cal[0], cal[1]) for name, fit in FITTERS.items()}
        mapped = {name: fitted(u) for name, fitted in maps.items()}
    else:
        first, fit_on = _folds(test, row)
        if first.all() or not first.any():
            log.warning("recalibration skipped: the test pixels fall into one fold only")
            return None
        mapped = {name: np.empty_like(u) for name in FITTERS}
        for fit_side in (first, ~first):
            for name, fit in FITTERS.items():
                mapped[name][~fit_side] = fit(u[fit_side], e[fit_side])(u[~fit_side])
        out = {"fit_on": fit_on, **_block(u, mapped, e)}
        for name, fit in FITTERS.items():
            out[name]["map"] = fit(u, e).to_dict()
    bins = test.frames["pose_bin"].to_numpy()[row]
    out["by_pose"] = {}
    for name, _, _ in POSE_BINS:
        here = bins == name
        out["by_pose"][name] = _block(u[here], {k: v[here] for k, v in mapped.items()}, e[here]) if here.any() else None
    return out


def add_recalibration(summary: dict[str, Any], test: EvalResult, val: EvalResult | None = None) -> dict[str, Any]:
    """``summary`` with its "recalibration" block added last (when there is an uncertainty map)."""
    block = recalibration_summary(test, val)
    if block is not None:
        summary["recalibration"] = block
    return summary

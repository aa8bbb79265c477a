"""Uncertainty figures: sparsification, reliability, error-uncertainty density, failure ROC, overlays,
recalibration (the run report and the calibration and wild-pose report)."""
from __future__ import annotations

import math

import numpy as np
from matplotlib.axes import Axes
from numpy.typing import ArrayLike

from bench.report import tables
from bench.report.plots._base import PALETTE, _axes, _floats, color_of, no_data, titled


def sparsification(fraction: ArrayLike, model: ArrayLike, oracle: ArrayLike, *, full: float | None = None,
                   color: str = PALETTE["all"], title: str | None = None, ax: Axes | None = None) -> Axes:
    """Sparsification curves: error left after removing the most-uncertain pixels (model) and the truly
    worst pixels (oracle); ``full`` (the error with nothing removed) is the "random" line. The shaded
    gap is the AUSE."""
    ax = _axes(ax, (3.6, 3.2))
    frac, model_c, oracle_c = (np.asarray(a, dtype=float) for a in (fraction, model, oracle))
    if full is None:
        full = float(model_c[0]) if len(frac) and np.isclose(frac[0], 0.0) else float("nan")
    ax.fill_between(frac, oracle_c, model_c, color=color, alpha=0.12, lw=0)
    ax.plot(frac, model_c, color=color, lw=2, label="model (by uncertainty)")
    ax.plot(frac, oracle_c, color="#222222", lw=1.4, ls="--", label="oracle (by true error)")
    if math.isfinite(full):
        ax.axhline(full, color="#888888", lw=1.2, ls=":", label="random")
    if title:
        ax.set_title(title)
    ax.set_xlabel("fraction of pixels removed")
    ax.set_xlim(0, 1)
    finite = np.concatenate([model_c, oracle_c, [full]])
    finite = finite[np.isfinite(finite)]
    top = float(finite.max()) if finite.size else 0.0
    ax.set_ylim(0, top * 1.05 if top > 0 else 1.0)
    if not top > 0:  # identical frames: every curve is the zero line
        ax.text(0.5, 0.5, "zero error everywhere", transform=ax.transAxes, ha="center", color="#888888")
    return ax


def _unit_square(ax: Axes, diagonal: str, xlabel: str, ylabel: str, title: str) -> None:
    """A [0, 1] x [0, 1] panel with its dotted diagonal (labelled ``diagonal``), set up once per Axes."""
    if any(line.get_gid() == diagonal for line in ax.get_lines()):
        return
    ax.plot([0, 1], [0, 1], color="#888888", lw=1.2, ls=":", label=diagonal, gid=diagonal)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)


def calibration(expected: ArrayLike, observed: ArrayLike, *, label: str | None = None, color: str | None = None,
                ax: Axes | None = None) -> Axes:
    """Observed against expected coverage of the central intervals of Laplace(0, u) (uncertainty-toolbox's
    calibration curve). The diagonal "ideal" is drawn once per Axes; above it the intervals are too wide
    (under-confident), below it too narrow (over-confident). Call once per group on the same Axes."""
    ax = _axes(ax, (4.2, 4.0))
    exp, obs = np.asarray(expected, dtype=float), np.asarray(observed, dtype=float)
    _unit_square(ax, "ideal", "expected coverage (central interval p)", "observed share of pixels inside",
                 "Calibration")
    color = color or color_of(label or "all")
    ax.plot(exp, obs, color=color, lw=2 if label in (None, "all") else 1.4, label=label)
    return ax


def error_uncertainty_hexbin(uncertainty: ArrayLike, error: ArrayLike, *, gridsize: int = 40, title: str | None = None,
                             ax: Axes | None = None) -> Axes:
    """Pixels as a log-density hexbin of |error| against predicted scale u, both on log axes, with the line
    E|e| = u a calibrated Laplace map follows: mass above it is under-estimated error, below it over-estimated."""
    ax = _axes(ax, (4.2, 3.8))
    u, e = _floats(uncertainty), _floats(error)
    keep = np.isfinite(u) & np.isfinite(e) & (u > 0) & (e > 0)
    if keep.sum() < 2:
        return no_data(ax, "no pixels with u > 0 and error > 0")
    u, e = u[keep], e[keep]
    ax.hexbin(u, e, gridsize=gridsize, xscale="log", yscale="log", bins="log", cmap="viridis", mincnt=1,
              linewidths=0)
    low, high = float(min(u.min(), e.min())), float(max(u.max(), e.max()))
    ax.plot([low, high], [low, high], color="#c0392b", lw=1.2, ls="--", label="E|e| = u (calibrated)")
    ax.set_xlabel("predicted scale u")
    ax.set_ylabel("|error|")
    ax.grid(False)
    ax.legend(loc="upper left")
    if title:
        ax.set_title(title)
    return ax


def roc(fpr: ArrayLike, tpr: ArrayLike, *, label: str | None = None, color: str | None = None,
        ax: Axes | None = None) -> Axes:
    """Failure-detection ROC (``bench.metrics.quality.roc_curve``); the chance diagonal is drawn once per Axes.
    Call once per group on the same Axes."""
    ax = _axes(ax, (4.0, 3.8))
    _unit_square(ax, "chance", "false-positive rate (good frames flagged)", "true-positive rate (bad frames flagged)",
                 "Failure detection by mean u")
    x, y = _floats(fpr), _floats(tpr)
    if x.size:
        ax.plot(x, y, color=color or color_of(label or "all"), lw=2 if label in (None, "all") else 1.4,
                label=label, drawstyle="default")
    return ax


def uncertainty_overlay(image: np.ndarray, uncertainty: np.ndarray, *, vmax: float | None = None,
                        title: str | None = None, ax: Axes | None = None) -> Axes:
    """A frame with its uncertainty map laid over it (transparent where u is low), to see where the model
    says it is unsure."""
    ax = _axes(ax, (3.0, 3.0))
    img = np.asarray(image)
    u = np.asarray(uncertainty, dtype=float)
    ax.imshow(img, interpolation="nearest")
    finite = u[np.isfinite(u)]
    if finite.size:
        top = vmax if vmax is not None else float(np.percentile(finite, 99)) or 1.0
        alpha = np.clip(np.nan_to_num(u / top), 0.0, 1.0) * 0.75
        ax.imshow(np.nan_to_num(u), cmap="magma", vmin=0, vmax=top, alpha=alpha, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def recalibration_bars(block: dict, metric: str = "miscal_area", *, ax: Axes | None = None) -> Axes:
    """One metric before and after each recalibration map (summary.json's "recalibration" block), as bars."""
    ax = _axes(ax, (3.6, 3.0))
    names = [name for name in ("before", "scale", "isotonic") if isinstance(block.get(name), dict)]
    values = [tables.num(block[name].get(metric)) for name in names]
    if not names or not np.isfinite(values).any():
        return no_data(ax, f"no {metric} before/after recalibration")
    colors = ["#888888", "#3a6ea5", "#2e8b57"][: len(names)]
    bars = ax.bar(names, values, color=colors, width=0.6)
    for bar, value in zip(bars, values):
        if np.isfinite(value):
            ax.annotate(tables.fmt(value), (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom",
                        fontsize=9, xytext=(0, 2), textcoords="offset points")
    ax.set_title(titled(metric))
    return ax

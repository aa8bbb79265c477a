"""The report's figures as plain functions, in the style of uncertainty-toolbox's ``plot_*``.

Each takes the data it draws plus ``ax=None``: it draws on ``ax`` (on a new figure when None) and
returns that Axes, so a notebook can lay several out on one figure and a test can count what was
drawn. Only matplotlib, numpy and pandas: seaborn's plot internals broke under a new matplotlib
once (its boxplot raised UnboundLocalError 'boxprops'). Nothing here sets global state;
``STYLE`` is the look the report applies with ``plt.rcParams.update(STYLE)``.

Degenerate inputs (no finite values, one frame, PSNR = inf for identical frames, all-NaN
uncertainty) draw a panel that says so instead of raising.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike

from bench.report import tables

PALETTE = {"all": "#333333", "frontal": "#3a6ea5", "moderate": "#e0922f", "extreme": "#c0392b",
           "unknown": "#888888"}
OTHER_COLOR = "#888888"
ERR_VMAX = 0.25  # fixed |error| colour scale (0..1 units) so sample strips compare across runs
MAX_POINTS = 300  # per box: every frame as a dot while that stays legible, else a sample of them

# A light "whitegrid" look in plain matplotlib.
STYLE = {"figure.dpi": 110, "axes.titleweight": "semibold", "axes.titlesize": 11,
         "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
         "axes.grid": True, "axes.axisbelow": True, "grid.color": "#e3e3e3", "grid.linewidth": 0.8,
         "axes.edgecolor": "#bbbbbb", "axes.facecolor": "white", "font.size": 10,
         "axes.labelsize": 10, "xtick.labelsize": 9, "ytick.labelsize": 9, "legend.fontsize": 9,
         "xtick.major.size": 0, "ytick.major.size": 0, "xtick.color": "#444444", "ytick.color": "#444444"}


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    _, new = plt.subplots(figsize=figsize, constrained_layout=True)
    return new


def color_of(group: str) -> str:
    return PALETTE.get(str(group), OTHER_COLOR)


def _floats(values: ArrayLike) -> np.ndarray:
    """Floats of a column or array, NaN for what is not a number (None, strings)."""
    return pd.to_numeric(pd.Series(np.ravel(np.asarray(values))), errors="coerce").to_numpy(dtype=float)


def finite_values(values: ArrayLike) -> np.ndarray:
    """The finite floats of a column or array (NaN, inf and non-numbers dropped)."""
    v = _floats(values)
    return v[np.isfinite(v)]


def titled(metric: str) -> str:
    """``psnr ↑``: the metric with its direction from bench.metrics.specs (none for unknown names)."""
    return f"{metric} {tables.arrow(metric)}".strip()


def no_data(ax: Axes, text: str = "no data") -> Axes:
    """An empty panel that says why it is empty instead of showing blank axes."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#888888", fontsize=10,
            wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_color("#e3e3e3")
    return ax


def metric_boxplot(groups: Sequence[tuple[str, ArrayLike]], metric: str = "", *, ax: Axes | None = None,
                   max_points: int = MAX_POINTS, seed: int = 0) -> Axes:
    """One box (quartiles of the finite values) per (name, values) group, every value overlaid as a dot.

    Infinite values (PSNR of identical frames) are counted in the tick label ("3 ∞") but not drawn;
    a group without finite values keeps its tick and gets no box.
    """
    ax = _axes(ax, (3.7, 3.4))
    rng = np.random.default_rng(seed)
    ax.set_title(titled(metric))
    raw = [_floats(v) for _, v in groups]
    values = [v[np.isfinite(v)] for v in raw]
    n_inf = [int(np.isinf(v).sum()) for v in raw]
    if not any(len(v) for v in values):
        why = f"all {sum(n_inf)} values infinite" if sum(n_inf) else "no finite values"
        return no_data(ax, why + ("\n(identical frames: PSNR = ∞)" if sum(n_inf) and "psnr" in metric else ""))
    filled = [i for i, v in enumerate(values) if len(v)]
    boxes = ax.boxplot([values[i] for i in filled], positions=filled, widths=0.55, showfliers=False,
                       patch_artist=True, manage_ticks=False, medianprops={"color": "#222222", "lw": 1.3},
                       whiskerprops={"color": "#555555", "lw": 1.1}, capprops={"color": "#555555", "lw": 1.1},
                       boxprops={"lw": 1.1, "edgecolor": "#555555"})
    for i, patch in zip(filled, boxes["boxes"]):
        patch.set_facecolor(color_of(groups[i][0]))
        patch.set_alpha(0.45)
    for i in filled:
        v = values[i]
        dense = len(v) > max_points
        pts = rng.choice(v, max_points, replace=False) if dense else v
        ax.scatter(i + rng.uniform(-0.22, 0.22, len(pts)), pts, s=4 if dense else 9 if len(pts) > 30 else 16,
                   alpha=0.35 if dense else 0.7, color=color_of(groups[i][0]), edgecolors="none", zorder=3)
    labels = [f"{name}\nn={len(r)}" + (f" ({k} ∞)" if k else "") for (name, _), r, k in zip(groups, raw, n_inf)]
    ax.set_xticks(range(len(groups)), labels)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylabel(metric)
    return ax


def _scatter_by_group(ax: Axes, x: np.ndarray, y: np.ndarray, groups: ArrayLike | None,
                      order: Sequence[str] | None) -> int:
    """Scatter the finite (x, y) pairs, one colour and legend entry per group; returns how many were drawn."""
    ok = np.isfinite(x) & np.isfinite(y)
    labels = np.full(len(x), "all", dtype=object) if groups is None else np.asarray(groups, dtype=object)
    names = list(order or []) + [g for g in dict.fromkeys(labels.tolist()) if g not in (order or [])]
    for g in names:
        sel = ok & (labels == g)
        if sel.any():
            ax.scatter(x[sel], y[sel], s=18, alpha=0.75, color=color_of(g), edgecolors="none", label=str(g))
    return int(ok.sum())


def metric_vs_yaw(yaw: ArrayLike, values: ArrayLike, groups: ArrayLike | None = None, metric: str = "psnr", *,
                  order: Sequence[str] | None = None, ax: Axes | None = None) -> Axes:
    """Per-frame ``metric`` against |yaw| in degrees, coloured by pose bin; infinite values are counted, not drawn."""
    ax = _axes(ax, (5.6, 4.0))
    x, y = np.abs(_floats(yaw)), _floats(values)
    if _scatter_by_group(ax, x, y, groups, order) == 0:
        return no_data(ax, "no frame has both a head pose and a finite " + metric)
    ax.set_xlabel("|yaw| (degrees)")
    ax.set_ylabel(metric)
    ax.set_title(f"Per-frame {metric.upper() if metric in ('psnr', 'ssim', 'lpips') else metric} vs head yaw")
    n_inf = int(np.isinf(y).sum())
    if n_inf:
        ax.text(0.03, 0.03, f"{n_inf} identical frame(s), {metric.upper()} = ∞, not drawn", transform=ax.transAxes,
                fontsize=8, color="#666666")
    if groups is not None:
        ax.legend(title="pose bin", loc="upper right")
    return ax


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return float("nan")
    rx, ry = pd.Series(x[ok]).rank().to_numpy(), pd.Series(y[ok]).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")  # a constant side has no rank correlation
    return float(np.corrcoef(rx, ry)[0, 1])


def error_vs_uncertainty(uncertainty: ArrayLike, error: ArrayLike, groups: ArrayLike | None = None, *,
                         rho: float | None = None, order: Sequence[str] | None = None,
                         ax: Axes | None = None) -> Axes:
    """Per-frame mean predicted uncertainty u against mean |error|, coloured by pose bin.

    ``rho``: the Spearman correlation to print (e.g. summary.json's ``unc_frame_spearman``); None or
    NaN computes it from the points given.
    """
    ax = _axes(ax, (5.6, 4.0))
    u, e = _floats(uncertainty), _floats(error)
    if _scatter_by_group(ax, u, e, groups, order) == 0:
        return no_data(ax, "no finite (uncertainty, error) pairs")
    ax.set_xlabel("mean predicted uncertainty u")
    ax.set_ylabel("mean |error|")
    ax.set_title("Uncertainty vs error (per frame)")
    ok = np.isfinite(u) & np.isfinite(e)
    # Both are magnitudes: start near 0 (a run with zero error would otherwise centre on 0), unless the
    # points sit in a narrow band far from 0, which a 0-based axis would squash into one corner.
    for setter, values in ((ax.set_xlim, u[ok]), (ax.set_ylim, e[ok])):
        low, top = float(values.min()), float(values.max())
        if top <= 0 or low <= 0.5 * top:
            top = top * 1.08 if top > 0 else 0.05
            setter(-0.03 * top, top)
    rho = _spearman(u, e) if rho is None or not math.isfinite(rho) else rho
    if math.isfinite(rho):
        ax.text(0.03, 0.95, f"Spearman ρ = {rho:.3f}", transform=ax.transAxes, va="top", fontsize=10,
                bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "#ccc"})
    if groups is not None:
        ax.legend(title="pose bin", loc="best")
    return ax


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


def calibration(expected: ArrayLike, observed: ArrayLike, *, label: str | None = None, color: str | None = None,
                ax: Axes | None = None) -> Axes:
    """Observed against expected coverage of the central intervals of Laplace(0, u) (uncertainty-toolbox's
    calibration curve). The diagonal "ideal" is drawn once per Axes; above it the intervals are too wide
    (under-confident), below it too narrow (over-confident). Call once per group on the same Axes."""
    ax = _axes(ax, (4.2, 4.0))
    exp, obs = np.asarray(expected, dtype=float), np.asarray(observed, dtype=float)
    if not any(line.get_gid() == "ideal" for line in ax.get_lines()):
        ax.plot([0, 1], [0, 1], color="#888888", lw=1.2, ls=":", label="ideal", gid="ideal")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("expected coverage (central interval p)")
        ax.set_ylabel("observed share of pixels inside")
        ax.set_title("Calibration")
    color = color or color_of(label or "all")
    ax.plot(exp, obs, color=color, lw=2 if label in (None, "all") else 1.4, label=label)
    return ax


# ---- calibration (the wild-pose notebook)
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
    if not any(line.get_gid() == "chance" for line in ax.get_lines()):
        ax.plot([0, 1], [0, 1], color="#888888", lw=1.2, ls=":", label="chance", gid="chance")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("false-positive rate (good frames flagged)")
        ax.set_ylabel("true-positive rate (bad frames flagged)")
        ax.set_title("Failure detection by mean u")
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


def _cell(shape: tuple[int, ...], left: float, top: float) -> tuple[float, float, float, float]:
    """Extent (left, right, bottom, top) fitting an H x W image into a unit cell, aspect kept, centred."""
    h, w = shape[0], shape[1]
    scale = 1.0 / max(h, w, 1)
    dw, dh = w * scale, h * scale
    x0, y0 = left + (1 - dw) / 2, top + (1 - dh) / 2
    return x0, x0 + dw, y0 + dh, y0  # the y axis points down: image row 0 at the top of the cell


def sample_grid(gt: Sequence[np.ndarray], pred: Sequence[np.ndarray], error: Sequence[np.ndarray] | None = None,
                uncertainty: Sequence[np.ndarray] | None = None, *, labels: Sequence[str] | None = None,
                err_vmax: float = ERR_VMAX, unc_vmax: float | None = None, ax: Axes | None = None) -> Axes:
    """Sample frames on one Axes: a row per sample; columns ground truth, generated, |error| (fixed
    scale 0..``err_vmax``) and, when any map has a finite value, predicted uncertainty (0..``unc_vmax``,
    by default the 99th percentile of all maps).

    Images keep their own size and aspect (each fits a unit cell), so samples of different resolutions
    sit side by side. ``error`` defaults to mean |gt - pred| / 255 over channels. ``labels``: one
    (multi-line) row label per sample.
    """
    n = len(gt)
    if error is None:
        error = [np.abs(np.asarray(g, float) - np.asarray(p, float)).mean(-1) / 255.0 for g, p in zip(gt, pred)]
    has_u = uncertainty is not None and any(np.isfinite(np.asarray(u, float)).any() for u in uncertainty)
    titles = ["ground truth", "generated", "|error|"] + (["uncertainty"] if has_u else [])
    ncols = len(titles)
    ax = _axes(ax, (1.9 * ncols + 1.2, 1.85 * n + 1.0))
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if n == 0:
        return no_data(ax, "no samples")
    unc_scale = "0–p99" if unc_vmax is None else f"0–{unc_vmax:.3g}"
    if has_u and unc_vmax is None:
        finite = np.concatenate([finite_values(u) for u in uncertainty])
        unc_vmax = float(np.percentile(finite, 99)) if finite.size else 1.0
    unc_vmax = unc_vmax if unc_vmax and unc_vmax > 0 else 1.0
    gap_x, gap_y, foot = 0.06, 0.22, 0.5  # between columns, between rows (the mean-error caption), colour bars
    images = []
    for i in range(n):
        top = i * (1 + gap_y)
        e = np.asarray(error[i], float)
        row = [(gt[i], {}), (pred[i], {}), (e, {"cmap": "inferno", "vmin": 0.0, "vmax": err_vmax})]
        if has_u:
            row.append((np.asarray(uncertainty[i], float), {"cmap": "viridis", "vmin": 0.0, "vmax": unc_vmax}))
        shown = [ax.imshow(img, extent=_cell(np.shape(img), j * (1 + gap_x), top), **kw,
                           interpolation="nearest" if np.shape(img)[0] <= 64 else "antialiased")
                 for j, (img, kw) in enumerate(row)]
        images += shown
        if np.isfinite(e).any():  # under the error image itself (a wide one ends above its cell's bottom)
            ax.text(2 * (1 + gap_x) + 0.5, shown[2].get_extent()[2] + 0.03, f"mean {float(np.nanmean(e)):.3f}",
                    ha="center", va="top", fontsize=8, color="#666666")
    width, height = ncols * (1 + gap_x) - gap_x, n * (1 + gap_y) - gap_y + foot
    ax.set_xlim(-0.02, width + 0.02)
    ax.set_ylim(height, -0.02)
    ax.set_aspect("equal")
    ax.xaxis.set_ticks_position("top")
    ax.set_xticks([j * (1 + gap_x) + 0.5 for j in range(ncols)], titles, fontsize=10)
    ax.set_yticks([i * (1 + gap_y) + 0.5 for i in range(n)], list(labels or [""] * n)[:n], fontsize=9)
    ax.tick_params(length=0, pad=6)
    # Colour bars in the foot, under their own column (axes-fraction coordinates of the cells).
    bar_top = n * (1 + gap_y) - gap_y + 0.16
    bars = [(2, images[2], f"|error|, fixed scale 0–{err_vmax}")]
    if has_u:
        bars.append((3, images[3], f"uncertainty u, {unc_scale}"))
    for col, image, text in bars:
        x0 = (col * (1 + gap_x) + 0.08 + 0.02) / (width + 0.04)
        y0 = 1 - (bar_top + 0.07 + 0.02) / (height + 0.02)
        cax = ax.inset_axes([x0, y0, 0.84 / (width + 0.04), 0.07 / (height + 0.02)])
        bar = ax.figure.colorbar(image, cax=cax, orientation="horizontal")
        bar.locator = MaxNLocator(nbins=3)  # end labels of neighbouring bars must not run together
        bar.set_label(text, fontsize=8)
        bar.ax.tick_params(labelsize=7, length=2)
    return ax


# ---- comparison
# Figures of `bench compare --report` (bench/report/notebooks/compare.ipynb).

RUN_COLORS = ("#3a6ea5", "#e0922f", "#2e8b57", "#c0392b", "#7d5ba6", "#8c6d31", "#d45087", "#17becf")
FLOOR_COLOR = "#999999"


def run_colors(labels: Sequence[str], floors: Sequence[str] = ()) -> dict[str, str]:
    """One colour per run, in order; floors grey."""
    out, i = {}, 0
    for label in labels:
        if label in floors:
            out[label] = FLOOR_COLOR
        else:
            out[label] = RUN_COLORS[i % len(RUN_COLORS)]
            i += 1
    return out


def pose_points(points: pd.DataFrame, metric: str = "", *, order: Sequence[str] | None = None,
                runs: Sequence[str] | None = None, colors: dict[str, str] | None = None, zero_line: bool = False,
                ylabel: str | None = None, ax: Axes | None = None) -> Axes:
    """Point plot: one point per (pose bin, run) with its CI as an error bar, runs side by side in a bin.

    ``points``: columns run, pose_bin, value, ci_low, ci_high (CI may be NaN: the point alone).
    ``order``: the pose bins on the x axis; ``zero_line``: a line at 0 (for differences to a baseline).
    """
    ax = _axes(ax, (4.2, 3.4))
    ax.set_title(titled(metric))
    df = points[np.isfinite(_floats(points["value"]))] if len(points) else points
    if df.empty:
        return no_data(ax, f"no values of {metric}" if metric else "no values")
    order = list(order or dict.fromkeys(df["pose_bin"]))
    runs = list(runs or dict.fromkeys(df["run"]))
    colors = colors or run_colors(runs)
    width = 0.7 / max(len(runs), 1)
    for j, run in enumerate(runs):
        sub = df[df["run"] == run]
        x, y, lo, hi = [], [], [], []
        for i, b in enumerate(order):
            row = sub[sub["pose_bin"] == b]
            if row.empty:
                continue
            v, low, high = (float(_floats(row[c])[0]) for c in ("value", "ci_low", "ci_high"))
            x.append(i - 0.35 + width * (j + 0.5))
            y.append(v)
            lo.append(v - low if math.isfinite(low) else 0.0)
            hi.append(high - v if math.isfinite(high) else 0.0)
        if x:
            ax.errorbar(x, y, yerr=[np.maximum(lo, 0), np.maximum(hi, 0)], fmt="o", ms=5, capsize=3, lw=1.3,
                        color=colors.get(run, OTHER_COLOR), label=str(run))
    if zero_line:
        ax.axhline(0.0, color="#555555", lw=1.0, ls="--", zorder=0)
    ax.set_xticks(range(len(order)), [str(b) for b in order])
    ax.set_xlim(-0.6, len(order) - 0.4)
    ax.set_ylabel(ylabel if ylabel is not None else metric)
    return ax


def model_samples(gt: Sequence[np.ndarray | None], preds: Sequence[Sequence[np.ndarray | None]],
                  models: Sequence[str], *, labels: Sequence[str] | None = None, ax: Axes | None = None) -> Axes:
    """The same frames from every model: a row per frame, columns ground truth then each model's output.

    ``preds[i][j]``: model j's image of frame i (None: that run did not store the frame, a grey "—" cell).
    Images keep their size and aspect (each fits a unit cell), so models of different resolutions line up.
    """
    n, ncols = len(gt), 1 + len(models)
    ax = _axes(ax, (1.7 * ncols + 1.4, 1.75 * max(n, 1) + 0.8))
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if n == 0:
        return no_data(ax, "no sample frame shared by the runs")
    gap_x, gap_y = 0.06, 0.12
    for i in range(n):
        top = i * (1 + gap_y)
        for j, img in enumerate([gt[i], *preds[i]]):
            left = j * (1 + gap_x)
            if img is None:
                ax.add_patch(plt.Rectangle((left, top), 1, 1, color="#f0f0f0"))
                ax.text(left + 0.5, top + 0.5, "—", ha="center", va="center", color="#999999")
                continue
            ax.imshow(img, extent=_cell(np.shape(img), left, top),
                      interpolation="nearest" if np.shape(img)[0] <= 64 else "antialiased")
    width, height = ncols * (1 + gap_x) - gap_x, n * (1 + gap_y) - gap_y
    ax.set_xlim(-0.02, width + 0.02)
    ax.set_ylim(height + 0.02, -0.02)
    ax.set_aspect("equal")
    ax.xaxis.set_ticks_position("top")
    ax.set_xticks([j * (1 + gap_x) + 0.5 for j in range(ncols)], ["ground truth", *map(str, models)], fontsize=9)
    ax.set_yticks([i * (1 + gap_y) + 0.5 for i in range(n)], list(labels or [""] * n)[:n], fontsize=8)
    ax.tick_params(length=0, pad=5)
    return ax

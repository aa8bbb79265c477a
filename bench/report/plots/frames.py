"""Per-frame figures of the run report: metric distributions by pose, scatters, the sample strip."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike

from bench.report.plots._base import (ERR_VMAX, MAX_POINTS, _axes, _cell, _floats, color_of, finite_values, no_data,
                                       titled)


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

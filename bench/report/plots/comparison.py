"""Figures of `bench compare --report` (bench/report/notebooks/compare.ipynb)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from bench.report.plots._base import OTHER_COLOR, _axes, _cell, _floats, no_data, titled


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

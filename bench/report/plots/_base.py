"""What every plot shares: the palette, the report's look, and the helpers for degenerate data."""
from __future__ import annotations


import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
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


def _cell(shape: tuple[int, ...], left: float, top: float) -> tuple[float, float, float, float]:
    """Extent (left, right, bottom, top) fitting an H x W image into a unit cell, aspect kept, centred."""
    h, w = shape[0], shape[1]
    scale = 1.0 / max(h, w, 1)
    dw, dh = w * scale, h * scale
    x0, y0 = left + (1 - dw) / 2, top + (1 - dh) / 2
    return x0, x0 + dw, y0 + dh, y0  # the y axis points down: image row 0 at the top of the cell

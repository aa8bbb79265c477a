"""The reports' figures as plain functions, in the style of uncertainty-toolbox's ``plot_*``.

Each takes the data it draws plus ``ax=None``: it draws on ``ax`` (on a new figure when None) and
returns that Axes, so a notebook can lay several out on one figure and a test can count what was
drawn. Only matplotlib, numpy and pandas: seaborn's plot internals broke under a new matplotlib
once (its boxplot raised UnboundLocalError 'boxprops'). Nothing here sets global state;
``STYLE`` is the look the report applies with ``plt.rcParams.update(STYLE)``.

Degenerate inputs (no finite values, one frame, PSNR = inf for identical frames, all-NaN
uncertainty) draw a panel that says so instead of raising.

The figures live in submodules by report, ``frames`` (the run report's per-frame figures),
``uncertainty`` (sparsification, reliability, density, failure ROC, overlays, recalibration) and
``comparison`` (`bench compare --report`); ``bench.report.plots.<name>`` reaches every one of them.
"""
from bench.report.plots._base import (ERR_VMAX, MAX_POINTS, OTHER_COLOR, PALETTE, STYLE, color_of, finite_values,
                                       no_data, titled)
from bench.report.plots.frames import error_vs_uncertainty, metric_boxplot, metric_vs_yaw, sample_grid
from bench.report.plots.uncertainty import (calibration, error_uncertainty_hexbin, recalibration_bars, roc, sparsification,
                                             uncertainty_overlay)
from bench.report.plots.comparison import FLOOR_COLOR, RUN_COLORS, model_samples, pose_points, run_colors

__all__ = ["ERR_VMAX", "FLOOR_COLOR", "MAX_POINTS", "OTHER_COLOR", "PALETTE", "RUN_COLORS", "STYLE",
           "calibration", "color_of", "error_uncertainty_hexbin", "error_vs_uncertainty", "finite_values",
           "metric_boxplot", "metric_vs_yaw", "model_samples", "no_data", "pose_points",
           "recalibration_bars", "roc", "run_colors", "sample_grid", "sparsification", "titled",
           "uncertainty_overlay"]

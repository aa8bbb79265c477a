"""The report's plot and table helpers (bench.report.plots, bench.report.tables) and the notebook that calls them."""
from __future__ import annotations

import json
import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection

from bench.metrics import specs
from bench.report import plots, tables
from bench.report.render import notebook_path


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _points(ax: Axes) -> list[int]:
    """Number of points of each scatter on ``ax``."""
    return [len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection)]


def _texts(ax: Axes) -> str:
    return " | ".join(t.get_text() for t in ax.texts)


FRACTION = np.linspace(0.0, 0.98, 50)
# Each helper with a small input: (call, what it must draw on the Axes).
CASES = {
    "metric_boxplot": lambda ax: plots.metric_boxplot([("frontal", [1.0, 2.0, 3.0]), ("moderate", [4.0, 5.0])],
                                                      "psnr", ax=ax),
    "metric_vs_yaw": lambda ax: plots.metric_vs_yaw([-10.0, 20.0, 50.0], [30.0, 25.0, 20.0],
                                                    ["frontal", "moderate", "extreme"], ax=ax),
    "error_vs_uncertainty": lambda ax: plots.error_vs_uncertainty([0.1, 0.2, 0.3, 0.4], [0.01, 0.03, 0.02, 0.05],
                                                                  ax=ax),
    "sparsification": lambda ax: plots.sparsification(FRACTION, 0.05 * (1 - FRACTION), 0.05 * (1 - FRACTION) ** 2,
                                                      ax=ax),
    "calibration": lambda ax: plots.calibration(np.linspace(0.01, 0.99, 99), np.linspace(0.01, 0.99, 99) ** 1.2,
                                                ax=ax),
    "sample_grid": lambda ax: plots.sample_grid([np.zeros((8, 8, 3), np.uint8)], [np.ones((8, 8, 3), np.uint8)],
                                                ax=ax),
}


@pytest.mark.parametrize("name", list(CASES))
def test_helper_draws_on_the_given_axes_or_a_new_one(name: str) -> None:
    fig, ax = plt.subplots()
    assert CASES[name](ax) is ax
    assert ax.figure is fig and len(fig.axes) >= 1
    drawn = len(ax.lines) + len(ax.collections) + len(ax.images)
    assert drawn > 0, "nothing was drawn"

    made = CASES[name](None)
    assert isinstance(made, Axes) and made is not ax and made.figure is not fig


def test_metric_boxplot_one_box_and_every_finite_value_per_group() -> None:
    groups = [("frontal", [1.0, 2.0, 3.0]), ("moderate", [4.0, np.inf, np.nan]), ("extreme", [])]
    ax = plots.metric_boxplot(groups, "psnr")

    assert ax.get_title() == "psnr ↑"
    assert len(ax.patches) == 2  # no box for the empty bin
    assert _points(ax) == [3, 1]  # inf and NaN are not drawn
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["frontal\nn=3", "moderate\nn=3 (1 ∞)", "extreme\nn=0"]


def test_metric_boxplot_samples_dense_groups_and_says_when_nothing_is_finite() -> None:
    ax = plots.metric_boxplot([("all frames", np.arange(1000.0))], "ssim", max_points=300)
    assert _points(ax) == [300]

    ax = plots.metric_boxplot([("frontal", [np.inf, np.inf])], "psnr")
    assert _points(ax) == [] and not ax.patches
    assert "all 2 values infinite" in _texts(ax) and "PSNR = ∞" in _texts(ax)
    assert "no finite values" in _texts(plots.metric_boxplot([("frontal", [np.nan])], "lmd"))


def test_metric_vs_yaw_one_colour_per_bin_and_infinite_values_counted() -> None:
    yaw = [-10.0, 12.0, 20.0, 50.0, np.nan]
    psnr = [30.0, 29.0, 25.0, np.inf, 20.0]
    bins = ["frontal", "frontal", "moderate", "extreme", "frontal"]
    ax = plots.metric_vs_yaw(yaw, psnr, bins, "psnr", order=["frontal", "moderate", "extreme"])

    assert _points(ax) == [2, 1]  # the inf and the NaN-yaw frames are left out; extreme has none left
    assert [c.get_label() for c in ax.collections] == ["frontal", "moderate"]
    np.testing.assert_allclose(ax.collections[0].get_offsets()[:, 0], [10.0, 12.0])  # |yaw|
    assert "1 identical frame(s)" in _texts(ax)
    assert ax.get_title() == "Per-frame PSNR vs head yaw"
    assert "no frame has both" in _texts(plots.metric_vs_yaw([np.nan], [30.0]))


def test_error_vs_uncertainty_spearman_from_points_or_given() -> None:
    u, e = [0.1, 0.2, 0.3, 0.4, np.nan], [0.01, 0.02, 0.03, 0.04, 0.5]
    ax = plots.error_vs_uncertainty(u, e, ["frontal", "frontal", "extreme", "extreme", "extreme"])
    assert _points(ax) == [2, 2]
    assert "Spearman ρ = 1.000" in _texts(ax)
    assert ax.get_xlim()[0] < 0 < ax.get_xlim()[1] and ax.get_ylim()[0] < 0  # magnitudes start near 0

    assert "Spearman ρ = 0.250" in _texts(plots.error_vs_uncertainty(u, e, rho=0.25))
    assert "Spearman ρ = 1.000" in _texts(plots.error_vs_uncertainty(u, e, rho=float("nan")))
    assert "Spearman" not in _texts(plots.error_vs_uncertainty([0.1, 0.1, 0.1], [0.1, 0.2, 0.3]))  # constant u
    assert "no finite" in _texts(plots.error_vs_uncertainty([np.nan], [0.1]))
    # a narrow band far from 0 (a near-constant u) keeps matplotlib's limits instead of a squashed 0-based axis
    band = plots.error_vs_uncertainty([0.0506, 0.0507, 0.0508], [0.080, 0.081, 0.083])
    assert band.get_xlim()[0] > 0.05 and band.get_ylim()[0] > 0.07


def test_sparsification_model_oracle_and_random_lines() -> None:
    model, oracle = 0.05 * (1 - FRACTION), 0.05 * (1 - FRACTION) ** 2
    ax = plots.sparsification(FRACTION, model, oracle, title="all")
    assert [line.get_label() for line in ax.lines] == ["model (by uncertainty)", "oracle (by true error)", "random"]
    assert all(len(line.get_xdata()) == 50 for line in ax.lines[:2])
    assert ax.lines[2].get_ydata()[0] == pytest.approx(0.05)  # random = the error with nothing removed
    assert len(ax.collections) == 1 and ax.get_title() == "all"  # the shaded AUSE gap

    late = FRACTION + 0.01  # no fraction 0 and no full error given: no random line
    assert len(plots.sparsification(late, model, oracle).lines) == 2
    assert plots.sparsification(late, model, oracle, full=0.07).lines[2].get_ydata()[0] == pytest.approx(0.07)
    zero = plots.sparsification(FRACTION, 0 * FRACTION, 0 * FRACTION)
    assert "zero error everywhere" in _texts(zero) and zero.get_ylim() == (0.0, 1.0)


def test_calibration_one_ideal_line_and_one_curve_per_group() -> None:
    p = np.linspace(0.01, 0.99, 99)
    ax = plots.calibration(p, p, label="all")
    for g, k in (("frontal", 0.8), ("extreme", 1.5)):
        assert plots.calibration(p, 1 - (1 - p) ** k, label=g, ax=ax) is ax
    assert [line.get_label() for line in ax.lines] == ["ideal", "all", "frontal", "extreme"]
    assert ax.lines[3].get_color() == plots.PALETTE["extreme"]
    assert ax.get_xlim() == (0.0, 1.0) and ax.get_ylim() == (0.0, 1.0)


def test_sample_grid_one_image_per_cell_and_labels() -> None:
    rng = np.random.default_rng(0)
    sizes = [(8, 8), (6, 10), (10, 4)]
    gt = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    pred = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    unc = [rng.random((h, w)) for h, w in sizes]
    ax = plots.sample_grid(gt, pred, uncertainty=unc, labels=["a", "b", "c"])

    assert len(ax.images) == 12  # 3 samples x (gt, pred, |error|, uncertainty)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ground truth", "generated", "|error|", "uncertainty"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert len(ax.child_axes) == 2  # colour bars for |error| and uncertainty
    left, right, bottom, top = ax.images[4].get_extent()  # sample b, 6 x 10: wider than tall, aspect kept
    assert (right - left) / (bottom - top) == pytest.approx(10 / 6)
    expected_error = np.abs(gt[0].astype(float) - pred[0].astype(float)).mean(-1) / 255.0
    np.testing.assert_allclose(ax.images[2].get_array(), expected_error)
    assert ax.images[2].get_clim() == (0.0, plots.ERR_VMAX)
    assert sum("mean " in t for t in _texts(ax).split(" | ")) == 3


def test_sample_grid_leaves_out_an_all_nan_uncertainty_column() -> None:
    gt = [np.zeros((8, 8, 3), np.uint8)] * 2
    ax = plots.sample_grid(gt, gt, uncertainty=[np.full((8, 8), np.nan)] * 2)
    assert len(ax.images) == 6 and len(ax.child_axes) == 1
    assert "no samples" in _texts(plots.sample_grid([], []))


def _row_names(html: str) -> list[str]:
    return re.findall(r"<tr><td><span[^>]*>([^<]+)</span>", html)


def _groups(html: str) -> list[str]:
    return re.findall(r'<tr class="tb-group"><td colspan="\d+">([^<]+)</td>', html)


# A metric with no better side, whichever specs names (descriptive quantities like the mean scale u).
DESCRIPTIVE = next((n for n, row in specs.METRICS.items() if row.higher_is_better is None), None)


def test_metrics_table_order_groups_direction_and_notes_come_from_specs() -> None:
    def entry(value, hib=True):
        return {"value": value, "ci95": [value - 1, value + 1], "higher_is_better": hib, "n": 10}

    # summary.json's direction is ignored for names specs knows: psnr stays "higher is better"
    metrics = {"unc_spearman": entry(0.5), "my_score": entry(3.0, False), "lse_c_local": entry(float("nan")),
               "ssim": entry(0.8), "psnr": entry(24.0, False)}
    html = tables.metrics_table(metrics)

    known = sorted(set(metrics) - {"my_score"}, key=specs.sort_key)
    groups = list(dict.fromkeys(specs.METRICS[n].group for n in known))
    assert _groups(html) == sorted(groups, key=specs.GROUPS.index) + ["other"]
    assert _row_names(html) == [n for g in _groups(html)[:-1] for n in known if specs.METRICS[n].group == g] \
        + ["my_score"]
    assert html.index(">psnr<") < html.index(">ssim<")  # specs' order within a group
    assert specs.METRICS["psnr"].note in html and "fvd" not in html
    rows = dict(zip(_row_names(html), html.split("<tr><td>")[1:]))
    for name in known:
        assert f'<span class="tb-arrow">{tables.arrow(name)}</span>' in rows[name]
    assert tables.arrow("psnr", {"higher_is_better": False}) == "↑"
    assert '<span class="tb-arrow">↓</span>' in rows["my_score"]  # unknown to specs: summary's direction
    assert "n/a" in rows["lse_c_local"] and "nan" not in rows["lse_c_local"].lower().replace("n/a", "")
    assert "23.00 – 25.00" in rows["psnr"]


def test_metrics_table_floor_column() -> None:
    metrics = {"psnr": {"value": 22.2, "n": 60}, "unc_spearman": {"value": 0.29, "n": 60}}
    floor = {"model": "copyref", "metrics": {"psnr": {"value": 32.53}}}
    html = tables.metrics_table(metrics, floor)
    rows = dict(zip(_row_names(html), html.split("<tr><td>")[1:]))

    assert "<th>copyref floor</th>" in html and "copyref floor: the baseline" in html
    assert "<td>32.53</td>" in rows["psnr"] and "n/a" in rows["unc_spearman"]  # the floor has no uncertainty
    assert "floor" not in tables.metrics_table(metrics)


def test_pose_table_marks_the_worst_bin_by_the_specs_direction() -> None:
    names = ["psnr", "lpips"] + ([DESCRIPTIVE] if DESCRIPTIVE else [])
    metrics = {"psnr": {"value": 24.0, "higher_is_better": False}, "lpips": {"value": 0.2}}
    by_pose = {"frontal": {"psnr": {"value": 28.0, "ci95": [27.0, 29.0]}, "lpips": {"value": 0.1}},
               "moderate": {"psnr": {"value": 22.0}, "lpips": {"value": 0.3}}}
    if DESCRIPTIVE:
        metrics[DESCRIPTIVE] = {"value": 0.05, "higher_is_better": False}
        by_pose["frontal"][DESCRIPTIVE], by_pose["moderate"][DESCRIPTIVE] = {"value": 0.04}, {"value": 0.06}
    html, any_worst = tables.pose_table(metrics, by_pose, ["frontal", "moderate", "extreme"],
                                        {"frontal": 5, "moderate": 3})
    rows = dict(zip(_row_names(html), html.split("<tr><td>")[1:]))

    assert any_worst and sorted(rows) == sorted(names)
    assert '<span class="tb-worst">22.00</span>' in rows["psnr"]  # specs: higher is better, the lowest is worst
    assert '<span class="tb-worst">0.3000</span>' in rows["lpips"]  # lower is better (summary gave no direction)
    if DESCRIPTIVE:
        assert "tb-worst" not in rows[DESCRIPTIVE]  # no better side, no worst bin
    assert rows["psnr"].count("no frames") == 1 and "27.00 – 29.00" in rows["psnr"]
    assert "5 frames" in html and "0 frames" in html


def _shown_and_folded(html: str) -> tuple[list[str], dict[str, list[str]]]:
    """Row names outside any <details>, and per group heading the row names folded under it."""
    shown, folded, group = [], {}, None
    for part in re.split(r'(<tr class="tb-group"><td colspan="\d+">[^<]+</td></tr>|<details.*?</details>)', html):
        heading = re.match(r'<tr class="tb-group"><td colspan="\d+">([^<]+)</td>', part)
        if heading:
            group = heading.group(1)
        elif part.startswith("<details"):
            folded[group] = _row_names(part)
        else:
            shown += _row_names(part)
    return shown, folded


def test_headline_metrics_lead_each_group_and_the_others_fold_without_javascript() -> None:
    names = ["psnr", "psnr_mouth", "ssim_mouth", "lse_c_local", "nll", "crps", "hist_kl", "unc_frame_spearman",
             "fail_auprc", "my_score"]
    metrics = {n: {"value": 0.5 + i, "ci95": [0.1, 0.9 + i], "n": 10} for i, n in enumerate(names)}
    assert specs.is_headline("psnr") and not specs.is_headline("psnr_mouth") and not specs.is_headline("my_score")
    by_pose = {b: {n: {"value": 0.4 + i + k} for i, n in enumerate(names)}
               for k, b in enumerate(("frontal", "moderate"))}
    for html in (tables.metrics_table(metrics), tables.pose_table(metrics, by_pose, ["frontal", "moderate"], {})[0]):
        shown, folded = _shown_and_folded(html)
        # headline ones in view; a group without one (quality indicator here, "other") is shown whole
        assert shown == ["psnr", "lse_c_local", "nll", "unc_frame_spearman", "fail_auprc", "my_score"]
        assert folded == {"image quality": ["psnr_mouth", "ssim_mouth"], "uncertainty": ["crps", "hist_kl"]}
        assert "2 more image quality metrics: " in html and "psnr_mouth, ssim_mouth" in html
        # <details> sits in a cell of a full-width row (a <details> between rows would be moved out of the
        # table by the HTML parser), folded by default, no script
        assert html.count("<details") == 2 and "<details open" not in html and "<script" not in html
        assert len(re.findall(r'<tr class="tb-fold"><td colspan="(\d+)"[^>]*><details', html)) == 2
        # the folded table repeats the outer columns' fixed widths, so its columns line up
        outer, *inner = re.findall(r"<colgroup>.*?</colgroup>", html)
        assert len(inner) == 2 and all(c == outer for c in inner) and outer.count("<col") - 1 == \
            html.split("</thead>")[0].count("<th>")
    only_rest = tables.metrics_table({"crps": metrics["crps"], "hist_kl": metrics["hist_kl"]})
    assert "<details" not in only_rest and _row_names(only_rest) == ["crps", "hist_kl"]


def test_reports_index_lists_the_headline_metrics_of_specs() -> None:
    from bench.report import index

    assert index.HEADLINE == specs.HEADLINE == tuple(n for n in specs.ORDER if specs.METRICS[n].headline)
    assert {"psnr", "ssim", "lpips", "fid", "lse_c", "ause", "miscal_area", "fail_auroc"} <= set(specs.HEADLINE)
    summary = {"metrics": {"psnr": {"value": 24.0}, "crps": {"value": 0.1}, "nll": {"value": None}}}
    assert index.headline(summary) == {"psnr": 24.0, "nll": None}


def test_formatting() -> None:
    assert tables.fmt(None) == tables.fmt(float("nan")) == tables.fmt("x") == "n/a"
    assert tables.fmt(24.05123) == "24.05" and tables.fmt(0.005058) == "0.005058" and tables.fmt(2e-5) == "2e-05"
    assert tables.fmt_ci([1.0, 2.0], 10.0) == "1.00 – 2.00" and tables.fmt_ci(None) == "—"
    assert tables.fmt_secs(42) == "42.0 s" and tables.fmt_secs(125) == "2 min 05 s"
    assert tables.kv_table([("a", "1"), ("b", None)]) == '<table class="tb-kv"><tr><th>a</th><td>1</td></tr></table>'


def test_notebook_takes_metric_facts_from_specs_and_is_saved_without_outputs() -> None:
    nb = json.loads(notebook_path("run").read_text(encoding="utf-8"))
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")

    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in nb["cells"] if c["cell_type"] == "code")
    assert "from bench.report import plots, tables" in code and "from bench.metrics import specs" in code
    for own_list in ("METRIC_ORDER", "fvd", "higher_is_better", "PALETTE =", "ax.boxplot", "ax.scatter",
                     "import seaborn"):
        assert own_list not in code, own_list
    assert "bench.cli" not in code  # the report layer sits below the command line
    # the best, median and worst clips come from clip_samples.npz and are drawn by the shared sample strip
    assert '"clip_samples.npz"' in code and code.count("plots.sample_grid(") == 2

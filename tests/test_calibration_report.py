"""The calibration and wild-pose report: its plot helpers, the notebook on a run with every input, and the CLI."""
from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from bench.cli import main  # noqa: E402
from bench.metrics import quality  # noqa: E402
from bench.metrics.recalibration import recalibration_report  # noqa: E402
from bench.report import plots  # noqa: E402
from fake_run import make_fake_run  # noqa: E402


def teardown_function() -> None:
    plt.close("all")


def test_hexbin_counts_every_usable_pixel_and_draws_the_calibrated_line():
    rng = np.random.default_rng(0)
    u = rng.uniform(0.01, 0.1, 500)
    e = rng.exponential(u)
    e[:10] = 0.0  # not drawable on a log axis: left out
    ax = plots.error_uncertainty_hexbin(u, e)
    hexes = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(hexes) == 1 and hexes[0].get_array().sum() == pytest.approx(490)
    assert len(ax.get_lines()) == 1  # E|e| = u
    fig, given = plt.subplots()
    assert plots.error_uncertainty_hexbin(u, e, ax=given) is given
    assert plots.error_uncertainty_hexbin([np.nan], [1.0]).texts  # "no pixels ..." panel, no error


def test_roc_draws_the_chance_line_once_and_one_curve_per_call():
    rng = np.random.default_rng(1)
    bad = rng.random(200) < 0.1
    fpr, tpr = quality.roc_curve(rng.normal(size=200) + bad, bad)
    fig, ax = plt.subplots()
    assert plots.roc(fpr, tpr, label="all", ax=ax) is ax
    plots.roc(fpr, tpr, label="frontal", ax=ax)
    lines = ax.get_lines()
    assert [line.get_gid() for line in lines].count("chance") == 1 and len(lines) == 3
    assert lines[1].get_xydata().shape == (len(fpr), 2)


def test_overlay_and_recalibration_bars():
    image = np.zeros((16, 16, 3), np.uint8)
    u = np.zeros((16, 16))
    u[8:, :] = 1.0
    ax = plots.uncertainty_overlay(image, u)
    assert len(ax.get_images()) == 2
    alpha = ax.get_images()[1].get_alpha()
    assert alpha[0, 0] == 0 and alpha[-1, -1] > 0.5  # transparent where u is low
    block = {"before": {"miscal_area": 0.2}, "scale": {"miscal_area": 0.0}, "isotonic": {"miscal_area": 0.01}}
    bars = plots.recalibration_bars(block).patches
    assert [round(b.get_height(), 3) for b in bars] == [0.2, 0.0, 0.01]  # a perfect 0 is a bar, not "no data"


def _with_calibration_inputs(run: Path) -> Path:
    """What newer runs write: coverage curves, the pixel subsample, the worst frames, the recalibration block."""
    frames = pd.read_parquet(run / "frames.parquet")
    rng = np.random.default_rng(3)
    rows = np.repeat(np.arange(len(frames)), 40)
    u = rng.uniform(0.01, 0.1, rows.size).astype(np.float32)
    e = rng.exponential(u * 1.5).astype(np.float32)
    np.savez(run / "calibration.npz", u=u, e=e, frame=rows)
    with np.load(run / "curves.npz") as z:
        curves = dict(z)
    levels = np.linspace(0.01, 0.99, 99)
    curves.update(coverage_expected=levels, **{f"coverage_{g}": levels ** 1.2 for g in ("all", "frontal",
                                                                                          "moderate", "extreme")})
    np.savez(run / "curves.npz", **curves)
    n = 8
    np.savez(run / "worst.npz", gt=rng.integers(0, 255, (n, 24, 24, 3), dtype=np.uint8),
             pred=rng.integers(0, 255, (n, 24, 24, 3), dtype=np.uint8), error=rng.random((n, 24, 24)),
             uncertainty=rng.random((n, 24, 24)), clip_id=np.array(["<script>x</script>"] * n),
             frame=np.arange(n), yaw=np.linspace(0, 60, n), by=np.array(["error"] * 4 + ["uncertainty"] * 4),
             height=np.full(n, 24), width=np.full(n, 24))
    summary = json.loads((run / "summary.json").read_text())
    half = u.size // 2
    report = recalibration_report(u[:half], e[:half], u[half:], e[half:])
    summary["recalibration"] = {"fit_on": "val split (3 clips)", **report,
                                "by_pose": {"frontal": {k: {m: v for m, v in report[k].items() if m != "map"}
                                                        for k in ("before", "scale", "isotonic")}}}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def _images(html: str) -> int:
    return len(re.findall(r'<img[^>]+src="data:image/png;base64', html))


def test_the_calibration_report_renders_every_section(tmp_path):
    run = _with_calibration_inputs(make_fake_run(tmp_path / "run", model="julnet-<b>x</b>"))
    out = tmp_path / "out" / "cal.html"
    assert main(["report", str(run), "--notebook", "calibration", "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    for heading in ("Calibration by pose bin", "Error against uncertainty", "Failure detection",
                    "Where it fails worst", "Could it be recalibrated?"):
        assert heading in html
    # sparsification + reliability, hexbins, ROC, worst by error, worst by uncertainty, recalibration bars
    assert _images(html) == 6
    assert "julnet-&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html
    assert "<script>x" not in html  # clip ids go into figure titles, never into the page raw
    assert "val split (3 clips)" in html
    assert not re.search(r'<(script|link)[^>]+(src|href)="https?://', html)
    executed = nbformat.read(out.with_suffix(".ipynb"), as_version=4)  # kept beside it for JupyterLab
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert not (run / "report.html").exists()  # the run's own report and manifest are untouched
    assert "report" not in json.loads((run / "manifest.json").read_text())


def test_a_run_without_uncertainty_or_new_files_still_renders_with_notes(tmp_path, capsys):
    run = make_fake_run(tmp_path / "plain", with_uncertainty=False)
    reports = tmp_path / "reports"
    assert main(["report", str(run), "--notebook", "calibration", "--reports", str(reports)]) == 0
    published = next(reports.glob("calibration-*.html"))  # into the reports folder, listed in its index
    html = published.read_text(encoding="utf-8")
    assert "there is nothing to calibrate" in html and _images(html) == 0
    assert f"report: {published}" in capsys.readouterr().out
    index = (reports / "index.html").read_text(encoding="utf-8")
    assert published.name in index and "calibration and wild pose" in index


def test_an_unknown_notebook_is_refused(tmp_path, capsys):
    run = make_fake_run(tmp_path / "run")
    with pytest.raises(SystemExit) as stop:
        main(["report", str(run), "--notebook", "nope"])
    assert stop.value.code == 2 and "invalid choice" in capsys.readouterr().err

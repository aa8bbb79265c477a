"""The HTML report renders from a run directory, offline, and fails loudly and safely."""
from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import bench.report.render
from bench.cli import main
from bench.metrics import specs
from bench.report.render import ReportError, notebook_path, render_report, strip_remote_refs

try:
    from fake_run import BINS, make_fake_run
except ImportError:  # tests/ imported as a package
    from tests.fake_run import BINS, make_fake_run

_ATTR = re.compile(r"""\b(?:src|href)\s*=\s*["']?\s*([^"'\s>]*)""", re.IGNORECASE)


def _remote_refs(html: str) -> list[str]:
    return [v for v in _ATTR.findall(html) if re.match(r"(?:https?:)?//", v, re.IGNORECASE)]


def test_notebook_is_found() -> None:
    assert notebook_path("run").is_file()


SECTIONS = ("Metrics", "Per-frame-metrics-by-pose", "Uncertainty", "Samples")


def _add_coverage_curves(run: Path) -> None:
    """What the scorer writes beside the sparsification curves: coverage_<group> and coverage_expected."""
    curves = dict(np.load(run / "curves.npz"))
    levels = np.round(np.arange(0.01, 0.995, 0.01), 10)
    curves["coverage_expected"] = levels
    for group, k in (("all", 1.0), *zip(BINS, (0.8, 1.1, 1.5))):
        curves[f"coverage_{group}"] = 1 - (1 - levels) ** k
    np.savez(run / "curves.npz", **curves)


def _add_folded_metrics(run: Path) -> None:
    """Non-headline metrics (specs' ``headline``) beside fake_run's headline ones, overall and per pose bin."""
    summary = json.loads((run / "summary.json").read_text())
    for block in (summary["metrics"], *summary["by_pose"].values()):
        block["psnr_mouth"] = {"value": 27.5, "ci95": [27.0, 28.0], "higher_is_better": True, "n": 24}
        block["crps"] = {"value": 0.012, "ci95": None, "higher_is_better": False, "n": 24}
    (run / "summary.json").write_text(json.dumps(summary))


def test_render_full_run(tmp_path: Path) -> None:
    run = make_fake_run(tmp_path / "run", model="julnet-fake", nan_metric="ause")
    _add_coverage_curves(run)
    _add_folded_metrics(run)
    clips = dict(np.load(run / "clip_samples.npz"))
    assert clips["rank"].tolist() == ["best", "median", "worst"] and clips["position"].tolist() == [1, 5, 9]
    clips["position"][1] = 4  # a stand-in for the median clip, as the scorer's bounded memory may give
    np.savez(run / "clip_samples.npz", **clips)
    out = render_report(run)

    assert out == (run / "report.html").resolve()
    html = out.read_text(encoding="utf-8")
    assert "julnet-fake" in html
    for name in ("psnr", "ssim", "unc_spearman", "ause", *BINS):
        assert name in html, name
    for section in SECTIONS:
        assert f'<h2 id="{section}">' in html, section
    # box plots, scatters, sparsification curves, calibration curve, best/median/worst clips, sample strip
    assert html.count('" src="data:image/png;base64,') == 6
    for alt in ("Per-frame metric distributions", "Scatter plots", "Sparsification curves", "Calibration curve",
                "Best, median and worst clips", "Sample frames"):
        assert f'alt="{alt}' in html, alt
    assert html.index('alt="Best, median and worst clips') < html.index('alt="Sample frames')
    assert "lowest mean PSNR among the 9 clips" in html
    assert "the kept clip nearest it, rank 4 of 9, is shown instead" in html
    # headline metrics first, the others folded (closed) in both tables, readable without JavaScript
    assert html.count('<details class="tb-details tb-fold">') == 4  # image quality and uncertainty, twice
    assert "1 more image quality metric: " in html and "1 more uncertainty metric: " in html
    metric_tables = re.findall(r'<table class="tb-table tb-(?:overall|pose)".*?</tbody></table>(?=\s*</div>)', html,
                               re.DOTALL)
    assert len(metric_tables) == 2
    for table in metric_tables:
        assert table.index(">psnr<") < table.index("<details") < table.index(">psnr_mouth<")
    assert "central p-interval" in html and "coverage curves" not in html
    # metrics grouped as bench.metrics.specs groups them, with its one-line notes
    assert '<tr class="tb-group"><td colspan="5">image quality</td>' in html
    assert '<tr class="tb-group"><td colspan="5">uncertainty</td>' in html
    assert escape(specs.METRICS["psnr"].note) in html
    assert "fvd" not in re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)  # no metric nothing computes
    assert _remote_refs(html) == []
    assert "<script" not in html
    assert "n/a" in html  # the NaN metric is shown as such, not as "nan"
    assert not list(run.glob(".report.html.*"))  # no temp file left behind


def test_render_degraded_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A running run with an empty pose bin and no samples/curves still renders, with notes.

    A registered ``python3`` kernelspec pointing at a missing interpreter must not matter:
    the report always runs on this interpreter.
    """
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": ["/nonexistent/python", "-m", "ipykernel_launcher", "-f",
                                                           "{connection_file}"], "language": "python",
                                                  "display_name": "broken"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    run = make_fake_run(tmp_path / "run", empty_bin="extreme", with_samples=False, with_curves=False,
                        status="running")
    out = render_report(run, out_path=tmp_path / "out" / "r.html")

    html = out.read_text(encoding="utf-8")
    assert out.parent == (tmp_path / "out").resolve()
    assert "samples.npz not found" in html and "curves.npz not found" in html
    assert "clip_samples.npz not found" in html  # an older run directory: a note, no error
    assert "no frames" in html and "running" in html
    assert _remote_refs(html) == []


def test_missing_summary_raises_and_keeps_old_report(tmp_path: Path) -> None:
    run = make_fake_run(tmp_path / "run", with_samples=False, with_curves=False)
    (run / "summary.json").unlink()
    old = run / "report.html"
    old.write_text("previous report")

    with pytest.raises(ReportError) as err:
        render_report(run)

    assert str(run.resolve()) in str(err.value) and "summary.json" in str(err.value)
    assert old.read_text() == "previous report"


def test_notebook_failure_is_one_line(tmp_path: Path) -> None:
    run = make_fake_run(tmp_path / "run", with_samples=False, with_curves=False)
    (run / "frames.parquet").write_bytes(b"this is not parquet")
    old = run / "report.html"
    old.write_text("previous report")

    with pytest.raises(ReportError) as err:
        render_report(run, timeout_s=120)

    message = str(err.value)
    assert str(run.resolve()) in message
    assert re.search(r"cell \d+: \w+(Error|Invalid|Exception)\b", message), message
    assert "\n" not in message and "Traceback" not in message
    assert old.read_text() == "previous report"


def test_strip_remote_refs() -> None:
    html = ('<head><script src="https://cdn.example/require.js"></script><link rel="stylesheet" '
            'href="//fonts.example/a.css"><style>a{} /* from https://example.org */</style></head>'
            '<body><a href="http://example.org">x</a><a href="#Metrics">m</a>'
            '<img src="data:image/png;base64,AAAA"></body>')
    out, removed = strip_remote_refs(html)
    assert _remote_refs(out) == [] and "://" not in out
    assert len(removed) == 3
    assert 'href="#Metrics"' in out and "data:image/png;base64,AAAA" in out


# Degenerate runs, a few features per render (each render costs seconds):
DEGENERATE = {
    # one clip, one frame, prediction == ground truth: PSNR inf, zero error, a constant uncertainty
    "one_frame_identical": dict(bins=("frontal",), clips_per_bin=1, n_frames=1, identical=True),
    # the failure: pose-labelled frames with an all-NaN metric column (seaborn's boxplot raised
    # UnboundLocalError 'boxprops'), plus a constant column and samples of three resolutions, padded
    "nan_constant_mixed_sizes": dict(nan_columns=("lmd",), constant_column="ssim",
                                     sample_sizes=((32, 32), (24, 40), (40, 20))),
    # `bench score` without pose or uncertainty: every frame "unknown", yaw NaN, u NaN in samples.npz
    "no_pose_no_uncertainty": dict(pose_labels=False, with_uncertainty=False, nan_metric=None),
}


@pytest.mark.parametrize("case", list(DEGENERATE))
def test_degenerate_runs_render(tmp_path: Path, case: str) -> None:
    run = make_fake_run(tmp_path / case, model=f"fake-{case}", **DEGENERATE[case])
    html = render_report(run).read_text(encoding="utf-8")

    assert f"fake-{case}" in html and "<script" not in html
    for section in SECTIONS:
        assert f'<h2 id="{section}">' in html, section
    assert html.count("data:image/png;base64,") >= 2  # the per-frame plots and the sample strip at least
    if case == "one_frame_identical":
        assert "1 clips · 1 frames" in html
        assert "The run has 1 clip(s): each is shown once." in html
        assert "Infinite values (PSNR of identical frames)" in html
    if case == "nan_constant_mixed_sizes":
        assert "No finite per-frame values for: lmd" in html
        # each sample is cropped to its own height x width before it is drawn
        assert "different resolutions (20×40, 32×32, 40×24 px)" in html
    if case == "no_pose_no_uncertainty":
        assert "no uncertainty maps" in html and "Without pose labels" in html
        assert "per-pose-bin table is not shown" in html


def _failing_notebook(path: Path) -> Path:
    """A report notebook that fails the way seaborn's boxplot did under matplotlib 3.11."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('run_dir = ""', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("raise UnboundLocalError(\"cannot access local variable 'boxprops'\")")]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _assert_results_stand(run: Path) -> dict:
    """Results written and readable, the run complete, the report failure recorded, no half report."""
    assert json.loads((run / "summary.json").read_text())["metrics"]["psnr"]["n"] > 0
    assert len(pd.read_parquet(run / "frames.parquet")) > 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and "error" not in manifest
    assert manifest["report"]["status"] == "failed" and "boxprops" in manifest["report"]["error"]
    assert "\n" not in manifest["report"]["error"]
    assert not (run / "report.html").exists() and not list(run.glob(".report.html.*"))
    return manifest


def test_failed_report_keeps_the_results_and_bench_report_renders_it_again(tmp_path: Path, capsys,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """`bench score` of a clip against itself: a report that fails in the notebook does not sink the run."""
    clip = tmp_path / "clip"
    clip.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(clip / f"{i}.png")
    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    shipped = bench.report.render.NOTEBOOK_DIR
    monkeypatch.setattr(bench.report.render, "NOTEBOOK_DIR", _failing_notebook(tmp_path / "failing" / "run.ipynb").parent)
    run = tmp_path / "self"

    assert main(["score", "--pred", str(clip), "--gt", str(clip), "--out", str(run), "--no-networks",
                 "--no-progress"]) == 0  # exit 0: the measurements exist
    out, err = capsys.readouterr()
    assert "psnr ↑" in out and "100.000" in out  # the results table is printed
    manifest = _assert_results_stand(run)
    assert manifest["report"]["log"] == "report_error.log"
    assert "UnboundLocalError" in (run / "report_error.log").read_text()  # the notebook's traceback
    warning = [line for line in err.splitlines() if line.startswith("report: FAILED")]
    assert len(warning) == 1 and "boxprops" in warning[0] and f"bench report {run}" in warning[0]

    assert main(["report", str(run)]) == 2  # still failing: one line, recorded again
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench: error: ") and "report_error.log" in err[0]
    _assert_results_stand(run)

    monkeypatch.setattr(bench.report.render, "NOTEBOOK_DIR", shipped)
    assert main(["report", str(run)]) == 0
    assert f"report: {(run / 'report.html').resolve()}" in capsys.readouterr().out
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["report"] == {"status": "rendered", "path": "report.html"} and manifest["status"] == "complete"
    assert (run / "report.html").stat().st_size > 10_000 and not (run / "report_error.log").exists()


def test_bench_run_prints_the_table_when_only_the_report_fails(tmp_path: Path, capsys, provisioned,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(run_dir, *args, **kwargs):
        raise ReportError(f"report notebook failed for run directory {run_dir} in cell 7: UnboundLocalError: "
                          "cannot access local variable 'boxprops' where it is not associated with a value")

    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(bench.report.render, "render_report", broken)
    run = tmp_path / "copyref"

    assert main(["run", "--model", "copyref", "--preset", "smoke", "--out", str(run), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert "psnr ↑" in out and f"run directory: {run}" in out
    _assert_results_stand(run)
    assert f"rerun with `bench report {run}`" in err and "report: FAILED" in err
    assert "report_s" in json.loads((run / "manifest.json").read_text())["timings"]


def test_the_executed_notebook_is_kept_beside_the_report(tmp_path: Path) -> None:
    """It opens in JupyterLab with its outputs, to rerun with other parameters."""
    run = make_fake_run(tmp_path / "run")
    out = render_report(run)
    executed = nbformat.read(out.with_suffix(".ipynb"), as_version=4)
    params = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and str(run.resolve()) in params[0].source
    assert any(o.get("output_type") == "display_data" for c in executed.cells if c.cell_type == "code"
               for o in c.get("outputs", []))

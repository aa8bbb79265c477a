"""`bench compare` over N runs: pairing against a baseline at every metric level, and the HTML comparison
report with its reports folder (one render for the whole module, plus one failing notebook)."""
from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

import bench.report.render
from bench.cli import main
from bench.harness.compare import compare, compare_runs, floor_failures, format_comparisons, shared_samples
from bench.harness.compare_stats import NO_CI

try:
    from fake_run import make_fake_run
except ImportError:  # tests/ imported as a package
    from tests.fake_run import make_fake_run

EVIL = "<script>alert(1)</script>"
_ATTR = re.compile(r"""\b(?:src|href)\s*=\s*["']?\s*([^"'\s>]*)""", re.IGNORECASE)


def _runs(root: Path, models: tuple[str, ...] = ("julnet", "wav2lip", "dinet"), shifts=(0.0, 1.0, -0.5),
          clip_prefix: str = "") -> list[Path]:
    """Runs on the same frames (one fake run's, same data hash): psnr and lse_c shifted per run by a known
    amount plus paired noise; clips.parquet with lse_c; summary.json with a set-level fid and
    unc_frame_spearman."""
    base = make_fake_run(root / "base-src", seed=0)
    frames = pd.read_parquet(base / "frames.parquet")
    frames["clip_id"] = clip_prefix + frames["clip_id"]
    rng = np.random.default_rng(1)
    runs = []
    for i, (model, shift) in enumerate(zip(models, shifts)):
        run = make_fake_run(root / f"run{i}", seed=0, model=model)
        f = frames.copy()
        f["psnr"] = frames["psnr"] + shift + rng.normal(0, 0.05, len(f))
        f.to_parquet(run / "frames.parquet", index=False)
        clips = f.groupby("clip_id", as_index=False).agg(pose_bin=("pose_bin", "first"), yaw=("yaw", "mean"))
        clips["lse_c"] = 3.0 + shift + rng.normal(0, 0.02, len(clips))
        clips.to_parquet(run / "clips.parquet", index=False)
        summary = json.loads((run / "summary.json").read_text())
        summary["model"] = model
        summary["metrics"]["fid"] = {"value": 40.0 - 10 * shift, "ci95": None, "higher_is_better": False, "n": 10}
        summary["metrics"]["unc_frame_spearman"] = {"value": 0.5, "ci95": None, "higher_is_better": True, "n": 10}
        summary["metrics"]["lse_c"] = {"value": float(clips["lse_c"].mean()), "ci95": None,
                                       "higher_is_better": True, "n": len(clips)}
        (run / "summary.json").write_text(json.dumps(summary))
        samples = dict(np.load(run / "samples.npz"))
        samples["clip_id"] = np.asarray([clip_prefix + c for c in samples["clip_id"]])
        np.savez(run / "samples.npz", **samples)
        runs.append(run)
    shutil.rmtree(base)
    return runs


def _row(df: pd.DataFrame, run: str, metric: str, pose_bin: str = "all") -> pd.Series:
    sel = df[(df["run"] == run) & (df["metric"] == metric) & (df["pose_bin"] == pose_bin)]
    assert len(sel) == 1, (run, metric, pose_bin, len(sel))
    return sel.iloc[0]


def test_three_runs_pair_with_the_baseline_at_every_level(tmp_path: Path) -> None:
    runs = _runs(tmp_path)
    result = compare(runs, resamples=300, seed=0)
    diffs = result.diffs
    assert result.baseline.label == "julnet" and set(diffs["run"]) == {"wav2lip", "dinet"}
    up, down = _row(diffs, "wav2lip", "psnr"), _row(diffs, "dinet", "psnr")
    assert up["diff"] == pytest.approx(1.0, abs=0.05) and up.better == "B" and up.significant and up.ci_low > 0.9
    assert down["diff"] == pytest.approx(-0.5, abs=0.05) and down.better == "A" and down.significant
    assert up.level == "frame" and up.p_value < 0.01
    # clip level from clips.parquet
    lse = _row(diffs, "wav2lip", "lse_c")
    assert lse.level == "clip" and lse["diff"] == pytest.approx(1.0, abs=0.05) and lse.n_clips == 9
    assert math.isfinite(lse.ci_low) and lse.better == "B"
    assert set(diffs.loc[diffs.metric == "lse_c", "pose_bin"]) == {"all", "frontal", "moderate", "extreme"}
    # set level: FID from summary values only (no CI), the quality indicator recomputed with a bootstrap
    fid = _row(diffs, "wav2lip", "fid")
    assert fid.level == "set" and fid.basis == NO_CI and fid["diff"] == pytest.approx(-10.0)
    assert math.isnan(fid.ci_low) and math.isnan(fid.p_value) and fid.better == "B" and not fid.significant
    rho = _row(diffs, "dinet", "unc_frame_spearman")
    assert rho.level == "set" and rho.basis != NO_CI and rho.resamples > 0 and math.isfinite(rho.ci_low)
    text = format_comparisons(result)
    assert text.count("\nA = julnet (") == 2 and "fid ↓ [set]" in text and "no CI" in text and "lse_c ↑ [clip]" in text

    # another baseline flips the signs; the two-run API is that pair's rows
    flipped = compare(runs, baseline=runs[1], resamples=300, seed=0).diffs
    assert _row(flipped, "julnet", "psnr")["diff"] == pytest.approx(-up["diff"])
    pair = compare_runs(runs[0], runs[1], resamples=300, seed=0)
    assert pair.attrs["model_b"] == "wav2lip"
    assert pair[(pair.metric == "psnr") & (pair.pose_bin == "all")].iloc[0]["diff"] == pytest.approx(up["diff"])


def test_floors_and_shared_samples(tmp_path: Path) -> None:
    runs = _runs(tmp_path, models=("julnet", "copyref"), shifts=(0.0, 1.0))
    result = compare(runs, resamples=50)
    failures = floor_failures(result.runs)
    assert "psnr" in failures["julnet"] and failures["julnet"]["psnr"] == "copyref"
    assert "unc_frame_spearman" not in failures["julnet"]  # a floor's uncertainty is nothing to beat
    assert "copyref" not in failures
    samples = shared_samples(result.runs, limit=3)
    assert len(samples) == 3 and {s["clip_id"][:3] for s in samples} == {"fro", "mod", "ext"}
    assert all(p is not None for s in samples for p in s["preds"].values())


def test_two_runs_are_needed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = make_fake_run(tmp_path / "a")
    assert main(["compare", str(run)]) == 2
    assert "at least two run directories" in capsys.readouterr().err


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One `bench compare --report` of three runs, one model and every clip id carrying a <script> tag."""
    root = tmp_path_factory.mktemp("compare")
    runs = _runs(root, models=("julnet", "copyref", f"wav{EVIL}"), shifts=(0.0, 1.0, 0.5), clip_prefix=EVIL)
    reports = root / "reports"
    rc = main(["compare", *map(str, runs), "--report", "--reports", str(reports), "--resamples", "200"])
    assert rc == 0
    html_files = sorted(reports.glob("compare-*.html"))
    assert len(html_files) == 1
    return {"root": root, "runs": runs, "reports": reports, "html": html_files[0]}


def test_report_is_self_contained_and_complete(rendered: dict) -> None:
    out: Path = rendered["html"]
    html = out.read_text(encoding="utf-8")
    assert out.name.startswith("compare-julnet-copyref-wav_script_alert_1_script")
    assert out.with_suffix(".ipynb").is_file()
    remote = [v for v in _ATTR.findall(html) if re.match(r"(?:https?:)?//", v, re.IGNORECASE)]
    assert remote == [] and not re.search(r"<(script|link)\b[^>]*https?:", html, re.IGNORECASE)
    assert "<script" not in html.lower()  # the model name and the clip ids are escaped
    assert "wav&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for name in ("julnet", "copyref", "tb-runs", "tb-diffs", "Paired differences vs", "lse_c", "fid", "no CI", "▼"):
        assert name in html, name
    assert html.count('src="data:image/png;base64,') >= 3  # values and differences by pose bin, samples


def test_index_lists_the_report(rendered: dict) -> None:
    index = (rendered["reports"] / "index.html").read_text(encoding="utf-8")
    assert f'href="{rendered["html"].name}"' in index
    assert "julnet" in index and "smoke" in index and "psnr" in index and "<script" not in index.lower()
    meta = json.loads(rendered["html"].with_name(rendered["html"].stem + ".meta.json").read_text())
    assert meta["kind"] == "compare" and meta["models"][0] == "julnet" and meta["headline"]["julnet"]["psnr"] > 0


def test_failing_notebook_is_one_line_and_keeps_the_older_report(rendered: dict, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture) -> None:
    broken = tmp_path / "notebooks"
    broken.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("run_dirs = []\nbaseline = ''"),
                                         nbformat.v4.new_code_cell("raise RuntimeError('cell exploded')")])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nb, broken / "compare.ipynb")
    monkeypatch.setattr(bench.report.render, "NOTEBOOK_DIR", broken)
    out = tmp_path / "old.html"
    out.write_text("older report")
    runs = rendered["runs"][:2]
    assert main(["compare", *map(str, runs), "--out", str(out), "--resamples", "20"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "RuntimeError: cell exploded" in err
    assert out.read_text() == "older report" and not out.with_suffix(".ipynb").exists()
    assert not list(tmp_path.glob(".old.html*"))


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_screenshot_is_not_blank(rendered: dict, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "compare.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1300,3000", rendered["html"].resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (3000, 1300)
    ink = pixels < 200
    assert ink.mean() > 0.01 and pixels.std() > 10  # text, tables and figures, not a white page
    assert ink[:600].mean() > 0.005 and ink[2000:].mean() > 0.005  # the tables run down the page


@pytest.mark.slow
def test_reports_from_real_smoke_runs_of_two_models(tmp_path, monkeypatch, provisioned):
    """Fixture runs from `bench run` itself (julnet and the pasteref floor at the smoke preset): the compare
    report and julnet's calibration report render from them, and reports/index.html lists both."""
    from bench.cli import main

    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    runs = []
    for model in ("julnet", "pasteref"):
        runs.append(tmp_path / model)
        assert main(["run", "--model", model, "--preset", "smoke", "--out", str(runs[-1]), "--no-progress",
                     "--no-report"]) == 0
    reports = tmp_path / "reports"
    assert main(["compare", *map(str, runs), "--report", "--reports", str(reports), "--resamples", "200"]) == 0
    assert main(["report", str(runs[0]), "--notebook", "calibration", "--reports", str(reports)]) == 0
    compare_html = next(reports.glob("compare-*.html")).read_text(encoding="utf-8")
    calibration_html = next(reports.glob("calibration-*.html")).read_text(encoding="utf-8")
    assert "julnet" in compare_html and "pasteref" in compare_html and "data:image/png;base64" in compare_html
    assert "Could it be recalibrated?" in calibration_html and "val split" in calibration_html
    assert "calibration.npz (the pixel subsample) is not in this run directory" not in calibration_html
    assert "worst.npz is not in this run directory" not in calibration_html
    index = (reports / "index.html").read_text(encoding="utf-8")
    assert index.count("<tr>") == 3  # header + the two reports
    for html in (compare_html, calibration_html):
        assert not re.search(r'<(script|link)[^>]+(src|href)="https?://', html)

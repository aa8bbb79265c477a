"""`bench experiment`: declared experiments load, the claims engine reads runs right, a grid resumes."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.harness import experiment as exp
from bench.harness.claims import evaluate_claims
from bench.harness.experiment import Cell, ExperimentError, list_experiments, load_experiment


def test_every_declared_experiment_loads_and_names_real_runs_and_metrics():
    names = list_experiments()
    assert {"ablation", "plugin", "wildpose", "bins", "dynamics"} <= set(names)
    for name in names:
        experiment = load_experiment(name)  # _check: labels, kinds, metrics in the table, thresholds
        assert experiment.runs and experiment.claims and experiment.description
    ablation = load_experiment("ablation")
    assert [r.net["uncertainty"] for r in ablation.runs] == ["none", "lun1", "joint"]


def _declare(tmp_path: Path, monkeypatch, text: str, name: str = "toy") -> None:
    (tmp_path / "decl").mkdir(exist_ok=True)
    (tmp_path / "decl" / f"{name}.toml").write_text(text)
    monkeypatch.setattr(exp, "EXPERIMENT_DIR", tmp_path / "decl")


@pytest.mark.parametrize("body, message", [
    ('[[runs]]\nlabel="a"\nmodel="copyref"\n[[claims]]\ntext="t"\nkind="pair"\nbetter="a"\nthan="b"\nmetrics=["psnr"]',
     "names no run 'b'"),
    ('[[runs]]\nlabel="a"\nmodel="copyref"\n[[claims]]\ntext="t"\nkind="bins"\nrun="a"\nmetrics=["psnrr"]',
     "unknown metric 'psnrr'"),
    ('[[runs]]\nlabel="a"\nmodel="copyref"\n[[claims]]\ntext="t"\nkind="threshold"\nrun="a"\nmetrics=["aurg"]',
     "no threshold for 'aurg'"),
    ('[[runs]]\nlabel="a"\nmodel="copyref"\n', "not a valid experiment"),
])
def test_a_broken_declaration_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys, body, message):
    _declare(tmp_path, monkeypatch, body)
    assert main(["experiment", "toy", "--preset", "smoke", "--seeds", "2", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err and "toy.toml" in err


def test_one_seed_is_refused(tmp_path, capsys):
    assert main(["experiment", "ablation", "--seeds", "1", "--out", str(tmp_path / "o")]) == 2
    assert "never comes from a single seed" in capsys.readouterr().err


def _fake_run(run_dir: Path, psnr_shift: float, seed: int) -> Path:
    """frames.parquet with 6 clips x 5 frames in two pose bins; psnr = base + shift; summary with fid."""
    rng = np.random.default_rng(100 + seed)  # both sides of a pair share the seed's base values
    clips = np.repeat([f"c{i}" for i in range(6)], 5)
    base = 30 + rng.normal(0, 1, clips.size)
    frames = pd.DataFrame({"clip_id": clips, "pose_bin": np.where(np.arange(clips.size) < 15, "frontal", "extreme"),
                           "psnr": base + psnr_shift + rng.normal(0, 0.05, clips.size),
                           "err_mean": np.where(np.arange(clips.size) < 15, 0.02, 0.05) + rng.normal(0, 0.002, clips.size)})
    run_dir.mkdir(parents=True)
    frames.to_parquet(run_dir / "frames.parquet")
    summary = {"metrics": {"psnr": {"value": float(frames.psnr.mean())}, "fid": {"value": 10.0 - psnr_shift + seed}},
               "by_pose": {}}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def test_claims_read_paired_clips_bins_and_seed_level_values(tmp_path, monkeypatch):
    _declare(tmp_path, monkeypatch, """
description = "toy"
[[runs]]
label = "a"
model = "copyref"
[[runs]]
label = "b"
model = "copyref"
[[claims]]
text = "b beats a"
kind = "pair"
better = "b"
than = "a"
metrics = ["psnr", "fid"]
[[claims]]
text = "a beats b"
kind = "pair"
better = "a"
than = "b"
metrics = ["psnr"]
[[claims]]
text = "error rises at extreme poses in a"
kind = "bins"
run = "a"
higher = "extreme"
than = "frontal"
metrics = ["err_mean"]
""")
    experiment = load_experiment("toy")
    cells = [Cell(label, seed, None, _fake_run(tmp_path / f"{label}{seed}", 1.0 if label == "b" else 0.0, seed), "k")
             for seed in range(3) for label in ("a", "b")]
    result = evaluate_claims(experiment, cells)
    tests = {(t["claim"], t["metric"]): t for t in result["tests"]}
    psnr = tests[("b beats a", "psnr")]
    assert psnr["effect"] == pytest.approx(1.0, abs=0.05) and psnr["verdict"] == "supported"
    assert psnr["ci95"][0] > 0.9 and len(psnr["per_seed"]) == 3 and "clip bootstrap" in psnr["method"]
    fid = tests[("b beats a", "fid")]  # no per-clip values: per-seed differences, oriented (lower fid is better)
    assert fid["effect"] == pytest.approx(1.0) and fid["method"].startswith("t over 3 seeds")
    assert tests[("a beats b", "psnr")]["verdict"] == "contradicted"
    bins = tests[("error rises at extreme poses in a", "err_mean")]
    assert bins["effect"] == pytest.approx(0.03, abs=0.005) and bins["verdict"] == "supported"
    assert [c["verdict"] for c in result["claims"]] == ["supported", "contradicted", "supported"]
    p = [t["p_value"] for t in result["tests"]]
    assert all(h >= raw for h, raw in zip([t["p_holm"] for t in result["tests"]], p))


def test_a_toy_grid_runs_then_resumes_without_redoing_finished_runs(tmp_path, monkeypatch, capsys, provisioned):
    """copyref and pasteref need no training: the grid is two runs x two seeds of evaluation only."""
    _declare(tmp_path, monkeypatch, """
description = "the paste floor against the copy floor"
[[runs]]
label = "copy"
model = "copyref"
[[runs]]
label = "paste"
model = "pasteref"
[[claims]]
text = "pasting the reference's lower half beats copying it"
kind = "pair"
better = "paste"
than = "copy"
metrics = ["psnr", "ssim"]
""")
    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "toy"
    argv = ["experiment", "toy", "--preset", "smoke", "--seeds", "2", "--out", str(out)]
    assert main(argv + ["--no-report"]) == 0
    printed = capsys.readouterr().out
    assert "report:" not in printed and not (tmp_path / "reports").exists()
    result = json.loads((out / "experiment.json").read_text())
    assert [r["status"] for r in result["runs"]] == ["ran"] * 4
    assert {t["metric"] for t in result["tests"]} == {"psnr", "ssim"}
    assert all(t["effect"] is not None and len(t["per_seed"]) == 2 for t in result["tests"])
    assert "pasting the reference's lower half beats copying it" in printed and (out / "claims.md").is_file()

    manifests = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/manifest.json")}
    (out / "runs" / "paste-seed1" / "experiment-cell.json").unlink()  # as if killed before it was recorded
    assert main(argv + ["--reports", str(tmp_path / "reports")]) == 0  # the report is rendered by default
    result = json.loads((out / "experiment.json").read_text())
    assert [r["status"] for r in result["runs"]] == ["reused", "reused", "reused", "ran"]
    report = next((tmp_path / "reports").glob("experiment-*.html")).read_text(encoding="utf-8")
    assert "Claims" in report and "pasting the reference's lower half beats copying it" in report
    assert "copyref" in report and "pasteref" in report
    assert "experiment-" in (tmp_path / "reports" / "index.html").read_text()
    for path, mtime in manifests.items():
        if "paste-seed1" not in str(path):
            assert path.stat().st_mtime_ns == mtime  # finished runs are never redone


@pytest.mark.experiments
@pytest.mark.parametrize("name", ["ablation", "plugin", "wildpose", "bins", "dynamics"])
def test_every_declared_experiment_runs_at_the_smoke_preset(name, tmp_path, monkeypatch, provisioned):
    """CI runs these (`pytest -m experiments`, after the default run): each experiment's whole grid at the
    smoke preset with two seeds, and a verdict for every claim."""
    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / name
    reports = tmp_path / "reports"
    assert main(["experiment", name, "--preset", "smoke", "--seeds", "2", "--out", str(out), "--reports", str(reports)]) == 0
    result = json.loads((out / "experiment.json").read_text())
    experiment = load_experiment(name)
    # the comparison report: the first seed's runs side by side, or both seeds' runs for a one-run experiment
    report = next(reports.glob("experiment-*.html")).read_text(encoding="utf-8")
    assert "Claims" in report and experiment.claims[0].text in report
    assert all(r.model in report for r in experiment.runs)
    if len(experiment.runs) == 1:  # two runs of one model are labelled by their directories
        assert f"{experiment.runs[0].label}-seed1" in report
    assert len(result["runs"]) == 2 * len(experiment.runs) and {r["status"] for r in result["runs"]} == {"ran"}
    assert [c["claim"] for c in result["claims"]] == [c.text for c in experiment.claims]
    verdicts = {"supported", "contradicted", "inconclusive", "untestable"}
    assert all(t["verdict"] in verdicts for t in result["tests"])
    partial = ("mixed (", "supported on ", "contradicted on ")  # some metrics decided, see _claim_verdict
    assert all(c["verdict"] in verdicts or c["verdict"].startswith(partial) for c in result["claims"])
    # metrics the smoke preset computes (it skips FID) are tested, with one value per seed
    tested = [t for t in result["tests"] if t["metric"] != "fid"]
    assert all(t["effect"] is not None and len(t["per_seed"]) == 2 for t in tested), \
        [t for t in tested if t["effect"] is None]


def _fake_dynamics_run(run_dir: Path, seed: int, lift: float) -> Path:
    """6 clips x 10 frames: clips c0-c2 show an occluder on frames 3-6, c3-c5 a lighting dip on frames 4-7.
    u rises by ``lift`` on the occluder's frames and pixels; nothing changes on the lighting frames."""
    rng = np.random.default_rng(200 + seed)
    rows = []
    for c in range(6):
        bit, window = (4, range(3, 7)) if c < 3 else (2, range(4, 8))
        for f in range(10):
            hit = f in window
            rise = lift if hit and bit == 4 else 0.0
            rows.append({"clip_id": f"c{c}", "frame": f, "pose_bin": "frontal", "affected": bit if hit else 0,
                         "unc_mean": 1.0 + rise + rng.normal(0, 0.01), "err_mean": 0.02 + rng.normal(0, 0.001),
                         "unc_event_lift": (rise + rng.normal(0, 0.01)) if hit else np.nan})
    run_dir.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(run_dir / "frames.parquet")
    (run_dir / "summary.json").write_text(json.dumps({"metrics": {}, "by_pose": {}}))
    return run_dir


def test_scene_event_claims_pair_each_clips_frames_and_filter_by_condition(tmp_path, monkeypatch):
    _declare(tmp_path, monkeypatch, """
description = "toy dynamics"
synth = { conditions = ["lighting", "occluder"] }
[[runs]]
label = "m"
model = "copyref"
[[claims]]
text = "u rises on occluded frames"
kind = "affected"
run = "m"
condition = "occluder"
metrics = ["unc_mean"]
[[claims]]
text = "u rises on lighting frames"
kind = "affected"
run = "m"
condition = "lighting"
metrics = ["unc_mean"]
[[claims]]
text = "u is higher on the occluder's pixels"
kind = "threshold"
run = "m"
condition = "occluder"
above = { unc_event_lift = 0.0 }
metrics = ["unc_event_lift"]
""")
    experiment = load_experiment("toy")
    assert experiment.synth == {"conditions": ["lighting", "occluder"]}
    config = exp.run_config(experiment.runs[0], "smoke", "synth", 0, experiment.synth)
    assert config.data.synth.conditions == ("lighting", "occluder")
    cells = [Cell("m", seed, None, _fake_dynamics_run(tmp_path / f"m{seed}", seed, 0.5), "k") for seed in range(3)]
    tests = {t["claim"]: t for t in evaluate_claims(experiment, cells)["tests"]}
    occluded = tests["u rises on occluded frames"]
    assert occluded["effect"] == pytest.approx(0.5, abs=0.02) and occluded["verdict"] == "supported"
    assert tests["u rises on lighting frames"]["verdict"] == "inconclusive"
    assert abs(tests["u rises on lighting frames"]["effect"]) < 0.02
    pixels = tests["u is higher on the occluder's pixels"]
    assert pixels["effect"] == pytest.approx(0.5, abs=0.02) and pixels["verdict"] == "supported"


def test_an_experiment_that_configures_synthetic_data_refuses_other_data(tmp_path, capsys):
    assert main(["experiment", "dynamics", "--preset", "smoke", "--seeds", "2", "--data", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "dynamics.toml" in err and "synthetic data" in err


def test_a_claim_decided_one_way_on_some_metrics_is_not_called_mixed():
    from bench.harness.claims import _claim_verdict

    assert _claim_verdict(["contradicted"] * 5 + ["inconclusive"]) == \
        "contradicted on 5 of 6 metrics, the rest inconclusive"
    assert _claim_verdict(["supported", "inconclusive"]) == "supported on 1 of 2 metrics, the rest inconclusive"
    assert _claim_verdict(["supported", "contradicted", "inconclusive"]).startswith("mixed (1 of 3")
    assert _claim_verdict(["supported", "supported"]) == "supported"
    assert _claim_verdict(["inconclusive", "untestable"]) == "inconclusive"

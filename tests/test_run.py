"""End to end: `bench run --preset smoke` writes every file of the run-directory schema."""
import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from bench.cli import main
from bench.config import POSE_BINS, pose_bin
from bench.harness.rundir import RUN_FILES

BINS = [name for name, _, _ in POSE_BINS]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def smoke_run(cache, provisioned, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "julnet-smoke"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TALKBENCH_CACHE", str(cache))
        code = main(["run", "--model", "julnet", "--preset", "smoke", "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_smoke_run_writes_the_whole_schema(smoke_run):
    for name in RUN_FILES:
        assert (smoke_run / name).is_file(), name
    manifest = json.loads((smoke_run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["config"]["preset"] == "smoke" and manifest["seed"] == 0
    assert manifest["checkpoint"]["sha256"] and len(manifest["data"]["hash"]) == 64
    assert {"torch", "numpy", "python"} <= set(manifest["versions"])
    assert {"data_s", "train_s", "eval_s", "report_s"} <= set(manifest["timings"])


def test_summary_follows_the_schema(smoke_run):
    summary = json.loads((smoke_run / "summary.json").read_text())
    assert summary["model"] == "julnet"
    assert {"psnr", "ssim", "lpips", "unc_spearman", "unc_pearson", "ause", "aurg", "nll", "crps", "hist_kl",
            "miscal_area", "rms_cal_error", "fail_auroc", "fail_auprc", "psnr_r2", "unc_frame_spearman"} \
        <= set(summary["metrics"])
    assert set(summary["by_pose"]) == set(BINS)
    for block in [summary["metrics"], *summary["by_pose"].values()]:
        for entry in block.values():
            assert set(entry) == {"value", "ci95", "higher_is_better", "n"}
    psnr = summary["metrics"]["psnr"]
    assert 5 < psnr["value"] < 60 and psnr["higher_is_better"] is True
    low, high = psnr["ci95"]
    assert low <= psnr["value"] <= high
    assert summary["metrics"]["ause"]["higher_is_better"] is False
    assert summary["floor"]["model"] == "copyref"
    assert {"lse_c_local", "lse_d_local"} <= set(summary["metrics"]) and "lse_local" in summary["notes"]
    # the expert's own ceiling and floor on the same clips, as reference rows with no direction
    for name in ("lse_c_local_gt", "lse_c_local_shifted"):
        entry = summary["metrics"][name]
        assert entry["higher_is_better"] is None and entry["n"] == summary["metrics"]["lse_c_local"]["n"]
    lmd = summary["metrics"]["lmd"]  # the smoke preset's 32 px frames still hold detectable faces
    assert lmd["n"] > 0 and 0.0 < lmd["value"] < 1.0 and "lmd" in summary["notes"]
    assert all("lmd" in block for block in summary["by_pose"].values())
    clips = pd.read_parquet(smoke_run / "clips.parquet")
    assert len(clips) == len(set(pd.read_parquet(smoke_run / "frames.parquet")["clip_id"]))
    assert summary["metrics"]["lse_c_local"]["n"] == len(clips)
    report = (smoke_run / "report.html").read_text()
    assert "not comparable with published" in report
    # the report shows the ceiling and floor as rows beside lse_c_local, not folded away under it
    unfolded = re.sub(r"<details.*?</details>", "", report[report.index("tb-table tb-overall"):], flags=re.S)
    unfolded = unfolded[:unfolded.index("</table>")]  # the overall table, its folded rows taken out
    for name in ("lse_c_local_gt", "lse_c_local_shifted"):
        assert f">{name}</span>" in unfolded


def test_frames_table_has_one_row_per_test_frame_and_consistent_pose_bins(smoke_run):
    frames = pd.read_parquet(smoke_run / "frames.parquet")
    manifest = json.loads((smoke_run / "manifest.json").read_text())
    data = json.loads((__import__("pathlib").Path(manifest["data"]["root"]) / "manifest.json").read_text())
    expected = sum(c["n_frames"] for c in data["clips"] if c["split"] == "test")
    assert len(frames) == expected
    assert not frames.duplicated(["clip_id", "frame"]).any()
    assert (frames["pose_bin"] == frames["yaw"].abs().map(pose_bin)).all()
    assert set(frames["pose_bin"]) == set(BINS)
    summary = json.loads((smoke_run / "summary.json").read_text())
    assert summary["metrics"]["psnr"]["n"] == len(frames)
    assert summary["metrics"]["psnr"]["value"] == pytest.approx(frames["psnr"].mean())


def test_curves_and_samples(smoke_run):
    curves = np.load(smoke_run / "curves.npz")
    assert curves["fraction"][0] == 0 and len(curves["fraction"]) == 100
    assert np.all(curves["oracle_all"] <= curves["model_all"] + 1e-9)
    assert curves["coverage_all"].shape == (99,) and np.all(np.diff(curves["coverage_all"]) >= 0)
    samples = np.load(smoke_run / "samples.npz")
    assert samples["gt"].dtype == np.uint8 and samples["gt"].shape == samples["pred"].shape
    assert samples["error"].shape == samples["uncertainty"].shape == samples["gt"].shape[:3]


def test_second_run_reuses_the_cached_checkpoint(smoke_run, cache, provisioned, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TALKBENCH_CACHE", str(cache))
    out = tmp_path / "again"
    assert main(["run", "--model", "julnet", "--preset", "smoke", "--out", str(out), "--no-progress",
                 "--no-report"]) == 0
    first = json.loads((smoke_run / "manifest.json").read_text())
    second = json.loads((out / "manifest.json").read_text())
    assert second["checkpoint"]["source"] == "cache"
    assert second["checkpoint"]["sha256"] == first["checkpoint"]["sha256"]
    assert json.loads((out / "summary.json").read_text())["metrics"] == \
        json.loads((smoke_run / "summary.json").read_text())["metrics"]


def test_bad_inputs_give_one_line_and_exit_2(smoke_run, cache, provisioned, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TALKBENCH_CACHE", str(cache))
    before = (smoke_run / "summary.json").read_bytes()
    assert main(["run", "--model", "julnet", "--preset", "smoke", "--out", str(smoke_run)]) == 2
    assert (smoke_run / "summary.json").read_bytes() == before  # nothing overwritten
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty" in err[0] and str(smoke_run) in err[0]

    assert main(["run", "--model", "julnt", "--preset", "smoke", "--out", str(tmp_path / "x")]) == 2
    assert "Did you mean 'julnet'" in capsys.readouterr().err

    empty = tmp_path / "nodata"
    empty.mkdir()
    assert main(["run", "--model", "copyref", "--preset", "smoke", "--data", str(empty),
                 "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "manifest.json" in err[0] and "Traceback" not in err[0]

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    assert main(["run", "--model", "julnet", "--preset", "smoke", "--checkpoint", str(bad),
                 "--out", str(tmp_path / "z")]) == 2
    assert "bad.pt" in capsys.readouterr().err


def test_missing_weights_fail_fast_naming_the_fetch_command(cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TALKBENCH_CACHE", str(cache))
    monkeypatch.setenv("TALKBENCH_WEIGHTS", str(tmp_path / "empty"))
    assert main(["run", "--model", "julnet", "--preset", "smoke", "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bench weights fetch" in err[0]
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("model,mode,losses", [("julnet", "lun1", []), ("dinet", "joint", []),
                                               ("wav2lip", "joint", ["--gan-weight", "1", "--sync-weight", "0.1"])])
def test_every_generator_and_mode_reports_calibration_per_pose_bin(model, mode, losses, cache, provisioned, tmp_path,
                                                                   monkeypatch):
    monkeypatch.setenv("TALKBENCH_CACHE", str(cache))
    out = tmp_path / f"{model}-{mode}"
    assert main(["run", "--model", model, "--uncertainty", mode, "--preset", "smoke", "--out", str(out),
                 "--no-progress", "--no-report", *losses]) == 0
    summary = json.loads((out / "summary.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["net"]["uncertainty"] == mode and summary["model"] == model
    if losses:  # bench run trained the sync expert first and handed it to the generator's training
        expert = manifest["sync_expert"]["path"]
        assert manifest["config"]["train"]["sync_expert"] == expert and manifest["config"]["net"]["gan_weight"] == 1
        final = torch.load(manifest["checkpoint"]["path"], weights_only=True)
        assert {"gan_g", "gan_d", "sync"} <= set(final["final_logs"]) and final["critics"]["discriminator"]
    for block in [summary["metrics"], *summary["by_pose"].values()]:
        for name in ("ause", "nll", "miscal_area", "unc_spearman", "fail_auroc", "hist_kl"):
            assert name in block
    assert summary["metrics"]["ause"]["ci95"] is not None


def test_bench_run_refuses_a_model_that_is_not_a_generator(tmp_path, capsys):
    """The sync expert declares kind "sync_expert": `bench run` says so in one line before any work."""
    assert main(["run", "--model", "syncnet", "--preset", "smoke", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is not a generator" in err and "bench train --model syncnet" in err
    assert not (tmp_path / "run").exists()

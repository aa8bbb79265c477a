"""Official LSE in `bench run`: syncnet_python's crop rule, the face track, and the run wiring (random weights)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from bench.metrics import syncnet_official as so
from bench.weights import store as weights
from bench.metrics.lse_official import CROP_SIZE, PAD_VALUE, face_boxes, smooth_track, syncnet_crops


def _coordinate_frame(height: int = 120, width: int = 100) -> np.ndarray:
    """R = x, G = y: every pixel says where it came from."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs, ys, np.zeros_like(xs)], axis=-1).astype(np.uint8)[None]


def test_crop_follows_syncnet_pythons_rule():
    cx, cy, s = 50.0, 40.0, 20.0
    crop = syncnet_crops(_coordinate_frame(), np.array([[cx, cy, s]]))[0]
    assert crop.shape == (CROP_SIZE, CROP_SIZE, 3)
    # rows cy - s ... cy + 1.8 s, columns cx - 1.4 s ... cx + 1.4 s of the frame
    scale_y, scale_x = (2.8 * s) / CROP_SIZE, (2.8 * s) / CROP_SIZE
    assert abs(int(crop[0, 0, 0]) - (cx - 1.4 * s + scale_x / 2 - 0.5)) <= 1
    assert abs(int(crop[0, 0, 1]) - (cy - s + scale_y / 2 - 0.5)) <= 1
    assert abs(int(crop[-1, -1, 0]) - (cx + 1.4 * s - scale_x / 2 - 0.5)) <= 1
    assert abs(int(crop[-1, -1, 1]) - (cy + 1.8 * s - scale_y / 2 - 0.5)) <= 1
    # a face near the edge: the crop runs into the grey padding
    edge = syncnet_crops(_coordinate_frame(), np.array([[5.0, 5.0, 20.0]]))[0]
    assert np.all(edge[0, 0] == PAD_VALUE)


def test_track_fills_gaps_from_the_nearest_face_and_smooths_outliers():
    boxes = np.tile([[10.0, 20.0, 50.0, 70.0]], (15, 1))  # centre (30, 45), half-size 25
    boxes[3] = np.nan  # no face here
    boxes[7] = [60.0, 20.0, 100.0, 70.0]  # one jumpy detection
    track = smooth_track(boxes)
    np.testing.assert_allclose(track, np.tile([[30.0, 45.0, 25.0]], (15, 1)))
    assert smooth_track(np.full((5, 4), np.nan)) is None
    points = np.full((2, 468, 2), np.nan)
    points[1] = np.random.default_rng(0).uniform(5, 9, (468, 2))
    boxes = face_boxes(points)
    assert np.isnan(boxes[0]).all() and np.allclose(boxes[1], [*points[1].min(0), *points[1].max(0)])


@pytest.fixture(scope="module")
def official_weights(provisioned, tmp_path_factory):
    """A weights cache with the metric networks plus a randomly initialised file in the official form."""
    pytest.importorskip("mediapipe", reason="face boxes need the landmarks extra")
    root = tmp_path_factory.mktemp("official")
    cache = root / "weights"
    shutil.copytree(provisioned[0], cache)
    torch.manual_seed(0)
    state = {k: v for k, v in so.OfficialSyncNet().state_dict().items() if not k.endswith("num_batches_tracked")}
    source = root / "syncnet_v2.model"
    torch.save(state, source, _use_new_zipfile_serialization=False)
    weights.fetch(["syncnet"], {"syncnet": source}, directory=cache)
    return cache


def test_bench_run_reports_official_lse_when_the_weights_are_provisioned(official_weights, tmp_path, monkeypatch):
    from bench.cli import main

    monkeypatch.setenv("TALKBENCH_WEIGHTS", str(official_weights))
    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    assert main(["run", "--model", "pasteref", "--preset", "smoke", "--out", str(out), "--no-progress",
                 "--no-report"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    clips = pd.read_parquet(out / "clips.parquet")
    assert manifest["sync"]["official"]["sha256"] == weights.file_sha256(weights.where("syncnet", official_weights))
    assert {"lse_c", "lse_d", "av_offset", "lse_c_local"} <= set(clips.columns)
    for name in ("lse_c", "lse_d"):
        entry = summary["metrics"][name]
        assert entry["n"] == len(clips) and np.isfinite(entry["value"])
        assert entry["value"] == pytest.approx(clips[name].mean())
    assert summary["metrics"]["lse_d"]["higher_is_better"] is False
    assert "S3FD" in summary["notes"]["lse"] and "lse_local" in summary["notes"]
    assert "lse_c" not in summary["floor"]["metrics"]  # the floor skips the official network


@pytest.fixture(scope="module")
def local_expert(tmp_path_factory):
    from train_fixtures import train_sync_expert

    return train_sync_expert(tmp_path_factory.mktemp("local_expert"))


def test_bench_score_reports_official_and_local_lse(official_weights, local_expert, tmp_path, monkeypatch):
    from bench.config import EvalConfig
    from bench.harness.rundir import read_summary
    from bench.harness.external import score
    from bench.data.video import iter_frames
    from test_score import CLIP_A, write_mp4

    if not CLIP_A.is_file():
        pytest.skip("real clips not mounted")
    monkeypatch.setenv("TALKBENCH_WEIGHTS", str(official_weights))
    frames = np.stack([f for _, f in zip(range(30), iter_frames(CLIP_A))])
    gt = write_mp4(tmp_path / "gt" / "a.mp4", frames)
    pred = write_mp4(tmp_path / "pred" / "a.mp4", frames[:, :, ::-1].copy())  # mirrored: a different output
    config = EvalConfig(bootstrap=50, networks=())
    run = score(pred, gt, tmp_path / "run", audio=CLIP_A, config=config, report=None, progress=False,
                sync_expert=local_expert)
    summary = read_summary(run)
    manifest = json.loads((run / "manifest.json").read_text())
    for name in ("lse_c", "lse_d", "lse_c_local", "lse_d_local"):
        assert summary["metrics"][name]["n"] == 1 and np.isfinite(summary["metrics"][name]["value"]), name
    assert {"lse", "lse_local"} <= set(summary["notes"])
    assert manifest["sync"]["official"]["sha256"] and manifest["sync"]["local"]["path"] == str(local_expert)
    assert manifest["sync"]["skipped"] == {}
    # the local expert sees the same frames either way, so the mirrored video scores differently from the original
    same = read_summary(score(gt, gt, tmp_path / "same", audio=CLIP_A, config=config, report=None,
                              progress=False, sync_expert=local_expert))
    assert same["metrics"]["lse_d_local"]["value"] != summary["metrics"]["lse_d_local"]["value"]

    # a 20 fps video is resampled to 25 fps first (and the manifest says so); no audio at all: no LSE
    slow = write_mp4(tmp_path / "slow" / "b.mp4", frames[:20], fps=20)
    odd = score(slow, slow, tmp_path / "odd", audio=CLIP_A, config=config, report=None, progress=False,
                sync_expert=local_expert)
    sync = json.loads((odd / "manifest.json").read_text())["sync"]
    assert sync["resampled_from_fps"] == {"b": pytest.approx(20.0)} and sync["skipped"] == {}
    assert read_summary(odd)["metrics"]["lse_c"]["n"] == 1
    silent = score(slow, slow, tmp_path / "silent", config=config, report=None, progress=False,
                   sync_expert=local_expert)
    sync = json.loads((silent / "manifest.json").read_text())["sync"]
    assert "no audio" in sync["skipped"]["b"] and "lse_c" not in read_summary(silent)["metrics"]


def test_resampling_to_25_fps_picks_the_nearest_frame_in_time():
    from bench.data.video import resample_frames

    assert [int(f) for f in resample_frames(iter(range(10)), 10, 50.0)] == [0, 2, 4, 6, 8]
    assert [int(f) for f in resample_frames(iter(range(8)), 8, 20.0)] == [0, 1, 2, 2, 3, 4, 5, 6, 6, 7]
    assert list(resample_frames(iter(range(4)), 4, 25.0)) == [0, 1, 2, 3]


def test_registering_a_file_that_is_not_the_network_fails_in_one_line(official_weights, tmp_path, capsys,
                                                                      monkeypatch):
    from bench.cli import main

    state = weights.load_state("syncnet", official_weights)  # the registered file reads back as the network
    assert state["netfclip.3.weight"].shape == (1024, 512)
    monkeypatch.setenv("TALKBENCH_WEIGHTS", str(tmp_path / "w"))
    bogus = tmp_path / "syncnet_v2.model"
    torch.save({"conv.weight": torch.zeros(3)}, bogus)
    assert main(["weights", "fetch", "--from-file", f"syncnet={bogus}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bogus) in err[0]
    assert not weights.provisioned("syncnet", tmp_path / "w")

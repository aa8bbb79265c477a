"""The scorer's face-crop metrics (psnr_face, ssim_face, lpips_face, cpbd, csim) and FVD, wired into FrameScorer,
its saved states, summary.json, `bench run`'s clips and `bench score`'s ground-truth path; and scoring without
ground truth (only the reference-free metrics; the report still renders).

Known answers: the face columns equal scikit-image / bench.metrics.cpbd / LPIPS on the crop; csim with random
ArcFace weights in the official layout is 1 for a frame against itself and clearly lower for another person;
FVD of a set against itself is ~0 and grows when the frames are shuffled in time; K per-clip states merged equal
one scorer.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bench.config import EvalConfig
from bench.harness.scorer import FrameScorer, summarise
from bench.harness.scorer_face import LPIPS_SIZE
from bench.harness.scorer_state import export_state, merge_state
from bench.metrics import cpbd, fvd, identity

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
CONFIG = EvalConfig(bootstrap=20, samples_per_bin=1, networks=())
GT_METRICS = {"psnr", "ssim", "psnr_mouth", "ssim_mouth", "psnr_face", "ssim_face", "lpips", "lpips_face", "lmd",
              "err_mean", "ause", "nll", "miscal_area"}


class FakeLPIPS(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a - b).abs().mean((1, 2, 3)) * self.weight


class FakeInception(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        pooled = F.adaptive_avg_pool2d(images, (2, 2)).flatten(1)
        return [pooled[:, :, None, None] * self.scale]


class TinyI3D(torch.nn.Module):
    """Stands in for the I3D (same call: B x 3 x 16 x 224 x 224 -> (logits, pool)); a 3-D conv sees time order."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv3d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.relu(self.conv(F.avg_pool3d(x, (1, 28, 28)))).mean((3, 4)).flatten(1)  # B x 56
        return features, features


def _real_frames(index: int, count: int, start: int = 0) -> np.ndarray:
    """``count`` frames (T x H x W x 3 uint8) of the index-th real clip."""
    from bench.data.video import iter_frames

    paths = sorted(REAL.glob("pc-avs*.mp4"))
    if len(paths) <= index:
        pytest.skip(f"needs real clips in {REAL}")
    out = []
    for i, frame in enumerate(iter_frames(paths[index])):
        if i >= start:
            out.append(frame)
        if len(out) == count:
            break
    return np.stack(out)


def _nchw(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()


def _meta(clip: str, frames: range, boxes: list | None = None, yaw: float = 5.0) -> list[dict]:
    return [{"clip_id": clip, "frame": t, "yaw": yaw, **({"face_box": boxes[i]} if boxes is not None else {})}
            for i, t in enumerate(frames)]


def _random_arcface(tmp_path: Path, calibrate: np.ndarray) -> torch.nn.Module:
    """Random IResNet-18 weights in the official layout, BatchNorm statistics from ``calibrate`` (crops), saved and
    read back by ``load_arcface`` (the user-file path)."""
    torch.manual_seed(0)
    model = identity.IResNet(18)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0
    with torch.no_grad():
        model.train()(identity.preprocess(calibrate))
    torch.save(model.state_dict(), tmp_path / "backbone.pth")
    return identity.load_arcface(tmp_path / "backbone.pth")


# ------------------------------------------------------------------------------------------ face columns

def test_face_columns_equal_the_references_on_the_crop():
    rng = np.random.default_rng(0)
    smooth = torch.nn.functional.avg_pool2d(torch.from_numpy(rng.integers(0, 256, (3, 3, 104, 104)).astype(np.float32)),
                                            5, 1)  # 100 x 100, edges for CPBD
    gt = smooth.round()
    pred = (gt + torch.from_numpy(rng.normal(0, 8, gt.shape).astype(np.float32))).clamp(0, 255).round()
    boxes = [(10, 12, 90, 88), (5, 5, 40, 40), None]  # 80 x 76: CPBD has a block; 35 px: none; no face
    scorer = FrameScorer(CONFIG, lpips_model=FakeLPIPS())
    scorer.update(pred, gt, None, None, _meta("c", range(3), boxes))
    frames = scorer.result().frames

    for i, (x0, y0, x1, y1) in enumerate(boxes[:2]):
        p = pred[i].permute(1, 2, 0).numpy().astype(np.uint8)[y0:y1, x0:x1]
        g = gt[i].permute(1, 2, 0).numpy().astype(np.uint8)[y0:y1, x0:x1]
        assert frames["psnr_face"][i] == pytest.approx(peak_signal_noise_ratio(g, p, data_range=255), abs=1e-6)
        assert frames["ssim_face"][i] == pytest.approx(structural_similarity(
            g, p, channel_axis=2, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False),
            abs=1e-6)
        resized = [F.interpolate(torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255, size=(LPIPS_SIZE,) * 2,
                                 mode="bilinear", align_corners=False, antialias=True).clamp(0, 1) for a in (p, g)]
        # lpips_distance feeds the network [-1, 1]: the stand-in's mean |a - b| doubles
        assert frames["lpips_face"][i] == pytest.approx(2 * float((resized[0] - resized[1]).abs().mean()), rel=1e-5)
    x0, y0, x1, y1 = boxes[0]
    crop = pred[0].permute(1, 2, 0).numpy().astype(np.uint8)[y0:y1, x0:x1]
    assert frames["cpbd"][0] == cpbd.cpbd(cpbd.to_gray(crop)) and 0 < frames["cpbd"][0] <= 1
    assert math.isnan(frames["cpbd"][1])  # under one 64 x 64 block: not measurable
    assert frames.loc[2, ["psnr_face", "ssim_face", "lpips_face", "cpbd"]].isna().all()  # no face box
    assert frames["psnr_face"][0] != frames["psnr"][0]

    # no box anywhere: the face columns are absent (as psnr_mouth without mouth boxes), not NaN
    plain = FrameScorer(CONFIG, lpips_model=FakeLPIPS())
    plain.update(pred, gt, None, None, _meta("c", range(3)))
    assert not {"psnr_face", "ssim_face", "lpips_face", "cpbd", "csim"} & set(plain.result().frames)


def test_identical_face_crops_cap_psnr_face_in_the_summary():
    gt = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (2, 3, 40, 40)).astype(np.float32))
    scorer = FrameScorer(CONFIG)
    scorer.update(gt.clone(), gt, None, None, _meta("c", range(2), [(4, 4, 30, 30)] * 2))
    summary = summarise(scorer.result(), "m", CONFIG, 0)
    assert summary["metrics"]["psnr_face"]["value"] == 100.0 and summary["metrics"]["ssim_face"]["value"] == 1.0


def test_csim_through_the_scorer_with_random_arcface_weights(tmp_path):
    a = _real_frames(0, 2, start=0)
    b = _real_frames(1, 1)
    box = (40, 10, 184, 154)  # the upper middle, where these clips' faces are (224 x 224 frames)
    crops = np.stack([f[box[1]:box[3], box[0]:box[2]] for f in (*a, *b)])
    model = _random_arcface(tmp_path, crops)
    scorer = FrameScorer(CONFIG, identity_model=model)
    scorer.set_source(crops[:1])  # the source identity: clip a's first face
    frames = np.stack([a[0], a[1], b[0]])
    scorer.update(_nchw(frames), _nchw(frames), None, None, _meta("c", range(3), [box] * 3))
    csim = scorer.result().frames["csim"].to_numpy()
    assert csim[0] == pytest.approx(1.0, abs=1e-6)  # the source's own crop
    assert csim[1] > csim[2] + 0.1, csim  # another frame of the same person vs another person
    assert csim == pytest.approx(identity.csim(model, crops, crops[:1]), abs=1e-9)  # the engine's values

    no_source = FrameScorer(CONFIG, identity_model=model)  # no source set: no csim column
    no_source.update(_nchw(frames), _nchw(frames), None, None, _meta("c", range(3), [box] * 3))
    assert "csim" not in no_source.result().frames


# ------------------------------------------------------------------------------------------------- FVD

def _windowed(frames: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """Frames with each 16-frame window's frames put in ``order`` (temporal jitter)."""
    if order is None:
        return frames
    out = frames.copy()
    for start in range(0, len(frames) - fvd.WINDOW + 1, fvd.WINDOW):
        out[start:start + fvd.WINDOW] = frames[start:start + fvd.WINDOW][order]
    return out


def _score_fvd(config: EvalConfig, i3d: torch.nn.Module, clips: dict[str, tuple[np.ndarray, np.ndarray]],
               batch: int = 7, keep_features: bool = False, cache: Path | bool = False) -> FrameScorer:
    scorer = FrameScorer(config, i3d=i3d, keep_features=keep_features, gt_cache=cache)
    for clip, (pred, gt) in clips.items():
        for start in range(0, len(gt), batch):
            span = range(start, min(start + batch, len(gt)))
            scorer.update(_nchw(pred[span.start:span.stop]), _nchw(gt[span.start:span.stop]), None, None,
                          _meta(clip, span, yaw=5.0 if clip.endswith("0") else 40.0))
    return scorer


@pytest.mark.slow  # six I3D windows at 224 x 224 on the CPU (~20 s on 2 cores)
def test_fvd_through_the_scorer_known_answers_with_random_i3d(tmp_path):
    """Random official-layout I3D weights (BatchNorm statistics from the data), loaded by build_i3d: a set against
    itself is ~0, frames shuffled within each window are farther; the second scorer reads the ground truth's
    windows from the cache."""
    frames = _real_frames(0, 2 * fvd.WINDOW + 5)  # two windows and a partial one (dropped)
    from test_fvd import random_i3d

    torch.save(random_i3d(frames[None, :fvd.WINDOW]).state_dict(), tmp_path / "i3d.pt")
    i3d = fvd.build_i3d(path=tmp_path / "i3d.pt")
    shuffled = _windowed(frames, np.random.default_rng(0).permutation(fvd.WINDOW))

    same = _score_fvd(CONFIG, i3d, {"c0": (frames, frames)}, cache=tmp_path / "cache")
    jittered = _score_fvd(CONFIG, i3d, {"c0": (shuffled, frames)}, cache=tmp_path / "cache")
    assert same.fvd["all"].fake.count == same.fvd["all"].real.count == 2
    assert same.fvd_cache.misses == 2 and jittered.fvd_cache.hits == 2  # the ground truth's windows, cached
    near, far = same.fvd["all"].compute(), jittered.fvd["all"].compute()
    assert abs(near) < 1e-6 * far and far > 0, (near, far)
    summary = summarise(jittered.result(), "m", CONFIG, 0)
    entry = summary["metrics"]["fvd"]
    assert entry["value"] == pytest.approx(far) and entry["n"] == 2 and entry["ci95"] is None
    assert summary["by_pose"]["frontal"]["fvd"]["n"] == 2 and summary["by_pose"]["extreme"]["fvd"]["n"] == 0
    assert summary["notes"]["fvd"]


def test_fvd_windows_follow_each_clip_and_its_cap():
    rng = np.random.default_rng(0)
    clips = {f"c{i}": (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),) * 2 for i, n in enumerate((40, 15, 33))}
    scorer = _score_fvd(CONFIG, TinyI3D(), clips, batch=6)
    assert scorer.fvd["all"].fake.count == 2 + 0 + 2  # 40 and 33 frames: two windows each; 15: none
    capped = _score_fvd(dataclasses.replace(CONFIG, fvd_windows=1), TinyI3D(), clips, batch=6)
    assert capped.fvd["all"].fake.count == 2
    assert summarise(capped.result(), "m", dataclasses.replace(CONFIG, fvd_windows=1), 0)["metrics"]["fvd"][
        "windows_per_clip"] == 1


def test_fvd_per_clip_states_merged_equal_one_scorer():
    """What each rank (or `bench score` clip by clip) does: one scorer per clip, its state saved and merged in clip
    order, against one scorer over all clips: the same FVD sums per group."""
    rng = np.random.default_rng(1)
    clips = {}
    for i in range(3):
        gt = rng.integers(0, 256, (35, 32, 32, 3), dtype=np.uint8)
        clips[f"c{i}"] = (_windowed(gt, rng.permutation(fvd.WINDOW)), gt)
    i3d = TinyI3D()
    single = _score_fvd(CONFIG, i3d, clips)
    merged = FrameScorer(CONFIG)
    for clip, pair in clips.items():
        state = export_state(_score_fvd(CONFIG, i3d, {clip: pair}, keep_features=True))
        assert state["fvd_real"].shape == state["fvd_fake"].shape == (2, 56)
        merge_state(merged, state)
    assert sorted(merged.fvd) == sorted(single.fvd) == ["all", "extreme", "frontal"]
    for group, accumulator in single.fvd.items():
        for side in ("real", "fake"):
            ours, theirs = getattr(merged.fvd[group], side), getattr(accumulator, side)
            assert ours.count == theirs.count
            torch.testing.assert_close(ours.sum, theirs.sum, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(ours.outer, theirs.outer, rtol=1e-12, atol=1e-12)
    a, b = (summarise(s.result(), "m", CONFIG, 0)["metrics"]["fvd"]["value"] for s in (merged, single))
    assert a == pytest.approx(b, rel=1e-9) and a > 0


# ------------------------------------------------------------------------------- without ground truth

def _no_gt_scorer(tmp_path: Path, keep_features: bool = False) -> tuple[FrameScorer, np.ndarray]:
    frames = _real_frames(0, fvd.WINDOW + 2)
    box = (40, 10, 184, 154)
    crops = np.stack([f[box[1]:box[3], box[0]:box[2]] for f in frames[:4]])
    scorer = FrameScorer(CONFIG, lpips_model=FakeLPIPS(), inception=FakeInception(), i3d=TinyI3D(),
                         identity_model=_random_arcface(tmp_path, crops), keep_features=keep_features, gt_cache=False)
    scorer.set_source(crops[:1])
    boxes = [box] * (len(frames) - 1) + [None]
    for start in range(0, len(frames), 6):
        span = range(start, min(start + 6, len(frames)))
        scorer.update(_nchw(frames[span.start:span.stop]), None, torch.ones(len(span), 224, 224), None,
                      _meta("c0", span, boxes[span.start:span.stop]))
    return scorer, frames


def test_scoring_without_ground_truth_keeps_only_reference_free_metrics(tmp_path):
    scorer, frames = _no_gt_scorer(tmp_path, keep_features=True)
    state = export_state(scorer)
    assert "fid_real" not in state and state["fid_fake"].shape == (len(frames), 12) and "fvd_real" not in state
    merged = FrameScorer(CONFIG)
    merge_state(merged, state)
    # the real side from a set of real videos, as `bench score --real` adds it
    real_windows = TinyI3D()(fvd.preprocess(np.stack([frames[:16], frames[2:18]])))[0].detach().double()
    merged.add_real_features("fvd", real_windows.numpy(), np.array(["frontal", "frontal"]))
    merged.add_real_features("fid", np.random.default_rng(0).normal(size=(5, 12)), np.array(["frontal"] * 5))
    result = merged.result()
    assert not GT_METRICS & set(result.frames) and not result.has_uncertainty
    assert result.frames["csim"][0] == pytest.approx(1.0, abs=1e-6) and math.isnan(result.frames["cpbd"].iloc[-1])
    summary = summarise(result, "m", CONFIG, 0)
    assert not GT_METRICS & set(summary["metrics"])
    assert {"cpbd", "csim", "fid", "fvd"} <= set(summary["metrics"])
    assert summary["metrics"]["fvd"]["n"] == 1 and summary["metrics"]["fvd"]["value"] is None  # one window: no cov
    assert summary["metrics"]["fid"]["value"] is not None and summary["metrics"]["fid"]["n"] == len(frames)
    assert result.samples["gt"].max() == 0 and np.isnan(result.samples["error"]).all()
    assert not result.worst and not result.clip_samples  # no error, no PSNR: nothing to rank

    # the run directory and its report
    from bench.harness.rundir import claim_run_dir, finish_run, new_manifest
    from bench.report.render import render_report

    run_dir = tmp_path / "run"
    manifest = new_manifest("external", {"eval": dataclasses.asdict(CONFIG)}, 0)
    claim_run_dir(run_dir, manifest)
    report = finish_run(run_dir, manifest, result, summary, {}, render_report)
    assert report is not None and report.is_file(), (run_dir / "manifest.json").read_text()
    html = report.read_text(encoding="utf-8")
    assert ">csim<" in html and ">cpbd<" in html and ">psnr<" not in html


# ------------------------------------------------------------------------------------------ the callers

def test_bench_run_clips_get_face_columns_and_the_reference_frames_as_source(monkeypatch, tmp_path):
    from bench.data.frames import eval_reference_indices
    from bench.harness.evaluate import evaluate
    from bench.models import build_model
    from train_fixtures import fake_clips, tiny_config

    clips = fake_clips(2, frames=9, size=16)
    for clip in clips:
        clip.face_boxes = [(1, 2, 15, 16)] * (clip.n_frames - 1) + [None]  # what prepare_clip gives from landmarks
    model = build_model("julnet", tiny_config().net, seed=0).eval()
    sources = []
    monkeypatch.setattr(FrameScorer, "set_source", lambda self, crops: sources.append(crops))
    result = evaluate(model, clips, 2, CONFIG, progress=False, networks={"lpips": FakeLPIPS()})
    assert {"psnr_face", "ssim_face", "lpips_face", "cpbd"} <= set(result.frames)
    assert result.frames["psnr_face"].notna().sum() == 2 * 8 and result.frames["cpbd"].isna().all()  # 14-px faces
    refs = eval_reference_indices(9, 2, 0)
    assert len(sources) == 2 and all(len(s) == len(refs) for s in sources)
    np.testing.assert_array_equal(sources[1][0], clips[1].frames[refs[0], :, 2:16, 1:15].permute(1, 2, 0).numpy())


def test_bench_score_ground_truth_path_boxes_and_source_from_the_face_mesh(tmp_path):
    """score_clip: face boxes from the pose estimator's face mesh on the ground truth, csim's source the first
    ground-truth face: scoring a clip against itself gives csim 1 on its first frame and PSNR_face inf."""
    pytest.importorskip("mediapipe")
    from PIL import Image

    from bench.data.head_pose import PoseEstimator
    from bench.harness.external import score_clip
    from bench.harness.external_inputs import check_pair
    from bench.metrics.lmd import LandmarkDistance

    frames = _real_frames(2, 6)
    clip_dir = tmp_path / "clip"
    clip_dir.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(clip_dir / f"{i:03d}.png")
    pair = check_pair("clip", clip_dir, clip_dir)
    lmd = LandmarkDistance()
    networks = {"lmd": lmd, "pose": PoseEstimator(lmd.mesh),
                "csim": _random_arcface(tmp_path, np.stack([f[10:154, 40:184] for f in frames]))}
    state, _ = score_clip(pair, CONFIG, networks)
    merged = FrameScorer(CONFIG)
    merge_state(merged, state)
    result = merged.result()
    assert np.isinf(result.frames["psnr_face"]).all() and (result.frames["ssim_face"] == 1).all()
    assert result.frames["csim"][0] == pytest.approx(1.0, abs=1e-6) and (result.frames["csim"] > 0.5).all()
    assert result.frames["cpbd"].between(0, 1).all()
    summary = summarise(result, "external", CONFIG, 0)
    assert summary["metrics"]["psnr_face"]["value"] == 100.0

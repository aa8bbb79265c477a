"""LMD: MediaPipe's face mesh on both sides, known answers on real and synthetic frames, the scorer."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.config import EvalConfig
from bench.harness.scorer import FrameScorer, summarise

pytest.importorskip("mediapipe", reason="LMD needs the landmarks extra: pip install -e '.[landmarks]'")

from bench.data.landmarks import EYE_CORNERS, LandmarksUnavailableError  # noqa: E402
from bench.metrics.lmd import LandmarkDistance, build_landmarks, landmark_distance  # noqa: E402
from bench.data.video import iter_frames  # noqa: E402

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
CLIP = REAL / "pc-avs__misc_Audio_Source_00015.mp4"


@pytest.fixture(scope="module")
def lmd() -> LandmarkDistance:
    return build_landmarks()


@pytest.fixture(scope="module")
def real_frames() -> torch.Tensor:
    if not CLIP.is_file():
        pytest.skip(f"real clips not found in {REAL}")
    frames = np.stack([f for _, f in zip(range(8), iter_frames(CLIP))])
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float()


def _shift_right(frames: torch.Tensor, pixels: int) -> torch.Tensor:
    """Translate the content right by ``pixels``, repeating the left edge column."""
    return torch.cat([frames[..., :1].expand(*frames.shape[:-1], pixels), frames[..., :-pixels]], dim=-1)


def test_identical_frames_score_zero_and_a_known_shift_scores_shift_over_eye_distance(lmd, real_frames):
    same = lmd(real_frames, real_frames)
    assert np.isfinite(same).all() and np.all(same == 0.0)
    shift = 6
    moved = lmd(_shift_right(real_frames, shift), real_frames)
    gt_points = lmd.mesh(real_frames)
    eyes = np.linalg.norm(gt_points[:, EYE_CORNERS[0]] - gt_points[:, EYE_CORNERS[1]], axis=-1)
    expected = shift / eyes  # every landmark moves by the shift
    assert np.all(eyes > 20)  # a real face of this clip, not a degenerate detection
    np.testing.assert_allclose(moved, expected, rtol=0.25)


def test_frames_without_a_face_are_nan_and_left_out_of_the_summary(lmd, real_frames):
    blank = real_frames.clone()
    blank[:2] = 128.0  # no face in the first two generated frames
    values = lmd(blank, real_frames)
    assert np.isnan(values[:2]).all() and np.isfinite(values[2:]).all()
    config = EvalConfig(bootstrap=50, networks=())
    scorer = FrameScorer(config, landmarks=lmd)
    meta = [{"clip_id": "c", "frame": i, "identity": "c", "stratum": "x", "yaw": 0.0, "pitch": 0.0, "roll": 0.0}
            for i in range(len(blank))]
    scorer.update(blank, real_frames, None, None, meta)
    summary = summarise(scorer.result(), "m", config, seed=0)
    entry = summary["metrics"]["lmd"]
    assert entry["n"] == len(blank) - 2 and entry["higher_is_better"] is False
    assert entry["value"] == pytest.approx(float(np.mean(values[2:])))
    assert "lmd" in summary["notes"]


def test_an_open_mouth_against_a_closed_one_scores_higher_than_neighbouring_closed_frames(lmd):
    from bench.data.frames import resize_frames
    from bench.data.synth import SynthConfig, plan_clips, render_clip

    config = SynthConfig(size=128, seconds=2.0)
    plan = next(p for p in plan_clips(config) if p.split == "test" and p.stratum == "frontal")
    clip = render_clip(config, plan)
    opening = np.asarray(clip.mouth_open)
    frames = resize_frames(clip.frames, 64).float()
    closed, wide = int(np.argmin(opening)), int(np.argmax(opening))
    same = lmd(frames[[closed]], frames[[closed]])[0]
    mouth_moved = lmd(frames[[wide]], frames[[closed]])[0]
    assert same == 0.0 and mouth_moved > 0.05


def test_landmark_distance_is_normalised_by_the_ground_truth_eye_distance():
    gt = np.zeros((1, 468, 2))
    gt[0, EYE_CORNERS[1]] = (40.0, 0.0)  # eyes 40 px apart
    pred = gt.copy()
    mouth = np.array([10, 20])
    pred[0, mouth] += (3.0, 4.0)  # 5 px away
    assert landmark_distance(pred, gt, mouth)[0] == pytest.approx(5.0 / 40.0)
    assert landmark_distance(pred, gt * 2.0, mouth)[0] != pytest.approx(5.0 / 40.0)


def test_without_mediapipe_the_error_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import fails as if not installed
    with pytest.raises(LandmarksUnavailableError, match=r"pip install -e '\.\[landmarks\]'"):
        build_landmarks()


def test_bench_score_reports_lmd_for_external_frames(real_frames, tmp_path):
    from PIL import Image

    from bench.harness.external import score, score_metric
    from bench.harness.rundir import read_summary

    def write(directory: Path, frames: torch.Tensor) -> Path:
        directory.mkdir()
        for i, frame in enumerate(frames.permute(0, 2, 3, 1).to(torch.uint8).numpy()):
            Image.fromarray(frame).save(directory / f"{i:03d}.png")
        return directory

    gt = write(tmp_path / "gt", real_frames)
    moved = write(tmp_path / "pred", _shift_right(real_frames, 6))
    assert score_metric("lmd", gt, gt) == [0.0] * len(real_frames)
    per_frame = score_metric("lmd", moved, gt)
    assert all(0.05 < value < 0.4 for value in per_frame)
    run = score(moved, gt, tmp_path / "run", config=EvalConfig(bootstrap=50, networks=("lmd",)), report=None,
                progress=False)
    entry = read_summary(run)["metrics"]["lmd"]
    assert entry["n"] == len(real_frames) and entry["value"] == pytest.approx(np.mean(per_frame))


def test_bench_score_bins_external_frames_by_the_estimated_pose(real_frames, tmp_path):
    """The real clip's face is turned about 24 degrees (see tests/test_head_pose.py): its frames land in 'moderate'."""
    import json

    import pandas as pd
    from PIL import Image

    from bench.harness.rundir import read_summary
    from bench.harness.external import score

    gt = tmp_path / "gt"
    gt.mkdir()
    for i, frame in enumerate(real_frames.permute(0, 2, 3, 1).to(torch.uint8).numpy()):
        Image.fromarray(frame).save(gt / f"{i:03d}.png")
    run = score(gt, gt, tmp_path / "run", config=EvalConfig(bootstrap=50, networks=("lmd",)), report=None,
                progress=False)
    frames = pd.read_parquet(run / "frames.parquet")
    assert frames["yaw"].abs().between(15, 30).mean() >= 0.75
    assert (frames["pose_bin"] == "moderate").mean() >= 0.75
    summary = read_summary(run)
    assert summary["by_pose"]["moderate"]["psnr"]["n"] == (frames["pose_bin"] == "moderate").sum()
    assert "canonical face" in json.loads((run / "manifest.json").read_text())["pose"]


def test_the_mesh_reuses_the_points_of_the_same_unchanged_batch(lmd, real_frames, monkeypatch):
    mesh = lmd.mesh
    first = mesh(real_frames)
    calls = []
    monkeypatch.setattr(mesh, "_detect", lambda frames: calls.append(1) or np.zeros((len(frames), 468, 2)))
    assert np.array_equal(mesh(real_frames), first, equal_nan=True) and not calls  # same tensor: reused
    changed = real_frames.clone()
    assert not np.array_equal(mesh(changed), first) and calls == [1]  # another tensor: detected again
    changed.add_(1.0)  # modified in place: detected again
    mesh(changed)
    assert calls == [1, 1]

"""Recalibration in a run: summary.json's "recalibration" block, calibration.npz and worst.npz."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from bench.config import POSE_BINS, EvalConfig
from bench.harness.recalibrate import add_recalibration, recalibration_summary
from bench.harness.rundir import finish_run, new_manifest
from bench.harness.scorer import FrameScorer, summarise
from bench.harness.scorer_state import export_state, merge_state
from bench.metrics.recalibration import recalibration_report

CONFIG = EvalConfig(bootstrap=50, samples_per_bin=1)
YAWS = [5, 20, 45, 8, 25, 60]


def _clip(scorer: FrameScorer, rng: np.random.Generator, c: int, frames: int, factor: float | None,
          size: int = 16) -> None:
    """One clip of Laplace errors of scale b; the map says ``factor`` * b (None: no map)."""
    b = 8 + 4 * c
    gt = torch.from_numpy(rng.integers(0, 256, (frames, 3, size, size)).astype(np.float32))
    noise = torch.from_numpy(rng.laplace(0, b, (frames, 3, size, size)).astype(np.float32))
    pred = (gt + noise).clamp(0, 255).round()
    scale = None if factor is None else torch.from_numpy(
        (factor * b / 255 * rng.uniform(0.7, 1.3, (frames, size, size))).astype(np.float32))
    meta = [{"clip_id": f"c{c}", "frame": t, "yaw": float(YAWS[c % len(YAWS)])} for t in range(frames)]
    scorer.update(pred, gt, scale, None, meta)


def _result(seed: int, factor: float | None = 2.0, n_clips: int = 6, frames: int = 5):
    rng = np.random.default_rng(seed)
    scorer = FrameScorer(CONFIG)
    for c in range(n_clips):
        _clip(scorer, rng, c, frames, factor)
    return scorer.result()


def _finite(tree) -> bool:
    if isinstance(tree, dict):
        return all(_finite(v) for k, v in tree.items() if k not in ("map",))
    return isinstance(tree, float) and np.isfinite(tree)


@pytest.fixture(scope="module")
def test_and_val():
    return _result(seed=0), _result(seed=1)


def test_val_fit_gives_finite_scores_fixes_the_scale_and_keeps_ause(test_and_val):
    test, val = test_and_val
    summary = add_recalibration(summarise(test, "m", CONFIG, seed=0), test, val)
    assert list(summary)[-1] == "recalibration"  # added last: every other key stays where it was
    block = summary["recalibration"]
    assert block["fit_on"] == "val split (6 clips)"
    assert list(block) == ["fit_on", "before", "scale", "isotonic", "by_pose"]
    assert _finite({k: block[k] for k in ("before", "scale", "isotonic")})
    # the map is 2x over-wide (times a noise factor): the ML scalar roughly halves it and coverage improves
    assert 0.35 < block["scale"]["map"]["scale"] < 0.6
    assert block["isotonic"]["map"]["kind"] == "isotonic" and len(block["isotonic"]["map"]["knots_u"]) > 1
    for name in ("scale", "isotonic"):
        assert block[name]["miscal_area"] < 0.8 * block["before"]["miscal_area"]
        assert block[name]["nll"] < block["before"]["nll"]
        assert block[name]["ause"] == block["before"]["ause"]  # monotone maps keep the ranking exactly
    assert set(block["by_pose"]) == {name for name, _, _ in POSE_BINS}
    for name, entry in block["by_pose"].items():
        assert set(entry) == {"before", "scale", "isotonic"} and _finite(entry), name
        for kind in ("scale", "isotonic"):
            assert entry[kind]["ause"] == entry["before"]["ause"]
    # the overall block is the library's report on the val and test pixels
    u_val, e_val, _ = val.subsample
    u, e, _ = test.subsample
    assert block["scale"] == recalibration_report(u_val, e_val, u, e)["scale"]
    json.dumps(summary, allow_nan=False)  # writable as summary.json


def test_by_pose_applies_the_val_maps_to_each_bins_pixels(test_and_val):
    """A bin holding every test pixel scores exactly like the overall block."""
    test, val = test_and_val
    frontal = test.frames.assign(pose_bin="frontal")
    one_bin = type(test)(**{**test.__dict__, "frames": frontal})
    block = recalibration_summary(one_bin, val)
    assert block["by_pose"]["moderate"] is None and block["by_pose"]["extreme"] is None
    for kind in ("before", "scale", "isotonic"):
        overall = {k: v for k, v in block[kind].items() if k != "map"}
        assert block["by_pose"]["frontal"][kind] == pytest.approx(overall, rel=1e-12)


def test_without_val_the_maps_are_cross_fitted_over_test_clips(test_and_val):
    test, _ = test_and_val
    block = recalibration_summary(test)
    assert block["fit_on"].startswith("2-fold cross-fitting over the test clips") and "6 clips" in block["fit_on"]
    assert _finite({k: block[k] for k in ("before", "scale", "isotonic")})
    assert block["scale"]["map"]["kind"] == "scale" and block["isotonic"]["map"]["kind"] == "isotonic"
    assert block["scale"]["miscal_area"] < 0.7 * block["before"]["miscal_area"]
    # different from fitting on the test pixels themselves (that would be in-sample)
    u, e, _ = test.subsample
    assert block["scale"]["nll"] != recalibration_report(u, e, u, e)["scale"]["nll"]
    single = recalibration_summary(_result(seed=2, n_clips=1, frames=6))
    assert single["fit_on"].startswith("2-fold cross-fitting over the frames of the one test clip")
    assert _finite(single["scale"])


def test_no_uncertainty_map_no_recalibration_and_no_calibration_file(tmp_path):
    result = _result(seed=0, factor=None)
    summary = add_recalibration(summarise(result, "m", CONFIG, seed=0), result, _result(seed=1, factor=None))
    assert "recalibration" not in summary
    finish_run(tmp_path, new_manifest("m", {}, 0), result, summary, {}, None)
    assert not (tmp_path / "calibration.npz").exists()
    with np.load(tmp_path / "worst.npz") as worst:
        assert list(worst["by"]) == ["error"] * 4 and np.isnan(worst["uncertainty"]).all()


def test_run_directory_holds_the_pixels_and_the_worst_frames(tmp_path, test_and_val):
    test, val = test_and_val
    summary = add_recalibration(summarise(test, "m", CONFIG, seed=0), test, val)
    finish_run(tmp_path, new_manifest("m", {}, 0), test, summary, {}, None)
    assert "recalibration" in json.loads((tmp_path / "summary.json").read_text())
    frames = pd.read_parquet(tmp_path / "frames.parquet")
    with np.load(tmp_path / "calibration.npz") as cal:
        assert cal["u"].dtype == np.float32 and cal["e"].dtype == np.float32
        assert cal["u"].shape == cal["e"].shape == cal["frame"].shape == test.subsample[0].shape
        assert 0 <= cal["frame"].min() and cal["frame"].max() == len(frames) - 1
        assert np.array_equal(cal["u"], test.subsample[0])
    with np.load(tmp_path / "worst.npz") as worst:
        assert list(worst["by"]) == ["error"] * 4 + ["uncertainty"] * 4
        assert worst["gt"].shape == worst["pred"].shape == (8, 16, 16, 3) and worst["gt"].dtype == np.uint8
        assert worst["error"].shape == worst["uncertainty"].shape == (8, 16, 16)
        assert list(worst["height"]) == list(worst["width"]) == [16] * 8
        for by, column, at in (("error", "err_mean", slice(0, 4)), ("uncertainty", "unc_mean", slice(4, 8))):
            top = frames[column].sort_values(ascending=False, kind="stable").index[:4]
            assert list(worst["row"][at]) == list(top), by
            assert np.allclose(worst["value"][at], frames[column].to_numpy()[top])
            assert list(worst["clip_id"][at]) == list(frames["clip_id"][top])
            assert list(worst["frame"][at]) == list(frames["frame"][top])
            assert np.allclose(worst["yaw"][at], frames["yaw"][top])
        # the maps are the frames' own: their mean is the frame's err_mean / unc_mean (whole-frame region)
        assert np.allclose(worst["error"][:4].mean((1, 2)), worst["value"][:4], rtol=1e-5)
        assert np.allclose(worst["uncertainty"][4:].mean((1, 2)), worst["value"][4:], rtol=1e-5)


def test_worst_frames_survive_saved_states_and_mixed_sizes():
    """`bench score` adds up one scorer state per clip: the worst frames are those of one scorer over all."""
    whole = FrameScorer(CONFIG)
    states = []
    for c, size in enumerate([16, 16, 24, 16]):
        for scorer in (whole, clip_scorer := FrameScorer(CONFIG)):
            _clip(scorer, np.random.default_rng(c), c, 3, 2.0, size)
        states.append(export_state(clip_scorer))
    merged = FrameScorer(CONFIG)
    for state in states:
        merge_state(merged, state)
    expected, got = whole.result().worst, merged.result().worst
    assert got["gt"].shape == (8, 24, 24, 3)  # padded to the largest frame
    assert set(got["height"]) == {16, 24} and (got["height"] == got["width"]).all()
    assert list(got["row"]) == list(expected["row"]) and list(got["clip_id"]) == list(expected["clip_id"])
    small = got["height"] == 16
    assert (got["gt"][small][:, 16:] == 0).all() and np.isnan(got["error"][small][:, 16:]).all()
    np.testing.assert_array_equal(got["pred"], expected["pred"])
    np.testing.assert_array_equal(got["uncertainty"], expected["uncertainty"])


def test_bench_score_cross_fits_and_writes_both_files(tmp_path):
    """`bench score` (one pair: no val split, one clip) goes through the same scorer and finish_run."""
    from PIL import Image

    from bench.harness.external import score

    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (6, 32, 32, 3)).astype(np.uint8)
    spread = np.linspace(4, 30, 6)[:, None, None, None]  # later frames worse
    pred = np.clip(gt + rng.laplace(0, 1, gt.shape) * spread, 0, 255).round().astype(np.uint8)
    for name, frames in (("gt", gt), ("pred", pred)):
        (tmp_path / name).mkdir()
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(tmp_path / name / f"{i}.png")
    u = np.broadcast_to(2 * spread[..., 0] / 255, (6, 32, 32)).astype(np.float32)
    np.save(tmp_path / "u.npy", u)
    run_dir = score(tmp_path / "pred", tmp_path / "gt", tmp_path / "run", uncertainty=tmp_path / "u.npy",
                    config=EvalConfig(bootstrap=20, networks=()), report=None, progress=False)
    block = json.loads((run_dir / "summary.json").read_text())["recalibration"]
    assert block["fit_on"] == "2-fold cross-fitting over the frames of the one test clip (no val split)"
    assert _finite(block["scale"]) and block["scale"]["map"]["scale"] < 0.8  # the map was 2x over-wide
    frames = pd.read_parquet(run_dir / "frames.parquet")
    with np.load(run_dir / "calibration.npz") as cal:
        assert cal["u"].size == 6 * -(-32 * 32 // CONFIG.spearman_stride) and set(cal["frame"]) == set(range(6))
    with np.load(run_dir / "worst.npz") as worst:
        assert list(worst["row"][:4]) == list(frames["err_mean"].sort_values(ascending=False).index[:4])
        assert worst["gt"].shape == (8, 32, 32, 3) and list(worst["frame"][:2]) == [5, 4]

"""FrameScorer + summarise: the per-frame rows, pooled calibration and CIs on constructed cases."""
import numpy as np
import pytest
import torch

from bench.config import EvalConfig
from bench.harness.scorer import FrameScorer, summarise

CONFIG = EvalConfig(bootstrap=200, samples_per_bin=1)


def _score(scale_fn, n_clips: int = 6, frames: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    scorer = FrameScorer(CONFIG)
    for c, yaw in zip(range(n_clips), [5, 20, 45, 8, 25, 60]):
        gt = torch.from_numpy(rng.integers(0, 256, (frames, 3, 16, 16)).astype(np.float32))
        noise = torch.from_numpy(rng.laplace(0, 8 + 4 * c, (frames, 3, 16, 16)).astype(np.float32))
        pred = (gt + noise).clamp(0, 255).round()
        error = (pred - gt).abs().mean(1) / 255
        meta = [{"clip_id": f"c{c}", "frame": t, "yaw": float(yaw)} for t in range(frames)]
        scale = scale_fn(error, rng) if scale_fn else None
        scorer.update(pred, gt, scale, None, meta)
    return scorer.result()


def test_uncertainty_equal_to_error_is_perfectly_ranked():
    result = _score(lambda e, rng: e.clamp_min(1e-4))
    summary = summarise(result, "oracle", CONFIG, seed=0)
    metrics = summary["metrics"]
    assert metrics["ause"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["ause_pooled"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["unc_spearman"]["value"] > 0.99 and metrics["aurg"]["value"] > 0
    assert metrics["unc_psnr_spearman"]["value"] > 0.5  # noisier clips: larger u and lower PSNR
    assert set(summary["by_pose"]) == {"frontal", "moderate", "extreme"}
    assert summary["by_pose"]["extreme"]["ause"]["n"] == 10  # two clips of five frames
    assert result.curves["coverage_all"].shape == result.curves["coverage_expected"].shape == (99,)


def test_random_uncertainty_has_no_ranking_skill():
    result = _score(lambda e, rng: torch.from_numpy(rng.uniform(0.01, 0.1, e.shape).astype(np.float32)))
    metrics = summarise(result, "random", CONFIG, seed=0)["metrics"]
    assert abs(metrics["unc_spearman"]["value"]) < 0.1
    assert abs(metrics["aurg"]["value"]) < 0.01
    low, high = metrics["unc_spearman"]["ci95"]
    assert low < 0 < high or abs(metrics["unc_spearman"]["value"]) < 0.05


def test_a_well_scaled_map_is_better_calibrated_than_a_halved_one():
    # Per-clip noise scale is known: Laplace(b) on each channel, so u ~ b/255 is about right.
    def true_scale(e, rng):
        return torch.full_like(e, e.mean().item())

    def halved(e, rng):
        return torch.full_like(e, 0.25 * e.mean().item())

    good = summarise(_score(true_scale), "good", CONFIG, seed=0)["metrics"]
    bad = summarise(_score(halved), "bad", CONFIG, seed=0)["metrics"]
    assert good["miscal_area"]["value"] < bad["miscal_area"]["value"]
    assert good["nll"]["value"] < bad["nll"]["value"]
    assert good["fail_auroc"]["value"] > 0.8  # larger u on the noisier clips flags the worst frames


def test_without_uncertainty_only_image_metrics_are_reported():
    summary = summarise(_score(None), "plain", CONFIG, seed=0)
    assert set(summary["metrics"]) == {"psnr", "ssim"}
    assert summary["metrics"]["psnr"]["ci95"] is not None


class _TinyInception(torch.nn.Module):
    """Stands in for pool3: 8-d features, so FID's bookkeeping is tested without 2048-d algebra."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return [self.conv(x).mean((2, 3))[:, :, None, None]]


def test_fid_is_reported_overall_and_per_pose_bin_from_the_stated_subsample():
    scorer = FrameScorer(EvalConfig(bootstrap=50, fid_every=2), inception=_TinyInception())
    rng = np.random.default_rng(0)
    for c, yaw in enumerate([5, 20, 45]):
        gt = torch.from_numpy(rng.integers(0, 256, (8, 3, 16, 16)).astype(np.float32))
        pred = (gt + 40 * c).clamp(0, 255)  # the frontal clip is exact, the others shifted
        scorer.update(pred, gt, None, None, [{"clip_id": f"c{c}", "frame": t, "yaw": float(yaw)} for t in range(8)])
    summary = summarise(scorer.result(), "m", EvalConfig(bootstrap=50), seed=0)
    assert summary["metrics"]["fid"]["n"] == 12  # every 2nd of 24 frames
    assert summary["by_pose"]["frontal"]["fid"]["value"] == pytest.approx(0.0, abs=1e-6)
    assert summary["by_pose"]["extreme"]["fid"]["value"] > summary["by_pose"]["moderate"]["fid"]["value"] > 0


def test_yaw_bin_edges_are_configurable_and_bins_partition_the_frames():
    config = EvalConfig(bootstrap=20, yaw_edges=(10.0, 40.0))
    scorer = FrameScorer(config)
    rng = np.random.default_rng(0)
    yaws = [0.0, 9.9, 10.0, 25.0, 39.9, 40.0, 75.0, -12.0]
    gt = torch.from_numpy(rng.integers(0, 256, (len(yaws), 3, 16, 16)).astype(np.float32))
    scorer.update(gt, gt, None, None, [{"clip_id": f"c{i}", "frame": 0, "yaw": y} for i, y in enumerate(yaws)])
    bins = scorer.result().frames["pose_bin"].tolist()
    assert bins == ["frontal", "frontal", "moderate", "moderate", "moderate", "extreme", "extreme", "moderate"]
    with pytest.raises(ValueError):
        FrameScorer(EvalConfig(yaw_edges=(30.0, 15.0)))


def test_rmse_sparsification_option_keeps_the_oracle_property():
    config = EvalConfig(bootstrap=20, sparsification_metric="rmse")
    scorer = FrameScorer(config)
    rng = np.random.default_rng(1)
    gt = torch.from_numpy(rng.integers(0, 256, (4, 3, 16, 16)).astype(np.float32))
    pred = (gt + torch.from_numpy(rng.normal(0, 20, gt.shape).astype(np.float32))).clamp(0, 255).round()
    error = (pred - gt).abs().mean(1) / 255
    scorer.update(pred, gt, error.clamp_min(1e-4), None, [{"clip_id": f"c{i}", "frame": 0, "yaw": 5.0} for i in range(4)])
    result = scorer.result()
    assert result.frames["ause"].abs().max() < 1e-9
    first = result.curves["model_all"][0]
    assert first == pytest.approx(float(np.sqrt((error.numpy() ** 2).mean(axis=(1, 2))).mean()), rel=1e-5)

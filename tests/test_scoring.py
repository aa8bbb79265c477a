"""FrameScorer + summarise: the per-frame rows, pooled calibration and CIs on constructed cases."""
import io

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
    assert summary["metrics"]["fid"]["frame_stride"] == 2  # the scorer's stride, recorded with every FID entry
    assert {block["fid"]["frame_stride"] for block in summary["by_pose"].values()} == {2}
    assert summary["by_pose"]["frontal"]["fid"]["value"] == pytest.approx(0.0, abs=1e-6)
    assert summary["by_pose"]["extreme"]["fid"]["value"] > summary["by_pose"]["moderate"]["fid"]["value"] > 0


def test_fid_uses_every_frame_by_default_as_pytorch_fid_does():
    assert EvalConfig().fid_every == 1
    scorer = FrameScorer(EvalConfig(bootstrap=20), inception=_TinyInception())
    rng = np.random.default_rng(1)
    for c in range(2):
        gt = torch.from_numpy(rng.integers(0, 256, (7, 3, 16, 16)).astype(np.float32))
        scorer.update((gt + 10).clamp(0, 255), gt, None, None,
                      [{"clip_id": f"c{c}", "frame": t, "yaw": 5.0} for t in range(7)])
    fid = summarise(scorer.result(), "m", EvalConfig(bootstrap=20), seed=0)["metrics"]["fid"]
    assert fid["n"] == 14 and fid["frame_stride"] == 1


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


# ---- clip_samples.npz: a frame of the best, median and worst clip by mean PSNR (bench.harness.samples.ClipRanks)

def _clips_by_noise(noise: list[float], frames: int = 5, size: int = 8, seed: int = 0):
    """One batch per clip: clip ``c<i>`` has Gaussian noise of sd ``noise[i]`` (0: identical frames, PSNR inf)."""
    rng = np.random.default_rng(seed)
    for c, sd in enumerate(noise):
        gt = torch.from_numpy(rng.integers(0, 256, (frames, 3, size, size)).astype(np.float32))
        pred = (gt + torch.from_numpy(rng.normal(0, sd, gt.shape).astype(np.float32))).clamp(0, 255).round()
        u = ((pred - gt).abs().mean(1) / 255).clamp_min(1e-3)
        yield pred, gt, u, [{"clip_id": f"c{c}", "frame": 10 + t, "yaw": float(5 * c)} for t in range(frames)]


def _expected_ranks(result) -> list[str]:
    """Clip ids best first by mean PSNR capped at 100 dB (ties: the earlier clip), from frames.parquet's rows."""
    frames = result.frames.assign(psnr=np.minimum(result.frames["psnr"], 100.0))
    means = frames.groupby("clip_id", sort=False)["psnr"].mean()
    order = {cid: i for i, cid in enumerate(means.index)}
    return sorted(means.index, key=lambda cid: (-means[cid], order[cid]))


def test_clip_samples_are_the_best_median_and_worst_clip_by_mean_psnr():
    noise = [30.0, 2.0, 60.0, 10.0, 0.0, 45.0, 20.0]  # c4 identical (PSNR inf, counted as 100 dB), c2 noisiest
    scorer = FrameScorer(CONFIG)
    for pred, gt, u, meta in _clips_by_noise(noise):
        scorer.update(pred, gt, u, None, meta)
    result = scorer.result()
    ranked = _expected_ranks(result)
    assert ranked[0] == "c4" and ranked[-1] == "c2" and ranked[3] == "c6"  # the median of seven: 4th best
    clips = result.clip_samples
    assert clips["rank"].tolist() == ["best", "median", "worst"]
    assert clips["clip_id"].tolist() == ["c4", "c6", "c2"]
    assert clips["position"].tolist() == [1, 4, 7] and clips["n_clips"].tolist() == [7, 7, 7]
    assert clips["frame"].tolist() == [12, 12, 12]  # the middle of frames 10..14
    assert clips["clip_frames"].tolist() == [5, 5, 5]
    frames = result.frames
    for cid, mean in zip(clips["clip_id"], clips["clip_psnr"]):
        assert mean == pytest.approx(np.minimum(frames.loc[frames["clip_id"] == cid, "psnr"], 100.0).mean())
    assert clips["clip_psnr"][0] == 100.0 and clips["clip_psnr"][0] > clips["clip_psnr"][1] > clips["clip_psnr"][2]
    # the stored frame is that clip's frame: its PSNR is the row's
    row = frames[(frames["clip_id"] == "c2") & (frames["frame"] == 12)].iloc[0]
    gt, pred = clips["gt"][2].astype(float), clips["pred"][2].astype(float)
    assert 10 * np.log10(255 ** 2 / ((gt - pred) ** 2).mean()) == pytest.approx(row["psnr"], abs=1e-3)
    assert clips["height"].tolist() == [8, 8, 8] and clips["uncertainty"].shape == (3, 8, 8)


def test_clip_samples_keep_bounded_memory_and_say_which_clip_stood_in_for_the_median():
    from bench.harness.samples import CLIP_POOL, MIDDLE_KEEP

    rng = np.random.default_rng(3)
    noise = list(np.sort(rng.uniform(1, 80, 60)))  # best first: the running median drifts away from early clips
    scorer = FrameScorer(CONFIG)
    for pred, gt, u, meta in _clips_by_noise(noise, frames=3, size=4):
        scorer.update(pred, gt, u, None, meta)
        assert len(scorer.clip_ranks.kept) <= CLIP_POOL + 2
    result = scorer.result()
    ranked = _expected_ranks(result)
    clips = result.clip_samples
    assert clips["clip_id"][0] == ranked[0] and clips["clip_id"][-1] == ranked[-1]
    assert clips["position"][0] == 1 and clips["position"][-1] == 60
    # the median stand-in is a kept clip near the median, and its own place is what is recorded
    assert clips["rank"][1] == "median" and ranked[clips["position"][1] - 1] == clips["clip_id"][1]
    assert 0 < abs(int(clips["position"][1]) - 30) <= 3  # sorted clips: the exact median's frame was dropped
    shuffled = FrameScorer(CONFIG)  # in a mixed order the median clip stays near the running median: exact
    for c in np.random.default_rng(0).permutation(60):
        (pred, gt, u, meta), = _clips_by_noise([noise[c]], frames=3, size=4, seed=int(c))
        shuffled.update(pred, gt, u, None, [{**m, "clip_id": f"c{c}"} for m in meta])
    result = shuffled.result()
    assert result.clip_samples["clip_id"].tolist() == [_expected_ranks(result)[i] for i in (0, 29, 59)]

    # a long clip: at most 2 * MIDDLE_KEEP of its frames are held, and the one kept is near its middle
    scorer = FrameScorer(CONFIG)
    for start in range(0, 100, 10):
        (pred, gt, u, meta), = _clips_by_noise([10.0], frames=10, size=4, seed=start)
        scorer.update(pred, gt, u, None, [{**m, "frame": start + i} for i, m in enumerate(meta)])
        assert len(scorer.clip_ranks.buffer) <= 2 * MIDDLE_KEEP
    frame = int(scorer.result().clip_samples["frame"][0])
    assert abs(frame - 49) <= 100 // (2 * MIDDLE_KEEP)


def test_clip_samples_from_merged_clip_states_equal_one_scorers():
    from bench.harness.scorer_state import export_state, merge_state

    noise = [float(x) for x in np.random.default_rng(1).uniform(1, 60, 24)]
    single, merged = FrameScorer(CONFIG), FrameScorer(CONFIG)
    for pred, gt, u, meta in _clips_by_noise(noise, frames=3, size=4):
        single.update(pred, gt, u, None, meta)
        one = FrameScorer(CONFIG)
        one.update(pred, gt, u, None, meta)
        buffer = io.BytesIO()  # through np.savez and np.load(allow_pickle=False), as partial files are
        np.savez(buffer, **export_state(one))
        buffer.seek(0)
        with np.load(buffer, allow_pickle=False) as state:
            merge_state(merged, {key: state[key] for key in state.files})
    a, b = single.result().clip_samples, merged.result().clip_samples
    assert sorted(a) == sorted(b) and len(a["gt"]) == 3
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.parametrize("width", [32, 48, 64, 96, 112, 128, 224, 256])
def test_the_pixel_subsample_covers_every_column_of_the_generated_region(width):
    """The pooled statistics (unc_spearman, ause_pooled, recalibration) use every k-th generated pixel in
    raster order: k must not divide into the row width, or the subsample is the same few columns of every
    row (k = 16 took 4 columns of a 64-px region and biased the pooled miscalibration area)."""
    from bench.config import EvalConfig
    from bench.harness.scorer_summary import subsample_stride

    rows = width // 2  # the lower half
    stride = subsample_stride(rows * width, EvalConfig().spearman_stride)
    columns = np.arange(0, rows * width, stride) % width
    assert np.unique(columns).size == min(width, columns.size)  # every sample in another column while they last


def test_the_subsample_keeps_the_configured_stride_at_64_px_and_a_bounded_prime_one_beyond():
    from bench.harness.scorer_summary import PIXELS_PER_FRAME, subsample_stride

    assert subsample_stride(32 * 64, 17) == 17  # the quick preset's lower half: unchanged
    for width in (128, 256, 512, 1024):
        region = width * width // 2
        stride = subsample_stride(region, 17)
        primes = [p for p in range(17, stride + 1) if all(p % d for d in range(2, p))]
        assert primes[-1] == stride and -(-region // stride) <= PIXELS_PER_FRAME  # a prime that fits
        assert all(-(-region // p) > PIXELS_PER_FRAME for p in primes[:-1])  # the smallest one


def test_frames_at_256_px_add_at_most_the_per_frame_cap_to_the_subsample():
    from bench.harness.scorer_summary import PIXELS_PER_FRAME

    rng = np.random.default_rng(0)
    scorer = FrameScorer(CONFIG)
    gt = torch.from_numpy(rng.integers(0, 256, (2, 3, 256, 256)).astype(np.float32))
    pred = (gt + 9).clamp(0, 255)
    scale = torch.full((2, 256, 256), 0.03)
    scorer.update(pred, gt, scale, None, [{"clip_id": "c", "frame": t, "yaw": 0.0} for t in range(2)])
    u, _, rows = scorer.result().subsample
    assert 0 < np.bincount(rows).max() <= PIXELS_PER_FRAME and set(rows) == {0, 1}


def test_thinning_keeps_about_the_cap_and_does_not_depend_on_the_order_of_the_frames():
    from bench.harness.scorer_summary import thin_subsample

    rng = np.random.default_rng(1)
    lengths = rng.integers(50, 121, size=40)
    rows = np.repeat(np.arange(40), lengths)
    mask, k = thin_subsample(rows, 1000)
    assert k == -(-rows.size // 1000) and rows.size / k - 40 <= mask.sum() <= 1000 + 40  # +-1 pixel a frame
    kept = {(r, i) for r, i in zip(rows[mask], (np.arange(rows.size) - np.r_[0, np.cumsum(lengths)][rows])[mask])}
    order = rng.permutation(40)  # the same frames merged in another order (DDP ranks, resumed clips)
    shuffled = np.concatenate([np.full(lengths[r], r) for r in order])
    mask2, _ = thin_subsample(shuffled, 1000)
    starts = {r: s for r, s in zip(order, np.r_[0, np.cumsum(lengths[order])[:-1]])}
    kept2 = {(r, i - starts[r]) for r, i in zip(shuffled[mask2], np.flatnonzero(mask2))}
    assert kept == kept2
    assert thin_subsample(rows, rows.size)[0].all()  # nothing to thin: every pixel


def test_pooled_statistics_past_the_cap_use_the_thinned_subsample_and_say_so(monkeypatch):
    from bench.harness import scorer_summary
    from bench.metrics import calibration

    result = _score(lambda e, rng: (e + torch.from_numpy(rng.random(e.shape).astype(np.float32)) * 0.05 + 1e-3))
    u, e, rows = result.subsample
    full = summarise(result, "m", CONFIG, seed=0)["metrics"]["unc_spearman"]
    assert full["n"] == u.size and "thinned_by" not in full
    monkeypatch.setattr(scorer_summary, "POOLED_PIXELS", u.size // 3)
    thinned = summarise(result, "m", CONFIG, seed=0)["metrics"]["unc_spearman"]
    mask, k = scorer_summary.thin_subsample(rows, u.size // 3)
    assert thinned["thinned_by"] == k >= 3 and thinned["n"] == mask.sum() < u.size / 3 + 30
    assert thinned["value"] == pytest.approx(calibration.spearman(u[mask], e[mask]), rel=1e-12)
    assert thinned["value"] != full["value"]

"""Image and calibration metrics against reference implementations and known answers."""
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bench.metrics import calibration
from bench.metrics import image as image_metrics
from bench.metrics.stats import clip_bootstrap_ci


def _pair(seed: int, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)
    noise = rng.normal(0, 12 * (seed + 1), gt.shape)
    pred = np.clip(gt + noise, 0, 255).astype(np.uint8)
    return pred, gt


def _torch(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()


def test_psnr_and_ssim_match_scikit_image():
    pairs = [_pair(seed) for seed in range(3)]
    preds, gts = _torch([p for p, _ in pairs]), _torch([g for _, g in pairs])
    ours_psnr = image_metrics.psnr(preds, gts).numpy()
    ours_ssim = image_metrics.ssim(preds, gts).numpy()
    for i, (pred, gt) in enumerate(pairs):
        ref_psnr = peak_signal_noise_ratio(gt, pred, data_range=255)
        ref_ssim = structural_similarity(gt, pred, channel_axis=2, data_range=255, gaussian_weights=True,
                                         sigma=1.5, use_sample_covariance=False)
        assert ours_psnr[i] == pytest.approx(ref_psnr, abs=1e-6)
        assert ours_ssim[i] == pytest.approx(ref_ssim, abs=1e-6)
    assert ours_psnr[0] > ours_psnr[1] > ours_psnr[2]  # more noise, lower PSNR


def test_identical_frames_give_infinite_psnr_and_unit_ssim():
    pred, _ = _pair(0)
    tensor = _torch([pred])
    assert torch.isinf(image_metrics.psnr(tensor, tensor)).all()
    assert image_metrics.ssim(tensor, tensor).item() == pytest.approx(1.0)


def test_ause_is_zero_when_uncertainty_equals_error():
    rng = np.random.default_rng(0)
    error = rng.random((32, 32))
    fractions = calibration.sparsification_fractions()
    model, oracle = calibration.sparsification_curves(error, error, fractions)
    assert calibration.ause(model, oracle, fractions) == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.diff(oracle) <= 1e-12)  # removing the worst pixels first never raises the mean


def test_constant_uncertainty_gives_flat_random_curve():
    rng = np.random.default_rng(1)
    error = rng.random(5000)
    fractions = calibration.sparsification_fractions()
    model, _ = calibration.sparsification_curves(error, np.full_like(error, 0.3), fractions)
    assert np.allclose(model, error.mean())


def test_independent_uncertainty_is_worse_than_informative():
    rng = np.random.default_rng(2)
    error = rng.exponential(size=20000)
    fractions = calibration.sparsification_fractions()
    informative = error * rng.lognormal(0, 0.3, error.size)
    independent = rng.random(error.size)
    ause_good = calibration.ause(*calibration.sparsification_curves(error, informative, fractions), fractions)
    ause_bad = calibration.ause(*calibration.sparsification_curves(error, independent, fractions), fractions)
    assert 0 < ause_good < ause_bad
    assert abs(calibration.spearman(independent, error)) < 0.03
    assert calibration.spearman(informative, error) > 0.7


def test_sparsification_matches_a_direct_sort_loop():
    rng = np.random.default_rng(3)
    error, unc = rng.random(1000), rng.random(1000)
    fractions = calibration.sparsification_fractions(0.1)
    model, _ = calibration.sparsification_curves(error, unc, fractions)
    order = np.argsort(-unc)
    for f, value in zip(fractions, model):
        kept = error[order[int(round(f * error.size)):]]
        assert value == pytest.approx(kept.mean())


def test_clip_bootstrap_ci_brackets_the_mean_and_needs_two_clips():
    rng = np.random.default_rng(4)
    clips = np.repeat(np.arange(10), 20)
    values = rng.normal(30, 1, clips.size) + clips * 0.2
    low, high = clip_bootstrap_ci(values, clips, 500, seed=0)
    assert low < values.mean() < high
    assert clip_bootstrap_ci(values[:20], clips[:20]) is None


@pytest.mark.parametrize("height, width", [(1, 1), (10, 40), (40, 10)])
def test_ssim_is_nan_below_its_window_where_scikit_image_raises(height, width):
    pred, gt = _pair(0, size=40)
    pred, gt = pred[:height, :width], gt[:height, :width]
    with pytest.raises(ValueError):
        structural_similarity(gt, pred, channel_axis=2, data_range=255, gaussian_weights=True, sigma=1.5)
    ours = image_metrics.ssim(_torch([pred]), _torch([gt]))
    assert ours.shape == (1,) and torch.isnan(ours).all()
    assert image_metrics.psnr(_torch([pred]), _torch([gt])).item() == pytest.approx(
        peak_signal_noise_ratio(gt, pred, data_range=255), abs=1e-6)


def test_ssim_at_exactly_the_window_size_matches_scikit_image():
    pred, gt = _pair(1, size=11)
    pred, gt = pred[:, :11], gt[:, :11]
    ref = structural_similarity(gt, pred, channel_axis=2, data_range=255, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)
    assert image_metrics.ssim(_torch([pred]), _torch([gt])).item() == pytest.approx(ref, abs=1e-6)

"""Calibration, quality-indicator, bootstrap and run-comparison maths against known answers."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
import torch

from bench.metrics import calibration as cal
from bench.metrics import quality
from bench.harness.compare import CompareError, compare_runs, format_comparison
from bench.metrics.stats import bootstrap_ci, bootstrap_sums, clip_bootstrap_ci, paired_bootstrap
from bench.blocks.histogram import histogram_kl, soft_histogram
from tests.fake_run import make_fake_run


# ---------------------------------------------------------------- sparsification
@pytest.mark.parametrize("metric", ["mae", "rmse"])
def test_uncertainty_equal_to_error_is_the_oracle(metric):
    e = np.random.default_rng(0).exponential(0.05, 100_000)
    model, oracle = cal.sparsification_curves(e, e, metric=metric)
    fractions = cal.sparsification_fractions()
    assert cal.ause(model, oracle, fractions) == pytest.approx(0.0, abs=1e-12)
    assert cal.aurg(model, fractions) > 0
    norm, _ = cal.sparsification_curves(e, e, metric=metric, normalise=True)
    assert norm[0] == pytest.approx(1.0) and np.allclose(norm, model / model[0])


def test_independent_uncertainty_has_no_random_gain_and_no_rank_correlation():
    rng = np.random.default_rng(1)
    e, u = rng.exponential(0.05, 200_000), rng.random(200_000)
    out = cal.sparsification_metrics(e, u)
    assert abs(out["aurg_norm"]) < 0.02 and out["ause_norm"] > 0.3
    assert abs(cal.spearman(u, e)) < 0.01


@pytest.mark.parametrize("metric", ["mae", "rmse"])
def test_pooled_sparsification_on_a_million_pixels_matches_a_direct_loop(metric):
    rng = np.random.default_rng(2)
    e = rng.exponential(0.05, 1_000_000)
    u = (e * rng.lognormal(0, 0.5, e.size)).astype(np.float64)
    fractions = np.array([0.0, 0.1, 0.37, 0.8, 0.99])
    model, oracle = cal.sparsification_curves(e, u, fractions, metric=metric)
    reduce = (lambda x: x.mean()) if metric == "mae" else (lambda x: np.sqrt(np.mean(x * x)))
    by_u, by_e = np.argsort(-u), np.argsort(-e)
    for i, f in enumerate(fractions):
        k = int(round(f * e.size))
        assert model[i] == pytest.approx(reduce(e[by_u[k:]]), rel=1e-9)
        assert oracle[i] == pytest.approx(reduce(e[by_e[k:]]), rel=1e-9)


@pytest.mark.parametrize("metric", ["mae", "rmse"])
def test_tied_uncertainty_gives_the_expectation_over_tie_orders(metric):
    e = np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.05])
    u = np.array([3.0, 3.0, 3.0, 2.0, 1.0, 1.0, 0.5])
    fractions = np.arange(7) / 7
    model, _ = cal.sparsification_curves(e, u, fractions, metric=metric)
    value = e if metric == "mae" else e * e
    groups = [np.flatnonzero(u == level) for level in sorted(set(u), reverse=True)]
    orders = [np.concatenate(p) for p in itertools.product(*(itertools.permutations(g) for g in groups))]
    for i, f in enumerate(fractions):
        k = int(round(f * e.size))
        expected = np.mean([value[o[k:]].mean() for o in orders])
        assert model[i] == pytest.approx(np.sqrt(expected) if metric == "rmse" else expected)


# ---------------------------------------------------------------- u as a Laplace scale
def test_true_laplace_scale_gives_analytic_nll_and_a_diagonal_coverage_curve():
    rng = np.random.default_rng(3)
    b = rng.uniform(0.01, 0.1, 400_000)
    x = rng.laplace(0.0, b)
    assert cal.nll_laplace(x, b) == pytest.approx(np.mean(np.log(2 * b)) + 1.0, abs=0.01)
    assert cal.nll_laplace(np.abs(x), b) == cal.nll_laplace(x, b)  # symmetric: only |e| matters
    expected, observed = cal.coverage_curve(np.abs(x), b)
    assert expected.size == 99 and expected[0] == 0.01 and expected[-1] == 0.99
    assert cal.miscalibration_area(expected, observed) < 0.01
    assert cal.rms_calibration_error(expected, observed) < 0.01
    for wrong in (b / 2, b * 2):
        assert cal.miscalibration_area(*cal.coverage_curve(x, wrong)) > 0.1
        assert cal.nll_laplace(x, wrong) > cal.nll_laplace(x, b) + 0.1
    assert cal.sharpness(b) == pytest.approx(b.mean())
    assert cal.sharpness(b, rms=True) == pytest.approx(np.sqrt(np.mean(b * b)))


def test_gaussian_nll_with_the_true_std():
    rng = np.random.default_rng(4)
    sigma = rng.uniform(0.01, 0.1, 400_000)
    x = rng.normal(0.0, sigma)
    assert cal.nll_gaussian(x, sigma) == pytest.approx(np.mean(0.5 * np.log(2 * np.pi * sigma**2)) + 0.5, abs=0.01)


@pytest.mark.parametrize("y,b", [(0.0, 1.0), (0.3, 0.1), (-2.0, 0.7), (0.05, 0.5)])
def test_laplace_crps_closed_form_matches_monte_carlo(y, b):
    rng = np.random.default_rng(5)
    x, x2 = rng.laplace(0.0, b, (2, 2_000_000))
    monte_carlo = np.mean(np.abs(x - y)) - 0.5 * np.mean(np.abs(x - x2))
    assert cal.crps_laplace(np.array([y]), np.array([b])) == pytest.approx(monte_carlo, abs=5e-3 * (1 + b))


def test_streaming_accumulator_equals_one_shot_functions():
    rng = np.random.default_rng(6)
    e = rng.exponential(0.03, (7, 24, 20))
    u = e * rng.lognormal(0, 0.4, e.shape) + 0.002
    acc, other = cal.CalibrationAccumulator(), cal.CalibrationAccumulator()
    acc.update(e[:3], u[:3])
    acc.update(e[3], u[3])
    other.update(e[4:, None], u[4:, None])  # N x 1 x H x W works too
    out = acc.merge(other).compute()
    one_shot = {
        "mae": e.mean(), "rmse": np.sqrt(np.mean(e**2)), "nll_laplace": cal.nll_laplace(e, u),
        "nll_gaussian": cal.nll_gaussian(e, u), "crps": cal.crps_laplace(e, u), "sharpness": cal.sharpness(u),
        "sharpness_rms": cal.sharpness(u, rms=True),
        "miscal_area": cal.miscalibration_area(*cal.coverage_curve(e, u)),
        "rms_cal_error": cal.rms_calibration_error(*cal.coverage_curve(e, u)),
        "hist_kl": np.mean([cal.hist_kl(a, b) for a, b in zip(e, u)]),
    }
    for name, value in one_shot.items():
        assert out[name] == pytest.approx(value, rel=1e-12, abs=1e-15), name
    assert out["n_pixels"] == e.size and out["n_frames"] == 7
    np.testing.assert_array_equal(acc.coverage()[1], cal.coverage_curve(e, u)[1])
    assert np.isnan(cal.CalibrationAccumulator().compute()["nll_laplace"])


# ---------------------------------------------------------------- histogram KL
def test_hist_kl_is_zero_for_equal_maps_and_large_for_different_ones():
    rng = np.random.default_rng(7)
    e = rng.exponential(0.03, (64, 64))
    assert cal.hist_kl(e, e) == 0.0
    assert cal.hist_kl(e, rng.permutation(e.ravel()).reshape(e.shape)) == 0.0  # distributions, not maps
    assert cal.hist_kl(e, 3 * e) > 0.1  # the scale counts
    assert cal.hist_kl(e, np.full_like(e, e.mean())) > 0.1
    assert cal.hist_kl(e, rng.uniform(0, e.max(), e.shape)) > 0.1


def test_soft_histogram_is_a_differentiable_distribution():
    x = torch.rand(2, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: soft_histogram(t, bins=5), (x,))
    h = soft_histogram(torch.rand(3, 1000), bins=11)
    assert h.shape == (3, 11) and torch.allclose(h.sum(-1), torch.ones(3)) and (h >= 0).all()


def test_histogram_kl_loss():
    rng = torch.Generator().manual_seed(8)
    err = torch.empty(4, 1, 32, 32).exponential_(30.0, generator=rng)
    assert histogram_kl(err, err.clone()).item() == pytest.approx(0.0, abs=1e-7)
    unc = (err * 3).requires_grad_(True)
    loss = histogram_kl(err, unc)
    assert loss.item() > 0.1
    loss.backward()
    assert torch.isfinite(unc.grad).all() and unc.grad.abs().sum() > 0
    for _ in range(5):  # never negative
        assert histogram_kl(err, torch.rand(4, 1, 32, 32, generator=rng) * 0.1).item() >= 0
    # finite differences on a small input
    e = torch.rand(2, 3, 3, dtype=torch.float64, generator=rng) * 0.1
    u = torch.rand(2, 3, 3, dtype=torch.float64, generator=rng) * 0.1
    assert torch.autograd.gradcheck(lambda t: histogram_kl(e, t), (u.requires_grad_(True),))


def test_histogram_kl_loss_agrees_with_the_hard_metric_for_a_narrow_kernel():
    rng = np.random.default_rng(9)
    e = rng.exponential(0.03, (3, 48, 48))
    u = e * rng.lognormal(0.2, 0.5, e.shape)
    hard = np.mean([cal.hist_kl(a, b) for a, b in zip(e, u)])
    soft = histogram_kl(torch.from_numpy(e), torch.from_numpy(u), bandwidth=1e-4).item()
    assert soft == pytest.approx(hard, rel=1e-3)


# ---------------------------------------------------------------- per-frame quality
def _brute_auroc(s, y):
    pos, neg = s[y], s[~y]
    diff = pos[:, None] - neg[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def _brute_ap(s, y):
    total, prev_recall = 0.0, 0.0
    for t in np.unique(s)[::-1]:
        pred = s >= t
        recall = (pred & y).sum() / y.sum()
        total += (recall - prev_recall) * (pred & y).sum() / pred.sum()
        prev_recall = recall
    return total


def test_fail_auroc_and_auprc_match_brute_force_with_ties():
    rng = np.random.default_rng(10)
    for _ in range(20):
        s = rng.integers(0, 6, 60).astype(float)  # many ties
        y = rng.random(60) < 0.3 + 0.05 * s
        if y.all() or not y.any():
            continue
        assert quality.fail_auroc(s, y) == pytest.approx(_brute_auroc(s, y))
        assert quality.fail_auprc(s, y) == pytest.approx(_brute_ap(s, y))
    y = np.array([0, 0, 1, 1], bool)
    assert quality.fail_auroc([1, 2, 3, 4], y) == 1.0 and quality.fail_auroc([4, 3, 2, 1], y) == 0.0
    assert quality.fail_auroc([1, 1, 1, 1], y) == 0.5 and quality.fail_auprc([1, 1, 1, 1], y) == 0.5
    assert np.isnan(quality.fail_auroc([1, 2], [True, True]))


def test_bad_frames_within_groups():
    psnr = np.array([30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 40, 41, 42, 43, 44, 45, 46, 47, 48, np.nan])
    groups = np.repeat(["frontal", "extreme"], 10)
    bad = quality.bad_frames(psnr, higher_is_better=True, worst_fraction=0.1, groups=groups)
    assert bad.sum() == 2 and bad[9] and bad[10]  # the worst in each group; NaN never bad
    ties = quality.bad_frames(np.array([1.0, 2, 2, 3, 4, 5, 6, 7, 8, 9]), higher_is_better=False, worst_fraction=0.1)
    assert ties.sum() == 1 and ties[-1]
    ties = quality.bad_frames(np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 9]), higher_is_better=False, worst_fraction=0.1)
    assert ties.sum() == 2


def test_psnr_r2_and_frame_spearman():
    rng = np.random.default_rng(11)
    u = rng.lognormal(-3, 0.5, 200)
    psnr = 5.0 - 20 * np.log10(u)
    assert quality.psnr_r2(u, psnr) == pytest.approx(1.0)
    assert quality.psnr_r2(u, rng.normal(30, 1, 200)) < 0.05
    assert quality.unc_frame_spearman(u, u**2) == pytest.approx(1.0)
    out = quality.frame_quality(u, u, psnr)
    assert out["fail_auroc"] == 1.0 and out["bad_rate"] == pytest.approx(0.1)


# ---------------------------------------------------------------- bootstrap
def _clustered(rng, n_clips=40, n_frames=10, mean=30.0):
    clip_effect = rng.normal(0, 1.0, n_clips)
    values = mean + np.repeat(clip_effect, n_frames) + rng.normal(0, 0.5, n_clips * n_frames)
    return values, np.repeat(np.arange(n_clips), n_frames)


def test_clip_bootstrap_ci_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(12)
    hits = 0
    for i in range(200):
        values, clips = _clustered(rng)
        per_clip = np.stack([np.bincount(clips, weights=values), np.bincount(clips)], axis=1)
        res = bootstrap_sums(lambda t: t[:, 0] / t[:, 1], per_clip, resamples=1000, seed=i)
        hits += res.low <= 30.0 <= res.high
    assert 0.90 <= hits / 200 <= 0.99


def test_bootstrap_forms_agree():
    values, clips = _clustered(np.random.default_rng(13), n_clips=15)
    per_clip = np.stack([np.bincount(clips, weights=values), np.bincount(clips)], axis=1)
    by_sums = bootstrap_sums(lambda t: t[:, 0] / t[:, 1], per_clip, resamples=300, seed=3)
    by_frames = bootstrap_ci(np.mean, values, clip_ids=clips, resamples=300, seed=3)
    assert by_frames.estimate == pytest.approx(values.mean())
    np.testing.assert_allclose(by_frames.samples, by_sums.samples, rtol=1e-12)
    assert clip_bootstrap_ci(values, clips, 300, seed=3) == pytest.approx(by_sums.ci)
    per_clip_median = bootstrap_ci(np.median, per_clip[:, 0] / per_clip[:, 1], resamples=200, seed=0)
    assert per_clip_median.low <= per_clip_median.estimate <= per_clip_median.high
    assert bootstrap_sums(np.sum, per_clip[:1]).ci is None


def test_paired_bootstrap_detects_a_real_shift_and_not_a_null_one():
    rng = np.random.default_rng(14)
    values, clips = _clustered(rng, n_clips=30)
    shifted = values + 0.3 + rng.normal(0, 0.3, values.size)
    res = paired_bootstrap(values, shifted, clips, resamples=2000, seed=0)
    assert res.diff == pytest.approx(0.3, abs=0.1) and res.low > 0 and res.p_value < 0.01
    assert res.p_value >= 1 / 2001 and res.n_clips == 30 and res.n_frames == values.size
    rejections = 0
    for i in range(100):
        values, clips = _clustered(rng, n_clips=30)
        null = values + rng.normal(0, 0.3, values.size)  # same mean, paired noise
        rejections += paired_bootstrap(values, null, clips, resamples=1000, seed=i).p_value < 0.05
    assert rejections <= 12
    same = paired_bootstrap(values, values, clips)
    assert same.diff == 0 and same.p_value == 1.0


# ---------------------------------------------------------------- compare
def test_compare_runs(tmp_path):
    run_a = make_fake_run(tmp_path / "a", seed=0)
    run_b = make_fake_run(tmp_path / "b", seed=1, model="other")
    frames_a = pd.read_parquet(run_a / "frames.parquet")
    frames_b = frames_a.copy()
    frames_b["psnr"] = frames_a["psnr"] + 1.0 + np.random.default_rng(0).normal(0, 0.1, len(frames_a))
    frames_b = frames_b[frames_b["clip_id"] != frames_b["clip_id"].iloc[0]]  # one clip only in A
    frames_b.to_parquet(run_b / "frames.parquet", index=False)
    df = compare_runs(run_a, run_b, resamples=500, seed=0)
    assert df.attrs["n_frames_shared"] == len(frames_b) < len(frames_a)
    psnr = df[(df.metric == "psnr") & (df.pose_bin == "all")].iloc[0]
    assert psnr.better == "B" and psnr.significant and psnr.ci_low > 0.9 and psnr.p_value < 0.01
    ssim = df[(df.metric == "ssim") & (df.pose_bin == "all")].iloc[0]
    assert ssim["diff"] == 0 and ssim.better == "tie" and not ssim.significant
    assert set(df.pose_bin) == {"all", "frontal", "moderate", "extreme"}
    assert df[df.metric == "unc_mean"].better.eq("").all()  # no better direction
    text = format_comparison(df)
    assert "psnr ↑" in text and "B *" in text and f"{len(frames_b)} frames" in text


def test_compare_runs_refuses_bad_inputs(tmp_path):
    run_a = make_fake_run(tmp_path / "a", seed=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CompareError, match="frames.parquet"):
        compare_runs(run_a, tmp_path / "empty")
    other = make_fake_run(tmp_path / "b", seed=1)
    frames = pd.read_parquet(other / "frames.parquet")
    frames["clip_id"] = "x" + frames["clip_id"]
    frames.to_parquet(other / "frames.parquet", index=False)
    with pytest.raises(CompareError, match="no \\(clip_id, frame\\) in common"):
        compare_runs(run_a, other)
    (other / "summary.json").write_text("{not json")
    with pytest.raises(CompareError, match="summary.json"):
        compare_runs(run_a, other)
    assert json.loads((run_a / "summary.json").read_text())["model"]


def test_roc_curve_matches_sklearn_and_its_area_is_fail_auroc():
    from sklearn.metrics import roc_auc_score
    from sklearn.metrics import roc_curve as sk_roc_curve

    rng = np.random.default_rng(7)
    bad = rng.random(300) < 0.1
    score = np.round(rng.normal(size=300) + 1.5 * bad, 1)  # rounded: ties across classes
    fpr, tpr = quality.roc_curve(score, bad)
    sk_fpr, sk_tpr, _ = sk_roc_curve(bad, score, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    assert np.trapz(tpr, fpr) == pytest.approx(quality.fail_auroc(score, bad))
    assert np.trapz(tpr, fpr) == pytest.approx(roc_auc_score(bad, score))
    empty = quality.roc_curve(score, np.zeros(300, bool))
    assert empty[0].size == 0 and empty[1].size == 0


def test_holm_adjusts_as_the_textbook_example():
    from bench.metrics.stats import holm

    # m = 4: sorted p 0.01, 0.02, 0.03, 0.04 -> 0.04, 0.06, 0.06 (monotone), 0.06
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    adjusted = holm([0.5, float("nan"), 0.001])
    assert adjusted[0] == pytest.approx(0.5) and np.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.002)


def test_seed_pooled_bootstrap_pools_seeds_and_finds_a_real_difference():
    from bench.metrics.stats import over_seeds, paired_clip_mean, seed_pooled_bootstrap, unpaired_bin_means

    rng = np.random.default_rng(0)
    shifted = [(rng.normal(0.5, 0.2, 12),) for _ in range(3)]  # per-clip B - A around +0.5 in three seeds
    result = seed_pooled_bootstrap(shifted, paired_clip_mean, resamples=500)
    assert result.diff == pytest.approx(np.mean([d.mean() for (d,) in shifted]))
    assert len(result.per_seed) == 3 and result.low > 0 and result.p_value < 0.01
    null = seed_pooled_bootstrap([(rng.normal(0, 0.2, 12),) for _ in range(3)], paired_clip_mean, resamples=500)
    assert null.low < 0 < null.high and null.p_value > 0.05
    bins = seed_pooled_bootstrap([(rng.normal(1, 0.1, 5), rng.normal(2, 0.1, 7)) for _ in range(2)],
                                 unpaired_bin_means, resamples=500)
    assert bins.diff == pytest.approx(1.0, abs=0.15) and bins.low > 0.8
    t = over_seeds(np.array([1.0, 1.2, 0.9]))
    assert t.diff == pytest.approx(31 / 30) and t.low < t.diff < t.high and 0 < t.p_value < 0.05
    assert np.isnan(over_seeds(np.array([1.0])).p_value)


@pytest.mark.parametrize("kind", ["continuous", "ties", "float32", "infinite"])
def test_spearman_and_ranks_equal_scipys_bit_for_bit(kind):
    """The summaries call spearman thousands of times a bootstrap; the own ranks must not move a digit."""
    from scipy import stats

    rng = np.random.default_rng(7)
    for n in (3, 4, 17, 450, 5000):
        x = rng.normal(size=n)
        y = 0.4 * x + rng.normal(size=n)
        if kind == "ties":
            x, y = np.round(x, 1), np.round(y)
        elif kind == "float32":
            x, y = x.astype(np.float32), y.astype(np.float32)
        elif kind == "infinite":
            x[rng.integers(0, n, 2)] = np.inf
        np.testing.assert_array_equal(cal.average_ranks(x), stats.rankdata(x))
        assert cal.spearman(x, y) == stats.spearmanr(x, y).statistic
    assert np.isnan(cal.spearman([1.0, np.nan, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]))
    assert np.isnan(cal.spearman([np.inf] * 4, [1.0, 2.0, 3.0, 4.0]))

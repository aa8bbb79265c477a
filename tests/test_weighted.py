"""Correlations of weighted rows (bench.metrics.weighted) against the statistics of the expanded rows."""
from __future__ import annotations

import numpy as np
import pytest

from bench.harness.scorer_summary import _pearson
from bench.metrics import calibration, quality, weighted
from bench.metrics.stats import bootstrap_ci, bootstrap_rows, bootstrap_sums


def _expanded(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    counts = w.astype(int)
    return np.repeat(x, counts), np.repeat(y, counts)


def _data(kind: str, rng: np.random.Generator, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    if kind == "ties":  # few distinct values on both sides
        return rng.integers(0, 5, n).astype(float), rng.integers(0, 3, n).astype(float)
    if kind == "float32":
        x = rng.random(n).astype(np.float32)
        return x, (x + rng.normal(0, 0.2, n)).astype(np.float32)
    x = rng.normal(size=n)
    y = x + rng.normal(size=n)
    if kind == "nonfinite":
        x[3], y[7], y[11] = np.nan, np.inf, -np.inf
    return x, y


@pytest.mark.parametrize("kind", ["plain", "ties", "float32", "nonfinite"])
@pytest.mark.parametrize("drop", [False, True])
def test_spearman_equals_the_expanded_rows(kind: str, drop: bool) -> None:
    rng = np.random.default_rng(3)
    x, y = _data(kind, rng)
    weights = rng.integers(0, 4, size=(60, x.size)).astype(float)
    weights[0] = 1.0  # the data as given
    weights[1, :] = 0.0
    weights[1, :2] = 1.0  # two pairs: NaN
    weights[2, :] = 0.0
    weights[2, [4, 4 + 1, 4 + 2]] = [3.0, 0.0, 0.0]  # one pair three times: constant, NaN
    got = weighted.spearman(x, y, weights, drop_nonfinite=drop)
    reference = quality.unc_frame_spearman if drop else calibration.spearman
    want = np.array([reference(*_expanded(x, y, w)) if w.sum() else np.nan for w in weights])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[np.isfinite(want)], want[np.isfinite(want)], rtol=0, atol=1e-12)
    if kind == "plain":
        assert np.isfinite(got).sum() >= 55  # the comparison is not vacuous


def test_pearson_and_moment_sums_equal_the_expanded_rows() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=50)
    y = 0.5 * x + rng.normal(size=50)
    weights = rng.integers(0, 3, size=(40, 50)).astype(float)
    weights[0] = 0.0
    weights[0, [1, 2, 3]] = 1.0
    y_const = y.copy()
    y_const[[1, 2, 3]] = 2.0  # constant within resample 0's rows
    for ys in (y, y_const):
        want = np.array([_pearson(*_expanded(x, ys, w)) for w in weights])
        got = weighted.pearson(x, ys, weights)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got[np.isfinite(want)], want[np.isfinite(want)], atol=1e-12)
    groups = rng.integers(0, 5, 50)
    per_group = weighted.moment_sums(x, y, groups)
    group_weights = rng.integers(0, 3, size=(30, 5)).astype(float)
    from_sums = weighted.pearson_of_sums(group_weights @ per_group)
    np.testing.assert_allclose(from_sums, weighted.pearson(x, y, group_weights[:, groups]), atol=1e-12)
    assert np.isnan(weighted.pearson_of_sums(weighted.moment_sums(x, np.ones(50), groups).sum(0)))[0]


def test_bootstrap_rows_draws_the_resamples_of_bootstrap_ci() -> None:
    """Same seed, same clips drawn: the resampled statistics agree one by one, whatever the block size."""
    rng = np.random.default_rng(5)
    clips = np.repeat([f"clip{i}" for i in (3, 1, 7, 0, 5)], [30, 10, 25, 40, 15])
    x = rng.random(clips.size)
    y = x + rng.normal(0, 0.3, clips.size)
    old = bootstrap_ci(calibration.spearman, x, y, clip_ids=clips, resamples=300, seed=11)
    for cells in (1 << 22, 500):
        new = bootstrap_rows(lambda w: weighted.spearman(x, y, w), calibration.spearman(x, y), clips,
                             resamples=300, seed=11, cells=cells)
        np.testing.assert_allclose(new.samples, old.samples, atol=1e-12)
        assert (new.estimate, new.n_clips) == (old.estimate, old.n_clips)
        assert new.low == pytest.approx(old.low, abs=1e-12) and new.high == pytest.approx(old.high, abs=1e-12)
    inverse = np.unique(clips, return_inverse=True)[1]
    sums = bootstrap_sums(weighted.pearson_of_sums, weighted.moment_sums(x, y, inverse), resamples=300, seed=11)
    pearson_old = bootstrap_ci(_pearson, x, y, clip_ids=clips, resamples=300, seed=11)
    np.testing.assert_allclose(sums.samples, pearson_old.samples, atol=1e-12)
    one_clip = bootstrap_rows(lambda w: weighted.spearman(x, y, w), 0.5, np.zeros(clips.size), resamples=10)
    assert one_clip.ci is None and one_clip.estimate == 0.5

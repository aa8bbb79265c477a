"""Recalibration known answers: a calibrated map stays so, a 2x over-wide one is fixed, AUSE is unchanged."""
import numpy as np
import pytest

from bench.metrics import calibration
from bench.metrics.recalibration import fit_isotonic, fit_scale, recalibration_report


def _laplace_pixels(n: int, seed: int, width: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """True scales u spread over a decade, errors |e| ~ Exp(u); the map given is ``width * u``."""
    rng = np.random.default_rng(seed)
    u = np.exp(rng.uniform(np.log(0.01), np.log(0.1), n))
    e = rng.exponential(u)
    return width * u, e


def _ause(u, e):
    fractions = calibration.sparsification_fractions()
    return calibration.ause(*calibration.sparsification_curves(e, u, fractions), fractions)


def test_a_calibrated_map_stays_calibrated():
    u_cal, e_cal = _laplace_pixels(50_000, 0)
    u_test, e_test = _laplace_pixels(50_000, 1)
    assert fit_scale(u_cal, e_cal).scale == pytest.approx(1.0, abs=0.02)
    report = recalibration_report(u_cal, e_cal, u_test, e_test)
    assert report["before"]["miscal_area"] < 0.01
    for name in ("scale", "isotonic"):
        assert report[name]["miscal_area"] < 0.015
        assert report[name]["nll"] == pytest.approx(report["before"]["nll"], abs=0.01)


def test_a_twice_too_wide_map_is_fixed_by_the_scalar():
    u_cal, e_cal = _laplace_pixels(50_000, 2, width=2.0)
    u_test, e_test = _laplace_pixels(50_000, 3, width=2.0)
    assert fit_scale(u_cal, e_cal).scale == pytest.approx(0.5, abs=0.01)
    report = recalibration_report(u_cal, e_cal, u_test, e_test)
    assert report["before"]["miscal_area"] > 0.1  # about a fifth of the interval mass off
    assert report["scale"]["miscal_area"] < 0.01
    assert report["scale"]["nll"] < report["before"]["nll"] - 0.1  # ln 2 - 1/2 ~ 0.19 nats better in expectation


def test_an_inverted_scale_pattern_is_fixed_by_the_isotonic_map_only():
    """u right in ranking but with the wrong spread (u^2): no scalar fixes it, the isotonic map does."""
    rng = np.random.default_rng(4)
    true = np.exp(rng.uniform(np.log(0.01), np.log(0.1), 100_000))
    e = rng.exponential(true)
    u = true ** 2 * 10  # monotone in the truth, spread squashed at the low end and stretched at the top
    half = u.size // 2
    report = recalibration_report(u[:half], e[:half], u[half:], e[half:])
    assert report["isotonic"]["miscal_area"] < 0.02
    assert report["isotonic"]["miscal_area"] < report["scale"]["miscal_area"] - 0.02


@pytest.mark.parametrize("fit", [fit_scale, fit_isotonic])
def test_recalibration_never_changes_the_ranking_so_ause_is_exactly_the_same(fit):
    u, e = _laplace_pixels(20_000, 5)
    u = np.round(u, 3)  # coarse u: the isotonic fit has flat stretches whose ties would otherwise reorder pixels
    mapped = fit(u, e)(u)
    assert np.all(np.diff(mapped[np.argsort(u, kind="stable")]) >= 0)
    assert _ause(mapped, e) == pytest.approx(_ause(u, e), rel=1e-12, abs=1e-15)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="differ in size"):
        fit_scale(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="no finite pixels"):
        fit_isotonic(np.zeros(3), np.ones(3))

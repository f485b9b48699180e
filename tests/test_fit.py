"""Curve fits recover known parameters from synthetic data; plots write real PNGs."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

from analysis.fit import CurveFit, FitError, sublinear
from analysis.forms import fit_learning_curve, fit_model_size, prediction_band
from analysis.plots import plot_learning_curve, plot_model_size

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MIN_PNG_BYTES = 10_000

ALPHA, BETA_G, GAMMA = 5.0, -0.3, 0.5
# Ten doublings from 1e3: the span over which the paper's curves bend towards gamma.
M_LC = 1e3 * 2.0 ** np.arange(10)
M_MS = 1e3 * 2.0 ** np.arange(8)


def noisy(clean: np.ndarray, sigma_log: float, seed: int) -> np.ndarray:
    """Multiplicative log-normal noise: clean * exp(N(0, sigma_log))."""
    return clean * np.exp(np.random.default_rng(seed).normal(0.0, sigma_log, clean.size))


@pytest.fixture(scope="module")
def lc_data() -> tuple[np.ndarray, np.ndarray]:
    return M_LC, noisy(ALPHA * M_LC**BETA_G + GAMMA, 0.01, seed=0)


@pytest.fixture(scope="module")
def lc_fit(lc_data) -> CurveFit:
    return fit_learning_curve(*lc_data)


# --- learning curve ---------------------------------------------------------------------------


def test_learning_curve_recovers_parameters(lc_fit):
    assert lc_fit.form == "m2"
    assert set(lc_fit.params) == {"alpha", "beta_g", "gamma"}
    assert abs(lc_fit.params["beta_g"] - BETA_G) <= 0.05
    assert abs(lc_fit.params["gamma"] - GAMMA) <= 0.1 * GAMMA
    lo, hi = lc_fit.intervals["beta_g"]
    assert lo <= BETA_G <= hi
    # 1% noise: the log residuals should be about that size, not a bad fit.
    assert lc_fit.rmse_log < 0.03
    assert lc_fit.n_points == 10 and lc_fit.n_boot == 200
    assert lc_fit.x_range == (M_LC[0], M_LC[-1])


def test_learning_curve_exact_data_is_fitted_exactly():
    eps = ALPHA * M_LC**BETA_G + GAMMA
    fit = fit_learning_curve(M_LC, eps, n_boot=0)
    assert fit.params["alpha"] == pytest.approx(ALPHA, rel=1e-4)
    assert fit.params["beta_g"] == pytest.approx(BETA_G, abs=1e-5)
    assert fit.params["gamma"] == pytest.approx(GAMMA, rel=1e-4)
    np.testing.assert_allclose(fit.predict(M_LC), eps, rtol=1e-6)
    # No bootstrap: intervals are unknown, not made up.
    assert all(math.isnan(v) for iv in fit.intervals.values() for v in iv)


def test_pure_power_law_gives_gamma_near_zero():
    eps = noisy(3.0 * M_LC**-0.5, 0.01, seed=1)
    fit = fit_learning_curve(M_LC, eps, n_boot=50)
    assert fit.params["beta_g"] == pytest.approx(-0.5, abs=0.05)
    # Relative to the smallest error (~0.04): gamma carries almost none of it.
    assert fit.params["gamma"] < 0.1 * eps.min()


def test_fit_is_invariant_to_point_order(lc_data):
    m, eps = lc_data
    order = np.random.default_rng(3).permutation(m.size)
    a = fit_learning_curve(m, eps, n_boot=20)
    b = fit_learning_curve(m[order], eps[order], n_boot=20)
    assert a.to_dict() == b.to_dict()


def test_prediction_band_brackets_fit(lc_data, lc_fit):
    m, eps = lc_data
    x = np.geomspace(m[0], m[-1], 25)
    low, high = prediction_band(m, eps, x)
    assert low.shape == high.shape == x.shape
    assert np.all(low < high)
    centre = lc_fit.predict(x)
    assert np.all(low <= centre) and np.all(centre <= high)
    # With 1% noise the refits agree closely: the band stays within 10% of the curve.
    assert np.all((high - low) / centre < 0.1)


def test_predict_warns_on_far_extrapolation(lc_fit, caplog):
    with caplog.at_level(logging.WARNING, logger="analysis.fit"):
        lc_fit.predict(M_LC[-1] * 2)
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="analysis.fit"):
        lc_fit.predict([M_LC[-1] * 100])
    assert any("extrapolating" in r.getMessage() for r in caplog.records)


def test_to_dict_is_json_serialisable(lc_fit):
    d = json.loads(json.dumps(lc_fit.to_dict(), allow_nan=False))
    assert d["form"] == "m2"
    assert d["params"]["beta_g"] == lc_fit.params["beta_g"]
    assert d["intervals"]["gamma"] == list(lc_fit.intervals["gamma"])
    assert d["n_boot"] == 200 and d["ci"] == 0.95


def test_wider_ci_gives_wider_interval(lc_data):
    narrow = fit_learning_curve(*lc_data, n_boot=100, ci=0.5).intervals["beta_g"]
    wide = fit_learning_curve(*lc_data, n_boot=100, ci=0.95).intervals["beta_g"]
    assert wide[0] < narrow[0] and narrow[1] < wide[1]


# --- model size -------------------------------------------------------------------------------


def test_model_size_recovers_parameters():
    n_params = noisy(2.0 * M_MS**0.6, 0.05, seed=2)
    fit = fit_model_size(M_MS, n_params)
    assert fit.form == "power"
    assert set(fit.params) == {"sigma", "beta_p"}
    assert fit.params["beta_p"] == pytest.approx(0.6, abs=0.05)
    assert fit.params["sigma"] == pytest.approx(2.0, rel=0.5)
    lo, hi = fit.intervals["beta_p"]
    assert lo <= 0.6 <= hi
    np.testing.assert_allclose(fit.predict(M_MS), n_params, rtol=0.2)


def test_model_size_allows_equal_sizes():
    # Several subsets picking the same model is normal with a discrete size grid.
    n_params = np.array([1e4, 1e4, 3e4, 3e4, 3e4, 1e5, 1e5, 3e5])
    fit = fit_model_size(M_MS, n_params, n_boot=50)
    assert 0.0 < fit.params["beta_p"] < 1.0


def test_sublinear_true_for_beta_06():
    fit = fit_model_size(M_MS, noisy(2.0 * M_MS**0.6, 0.05, seed=4))
    assert sublinear(fit)


def test_sublinear_false_for_linear_growth():
    fit = fit_model_size(M_MS, noisy(0.5 * M_MS**1.0, 0.05, seed=5))
    lo, hi = fit.intervals["beta_p"]
    assert lo < 1.0 < hi
    assert not sublinear(fit)


def test_sublinear_rejects_learning_curve_fit(lc_fit):
    with pytest.raises(ValueError):
        sublinear(lc_fit)


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "m, y, fragment",
    [
        ([1e3, 2e3], [0.5, 0.4], "at least 3"),
        ([1e3, 2e3, 4e3], [0.5, float("nan"), 0.3], "non-finite"),
        ([1e3, 2e3, float("inf")], [0.5, 0.4, 0.3], "non-finite"),
        ([1e3, 2e3, 4e3], [0.5, 0.0, 0.3], "positive"),
        ([-1e3, 2e3, 4e3], [0.5, 0.4, 0.3], "positive"),
        ([1e3, 2e3, 2e3], [0.5, 0.4, 0.3], "duplicate"),
        ([1e3, 2e3, 4e3, 8e3], [0.5, 0.4, 0.3], "lengths"),
    ],
)
@pytest.mark.parametrize("fitter", [fit_learning_curve, fit_model_size])
def test_bad_input_raises_fit_error(fitter, m, y, fragment):
    with pytest.raises(FitError, match=fragment) as info:
        fitter(m, y, n_boot=5)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


# --- determinism and speed ----------------------------------------------------------------------


def test_deterministic(lc_data):
    m, eps = lc_data
    assert fit_learning_curve(m, eps, seed=7).to_dict() == fit_learning_curve(m, eps, seed=7).to_dict()
    n_params = noisy(2.0 * M_MS**0.6, 0.05, seed=2)
    assert fit_model_size(M_MS, n_params, seed=7).to_dict() == fit_model_size(M_MS, n_params, seed=7).to_dict()
    x = np.geomspace(1e3, 1e6, 10)
    a, b = prediction_band(m, eps, x, seed=7), prediction_band(m, eps, x, seed=7)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_different_seeds_differ_only_in_intervals(lc_data):
    a = fit_learning_curve(*lc_data, n_boot=50, seed=1)
    b = fit_learning_curve(*lc_data, n_boot=50, seed=2)
    assert a.params == b.params
    assert a.intervals != b.intervals


# --- plots --------------------------------------------------------------------------------------


def assert_png(path, expected):
    assert path == expected
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > MIN_PNG_BYTES


def test_plot_learning_curve_writes_png(tmp_path, lc_data, lc_fit):
    m, eps = lc_data
    x = np.geomspace(m[0] / 1.5, m[-1] * 1.5, 60)
    low, high = prediction_band(m, eps, x, n_boot=50)
    target = tmp_path / "sub" / "lc.png"
    out = plot_learning_curve(m, eps, lc_fit, target, "top-1 error", best_guess=2.0,
                              title="synthetic", band=(x, low, high))
    assert_png(out, target)


def test_plot_learning_curve_without_fit(tmp_path, lc_data):
    target = tmp_path / "lc_nofit.png"
    assert_png(plot_learning_curve(*lc_data, None, str(target), "loss"), target)


def test_plot_model_size_writes_png(tmp_path):
    n_params = noisy(2.0 * M_MS**0.6, 0.05, seed=2)
    fit = fit_model_size(M_MS, n_params)
    target = tmp_path / "ms.png"
    assert_png(plot_model_size(M_MS, n_params, fit, target, title="synthetic"), target)

"""Every curve form recovers known parameters; auto, regions, planning and bootstrap coverage."""

from __future__ import annotations


import numpy as np
import pytest

from analysis.fit import FitError
from analysis.forms import FORMS, LEARNING_FORMS, M2, make_form, m4_excess_fraction
from analysis.plan import data_for_error, predict_error
from analysis.regions import IRREDUCIBLE, POWER_LAW, SMALL_DATA, classify, fit_mask
from analysis.select import default_holdouts, fit_curve

# 16 doublings from 1e3: long enough for every form's features (break, floor) to show.
M = 1e3 * 2.0 ** np.arange(16)

# form -> (true parameters, parameters that must be recovered within 10%); the others trade
# off against each other along flat valleys (M4's alpha, eps_0 and shape; BNSL's smoothness),
# so for those forms the curve, its exponent and its floor are what must come back.
TRUTH = {
    "m1": ({"alpha": 5.0, "beta_g": -0.3}, ("alpha", "beta_g")),
    "m2": ({"alpha": 5.0, "beta_g": -0.4, "gamma": 0.2}, ("alpha", "beta_g", "gamma")),
    "m3": ({"alpha": 5.0, "beta_g": -0.4, "m_sat": 3e5}, ("alpha", "beta_g", "m_sat")),
    "m4": ({"alpha": 20.0, "beta_g": -0.5, "gamma": 0.1, "eps_0": 1.0, "shape": 1.0}, ("beta_g", "gamma")),
    "bnsl": ({"alpha": 1.0, "beta_0": -0.05, "beta_g": -0.6, "gamma": 0.05, "m_break": 2e4, "smooth": 0.5},
             ("beta_0", "beta_g", "gamma", "m_break")),
    "power": ({"sigma": 3.0, "beta_p": 0.7}, ("sigma", "beta_p")),
}


def noisy(clean: np.ndarray, sigma_log: float, seed: int) -> np.ndarray:
    return clean * np.exp(np.random.default_rng(seed).normal(0.0, sigma_log, clean.size))


def test_every_form_is_covered():
    assert set(TRUTH) == set(FORMS)


@pytest.mark.parametrize("name", list(FORMS))
def test_form_recovers_known_parameters_from_noisy_data(name):
    truth, strict = TRUTH[name]
    est = make_form(name, n_boot=0)
    clean = est.curve(truth, M)
    fit = est.fit(M, noisy(clean, 0.005, seed=1))
    assert fit.form == name and set(fit.params) == set(truth)
    for key in strict:
        assert fit.params[key] == pytest.approx(truth[key], rel=0.1, abs=0.02), key
    # The fitted curve is the true one to within the noise, over the data...
    assert np.max(np.abs(np.log(fit.predict(M)) - np.log(clean))) < 0.02
    # ... and so is its limit.
    assert fit.floor() == pytest.approx(est.floor(truth), rel=0.1, abs=1e-3)


@pytest.mark.parametrize("name", list(LEARNING_FORMS))
def test_learning_forms_fall_monotonically(name):
    truth, _ = TRUTH[name]
    y = make_form(name).curve(truth, np.geomspace(1e2, 1e12, 200))
    assert np.all(np.diff(y) <= 1e-12)


def test_m4_solver_satisfies_its_equation():
    for shape in (0.001, 0.5, 1.0, 5.0):
        log_k = np.linspace(-40, 40, 161)
        log_t = m4_excess_fraction(log_k, shape)
        t = np.exp(log_t)
        ok = t < 0.999   # nearer 1, computing 1 - t from t loses the digits this check needs
        assert np.all((t > 0) & (t < 1 + 1e-12))
        np.testing.assert_allclose(log_t[ok], log_k[ok] + shape * np.log1p(-t[ok]), atol=1e-9)


def test_bootstrap_intervals_cover_the_true_exponent():
    """95% intervals of beta_g over 50 seeded synthetic studies (10 doublings, 2% noise)."""
    m = 1e3 * 2.0 ** np.arange(10)
    clean = 5.0 * m**-0.35 + 0.2
    covered = 0
    for rep in range(50):
        fit = M2(n_boot=100, seed=rep).fit(m, noisy(clean, 0.02, seed=1000 + rep))
        lo, hi = fit.intervals["beta_g"]
        covered += lo <= -0.35 <= hi
    assert covered >= 45, f"covered {covered} of 50"


def test_seed_values_widen_the_bootstrap():
    m = 1e3 * 2.0 ** np.arange(8)
    clean = 5.0 * m**-0.35 + 0.2
    rng = np.random.default_rng(3)
    seeds = [c * np.exp(rng.normal(0, 0.05, 3)) for c in clean]
    med = np.array([np.median(s) for s in seeds])
    plain = M2(n_boot=100).fit(m, med)
    both = M2(n_boot=100).fit(m, med, y_seeds=seeds)
    assert both.params == plain.params
    width = lambda f: np.subtract(*f.intervals["beta_g"][::-1])  # noqa: E731
    assert width(both) > width(plain)


def test_auto_scores_every_candidate_and_picks_the_lowest():
    y = noisy(M2().curve(TRUTH["m2"][0], M), 0.01, seed=2)
    sel = fit_curve(M, y, form="auto", holdout=3, n_boot=0)
    assert set(sel.scores) == set(LEARNING_FORMS)
    assert sel.form == min(sel.scores, key=sel.scores.get)
    assert sel.fit.n_points == M.size   # refitted on every point
    assert sel.holdout_rmse_log < 0.05


@pytest.mark.parametrize("n, min_fit, expected", [
    (8, 4, (1, 2, 4)),       # half leaves 4, enough for forms of up to 4 parameters
    (10, 7, (2, 3)),         # half would leave 5: bnsl (7) could not be fitted, so no half
    (14, 7, (2, 3, 4, 7)),
    (5, 4, (1,)),            # every horizon leaves at least 4 points
])
def test_default_horizons(n, min_fit, expected):
    assert default_holdouts(n, min_fit) == expected


def test_auto_scores_four_horizons_on_a_long_curve_without_dropping_a_form():
    m = np.geomspace(1e3, 1e6, 16)
    y = noisy(M2().curve(TRUTH["m2"][0], m), 0.01, seed=4)
    sel = fit_curve(m, y, form="auto", n_boot=0)
    assert sel.splits == (3, 4, 5, 8) and sel.holdout == 3
    assert not sel.skipped and set(sel.scores) == set(LEARNING_FORMS)


def test_auto_leaves_out_forms_with_too_many_parameters():
    m, y = M[:5], noisy(M2().curve(TRUTH["m2"][0], M[:5]), 0.01, seed=2)
    sel = fit_curve(m, y, form="auto", holdout=1, n_boot=0)
    assert set(sel.skipped) == {"m4", "bnsl"} and set(sel.scores) == {"m1", "m2", "m3"}


def test_regions_small_data_power_law_irreducible():
    # Flat at the best guess for small m, then a power law, then the floor.
    truth = {"alpha": 1.0, "beta_0": 0.0, "beta_g": -0.7, "gamma": 0.05, "m_break": 1e4, "smooth": 0.1}
    est = make_form("bnsl")
    eps = est.curve(truth, M)
    best_guess = float(eps[0]) * 1.01
    keep = fit_mask(eps, best_guess)
    assert keep.sum() < M.size and keep[-1] and not keep[0]
    fit = M2(n_boot=0).fit(M[keep], eps[keep])
    reg = classify(M, eps, fit, best_guess)
    assert reg.labels[0] == SMALL_DATA and reg.labels[-1] == IRREDUCIBLE and POWER_LAW in reg.labels
    # Ordered along m: small-data, then power law, then irreducible.
    order = {SMALL_DATA: 0, POWER_LAW: 1, IRREDUCIBLE: 2}
    assert [order[x] for x in reg.labels] == sorted(order[x] for x in reg.labels)
    assert reg.small_data_until < reg.power_law_from < reg.irreducible_from


def test_data_for_error_inverts_the_curve_and_knows_the_floor():
    y = noisy(M2().curve(TRUTH["m2"][0], M[:10]), 0.01, seed=4)
    fit = M2(n_boot=100).fit(M[:10], y)
    target = 0.25
    plan = data_for_error(fit, target)
    assert plan.reachable and fit.predict(np.array([plan.m]))[0] == pytest.approx(target, rel=1e-6)
    assert plan.low <= plan.m <= plan.high
    below = data_for_error(fit, fit.floor() * 0.9)
    assert not below.reachable and below.m is None and "unreachable" in below.note
    est = predict_error(fit, 1e7)
    assert est.low <= est.value <= est.high


@pytest.mark.parametrize("x, y, fragment", [
    ([1e3, 2e3], [0.5, 0.4], "at least 3"),
    ([1e3, 2e3, 4e3], [0.5, 0.0, 0.3], "positive"),
    ([1e3, 2e3, 4e3], [0.5, float("nan"), 0.3], "non-finite"),
    ([1e3, 1e3, 4e3], [0.5, 0.4, 0.3], "duplicate"),
])
def test_bad_points_are_fit_errors(x, y, fragment):
    with pytest.raises(FitError, match=fragment):
        fit_curve(x, y, form="m2")


def test_named_form_needs_its_parameter_count():
    with pytest.raises(FitError, match=r"form m4 needs at least 6 points \(5 parameters and one more"):
        make_form("m4").fit(M[:5], M2().curve(TRUTH["m2"][0], M[:5]))
    with pytest.raises(ValueError, match="unknown curve form"):
        fit_curve(M, M**-0.3, form="m9")

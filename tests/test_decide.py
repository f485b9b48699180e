"""Step budgets that grow with the subset, the compute-limited label, backtests and the decision
summary: the pure parts, on synthetic curves with known answers."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from analysis import decision
from analysis.backtest import backtest
from analysis.backtest import metrics as backtest_metrics
from analysis.plan import Estimate
from analysis.regions import COMPUTE_LIMITED, POWER_LAW, SMALL_DATA, classify, compute_limited_reasons, fit_mask
from analysis.select import fit_curve
from domains.protocol import TrainSettings


def test_step_budget_grows_with_the_subset_between_a_floor_and_the_cap():
    t = TrainSettings(batch_size=32, max_steps=1500, min_round_steps=25, patience=2, warmup_steps=20, max_epochs=12)
    floor = 20 + 3 * 25
    budgets = [t.step_budget(e) for e in (0.5, 1, 7, 16, 64, 1000)]
    assert budgets == [floor, floor, floor, 192, 768, 1500]
    assert TrainSettings(max_steps=400).step_budget(1000) == 400   # max_epochs 0: the flat cap
    assert TrainSettings(max_steps=1500, max_epochs=30, min_steps=200).step_budget(2) == 200


def test_compute_limited_reasons_name_the_cap_and_the_cut_short_seeds():
    reasons = compute_limited_reasons([64, 256, 128, 256, 128], [0.0, 0.0, 1.0, 1.0, 0.5], max_width=256)
    assert reasons[0] == ""
    assert "cap" in reasons[1] and "budget" not in reasons[1]
    assert "budget" in reasons[2] and "cap" not in reasons[2]
    assert "cap" in reasons[3] and "budget" in reasons[3]
    assert reasons[4] == ""   # one seed of two reached its minimum within the budget
    assert compute_limited_reasons([256], [0.0], max_width=None) == [""]


def test_compute_limited_points_leave_the_fit_and_get_their_own_label():
    m = 2.0 ** np.arange(10, 17)
    eps = 3.0 * m ** -0.2 + 0.5
    eps[-1] = eps[-2] * 1.05      # the top point is cut short: worse than its neighbour
    limited = np.zeros(m.size, dtype=bool)
    limited[-1] = True
    keep = fit_mask(eps, best_guess=None, exclude=limited)
    assert keep.tolist() == [True] * 6 + [False]
    sel = fit_curve(m[keep], eps[keep], form="m2", n_boot=0)
    labels = classify(m, eps, sel.fit, best_guess=None, compute_limited=limited).labels
    assert labels[-1] == COMPUTE_LIMITED and set(labels[:-1]) <= {POWER_LAW, "irreducible"}
    # Too few points would remain: all are fitted, the labels still say which are limited.
    assert fit_mask(eps[:3], None, exclude=[True, False, False]).all()
    big_guess = float(eps.max()) * 1.01
    assert classify(m, eps, sel.fit, big_guess, compute_limited=limited).labels[0] == SMALL_DATA


def _curve(n=10, noise=0.0, seed=0):
    m = 1000.0 * 2.0 ** np.arange(n)
    eps = 5.0 * m ** -0.3 + 0.05
    rng = np.random.default_rng(seed)
    return m, eps * np.exp(rng.normal(0.0, noise, n))


def test_backtest_refits_on_the_prefixes_and_scores_the_points_left_out():
    m, eps = _curve(10, noise=0.01)
    bt = backtest(m, eps, form="m2", n_boot=50)
    assert bt["fit_max_x"] == m[m <= m.max() / 8].max()
    assert [p["x"] for p in bt["points"]] == m[m > m.max() / 8].tolist()
    for p in bt["points"]:
        assert p["low"] <= p["predicted"] <= p["high"]
        assert p["rel_error"] == pytest.approx((p["predicted"] - p["observed"]) / p["observed"])
    # A true M2 with 1% noise, fitted on 7 points, extrapolates 8x within 10%.
    assert abs(bt["rel_error_at_max"]) < 0.1
    assert bt["coverage"] == np.mean([p["inside"] for p in bt["points"]])
    l2o = bt["leave_two_out"]
    assert [p["x"] for p in l2o["points"]] == m[-2:].tolist() and l2o["fit_max_x"] == m[-3]
    names = backtest_metrics(bt)
    assert set(names) == {"backtest_m8_rel_error_at_max", "backtest_m8_coverage",
                          "backtest_l2o_rel_error_at_max", "backtest_l2o_coverage"}


def test_backtest_says_why_when_the_prefix_is_too_short():
    m, eps = _curve(6)
    bt = backtest(m, eps, form="m2", n_boot=0)
    assert bt["points"] == [] and "at least 4 points" in bt["error"] and bt["rel_error_at_max"] is None
    assert bt["leave_two_out"]["points"] and "error" not in bt["leave_two_out"]
    # A prefix with as many points as m2 has parameters is refused, in the form's own words.
    short = backtest(m[:5], eps[:5], form="m2", n_boot=0)["leave_two_out"]
    assert short["points"] == [] and "form m2 needs at least 4 points" in short["error"]
    assert set(backtest_metrics(bt)) == {"backtest_l2o_rel_error_at_max", "backtest_l2o_coverage"}
    # No fitted point at all up to m_max/8 (the small ones were small-data): said, not a crash.
    empty = backtest(m[-3:], eps[-3:], form="m2", n_boot=0)
    assert empty["fit_max_x"] is None and "0 fitted point(s)" in empty["error"]


def test_backtest_catches_a_curve_that_bends_after_the_prefix():
    """Points that fall faster after m_max/8 (a regime change) are predicted too high: the
    backtest must say so, not hide it."""
    m, eps = _curve(10)
    eps[m > m.max() / 8] *= np.linspace(0.9, 0.6, int((m > m.max() / 8).sum()))
    bt = backtest(m, eps, form="m2", n_boot=50)
    assert bt["rel_error_at_max"] > 0.3
    assert not bt["points"][-1]["inside"]


def _facts(**kw):
    base = dict(metric="bits_per_char", unit="char", x_now=131072, error_now=2.4, region_now="power-law",
                at_2x=Estimate(2.2, 2.1, 2.3), at_10x=Estimate(1.9, 1.7, 2.1), gain=Estimate(0.083, 0.05, 0.11),
                floor=Estimate(1.2, 0.9, 1.5), level=0.9, n_points=7, x_lo=2048, form="m2")
    return decision.Facts(**{**base, **kw})


def test_decision_summary_states_every_number_with_its_interval_and_level():
    f = _facts(n_params_10x=Estimate(2.0e6, 1.5e6, 3.0e6), compute="The study trained 1e+16 FLOPs.")
    text = decision.summarize(f)
    for needle in ("131,072 char", "2.4 bits_per_char", "power-law", "rests on 7 points, from 2,048 to 131,072 char",
                   "2.2 [2.1, 2.3]", "1.9 [1.7, 2.1]", "90% predictive intervals",
                   "cuts the error by 8.3% [5.0%, 11.0%] (1 - f(2m)/f(m) on the fitted curve, 90% interval)",
                   "2,000,000 parameters [1,500,000, 3,000,000] (90% interval of the model-size curve)",
                   "The study trained 1e+16 FLOPs.",
                   "floor is 1.2 [0.9, 1.5] (90% interval)", "50.0% [37.5%, 62.5%] of today's error"):
        assert needle in text, (needle, text)
    # Without a bootstrap the ends are unknown, and said so; a CSV has no model size.
    bare = decision.summarize(_facts(at_2x=Estimate(2.2, math.nan, math.nan), floor=Estimate(0.01, 0.0, 0.02)))
    assert "[?, ?]" in bare and "parameters" not in bare
    assert "No floor shows in the data: it is at most 0.02, 0.8% of today's error (90% upper end)" in bare


def test_the_doubling_gain_is_the_curves_ratio_not_the_observed_error():
    """1 - f(2m)/f(m) of the fitted curve, as docs/method.md defines it, even when today's
    measurement lies off the curve; its interval holds the value."""
    m = 1000.0 * 2.0 ** np.arange(8)
    eps = (2.0 * m ** -0.3 + 0.05) * np.exp(np.random.default_rng(1).normal(0.0, 0.02, m.size))
    sel = fit_curve(m, eps, form="m2", n_boot=100)
    f = decision.facts(sel.fit, m, eps, metric="err", unit="examples", level=0.9)
    curve = sel.fit.predict(np.array([m[-1], 2 * m[-1]]), warn=False)
    assert f.gain.value == pytest.approx(1 - curve[1] / curve[0])
    assert f.gain.low < f.gain.value < f.gain.high
    assert f.n_points == 8 and f.x_lo == m[0] and f.error_now == eps[-1]


def test_no_floor_is_claimed_only_when_its_upper_end_is_small():
    """A curve whose true floor is most of its error, fitted where it still looks straight:
    whatever form auto picks, the summary gives the floor with its interval and never says
    there is no floor; a pure power law (floor 0) does get "No floor"."""
    m = 1000.0 * 2.0 ** np.arange(7)
    high_floor = (0.3 * m ** -0.25 + 0.5) * np.exp(np.random.default_rng(3).normal(0.0, 0.01, m.size))
    assert 0.5 / high_floor[-1] > 0.85
    for form in ("m1", "auto"):
        sel = fit_curve(m, high_floor, form=form, n_boot=100)
        text = decision.summarize(decision.facts(sel.fit, m, high_floor, metric="err", unit="examples", level=0.9))
        assert "No floor" not in text and "no floor" not in text.replace("has no floor term", ""), text
        assert re.search(r"\[\d[\d.]*, \d[\d.]*\] \(90% interval\)", text), text
        if sel.form == "m1":
            assert "Form m1 has no floor term, but the data do not rule one out: an m2 fit" in text
    # Seven points at 1% noise cannot rule out a floor of a fifth of the error; twelve at 0.5% can.
    m = 1000.0 * 2.0 ** np.arange(12)
    pure = 3.0 * m ** -0.3 * np.exp(np.random.default_rng(4).normal(0.0, 0.005, m.size))
    sel = fit_curve(m, pure, form="m1", n_boot=100)
    text = decision.summarize(decision.facts(sel.fit, m, pure, metric="err", unit="examples", level=0.9))
    assert "No floor shows in the data" in text and "(an m2 fit to the same points)" in text
    # Three points cannot bound a floor: said, not guessed.
    sel = fit_curve(m[:3], pure[:3], n_boot=50)
    text = decision.summarize(decision.facts(sel.fit, m[:3], pure[:3], metric="err", unit="examples", level=0.9))
    assert "Whether the error levels off cannot be told: 3 points cannot bound a floor (m2 needs 4)." in text


def _csv(tmp_path, flags=True):
    m = 1000.0 * 2.0 ** np.arange(10)
    eps = (5.0 * m ** -0.3 + 0.05) * np.exp(np.random.default_rng(0).normal(0.0, 0.01, m.size))
    eps[-1] *= 1.1   # the last point cut short: worse than the curve
    lines = ["m,err,limited"] + [f"{a},{b},{int(i == m.size - 1)}" for i, (a, b) in enumerate(zip(m, eps))]
    path = tmp_path / "curve.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, m, eps


@pytest.mark.slow   # over 5 s on 2 cores (a subprocess, a study or many fits); the full suite runs it
def test_fit_csv_backtest_compute_limited_and_decision(tmp_path):
    from conftest import run_cli

    path, m, eps = _csv(tmp_path)
    proc = run_cli(["fit", str(path), "--x", "m", "--y", "err", "--backtest", "--compute-limited", "limited",
                    "--n-boot", "60", "--json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (c,) = json.loads(proc.stdout)["curves"]
    assert c["regions"]["labels"][-1] == COMPUTE_LIMITED and c["n_points"] == m.size - 1
    bt = c["backtest"]
    assert bt["fit_max_x"] == m[m <= m[:-1].max() / 8].max()
    assert {"x", "observed", "predicted", "low", "high", "rel_error", "inside"} <= set(bt["points"][0])
    assert [p["x"] for p in bt["leave_two_out"]["points"]] == m[-3:-1].tolist()
    # "Now" is the largest fitted point; the compute-limited one is named as outside the curve.
    assert c["decision"].startswith(f"At {m[-2]:,.0f} m the error is")
    assert f"x = {m[-1]:,.0f} (compute-limited) is not in the fit" in c["decision"]
    assert "backtest (m <= max/8" in proc.stderr
    bad = run_cli(["fit", str(path), "--x", "m", "--y", "err", "--compute-limited", "err"], cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("error: ") == 1 and "1/0" in bad.stderr


def test_a_study_reports_its_decision_backtest_and_labels(toy_study):
    """The toy smoke study (tests/conftest.py): the summary opens with the decision, every
    subset says whether it was compute-limited, and the report and metrics carry the backtest."""
    from mlflow.tracking import MlflowClient

    s = toy_study["summary"]
    largest_fitted = [p for p in s["subsets"] if p["in_fit"]][-1]
    assert s["decision"].startswith(f"At {largest_fitted['size']:,} ")
    assert all("compute_limited" in p for p in s["subsets"])
    limited = [p for p in s["subsets"] if p["compute_limited"]]
    assert all(p["region"] == COMPUTE_LIMITED for p in limited)
    assert set(s["backtest"]) >= {"fit_max_x", "points", "rel_error_at_max", "coverage", "leave_two_out"}
    assert toy_study["proc"].stderr.find(s["decision"][:40]) < toy_study["proc"].stderr.find("learning curve  form")
    client = MlflowClient(toy_study["uri"])
    metrics = client.get_run(s["parent_run_id"]).data.metrics
    assert {k for k in metrics if k.startswith("backtest_")} == set(backtest_metrics(s["backtest"]))
    report = client.download_artifacts(s["parent_run_id"], "analysis/report.md", str(toy_study["dir"]))
    text = open(report).read()
    assert text.index("## Decision summary") < text.index("## Learning curve") and "## Backtests" in text


def test_decision_summary_says_when_the_fit_does_not_describe_the_largest_size():
    """A fit on smaller sizes that predicts more error at 2x than is measured now, above a floor
    the measurement already beat (the nmt quick study), must not be read as a plan."""
    f = _facts(unit="tokens", x_now=131072, error_now=3.9, region_now="compute-limited", at_2x=Estimate(4.3, 4.2, 4.4),
               at_10x=Estimate(4.2, 4.1, 4.4), gain=Estimate(-0.02, -0.05, 0.01), floor=Estimate(4.2, 4.0, 4.3))
    text = decision.summarize(f)
    assert "cuts the error" not in text and "does not describe the largest size" in text
    assert "below the fitted floor" in text and not re.search(r"(?<![\w(])-\d", text)   # no negative shares or gains

"""The decision summary: a few sentences with numbers that answer "more data, a bigger model,
or a better architecture?", first in ``scal study``'s output, the report and ``scal fit``.

It is built from `Facts`, plain numbers a study or a CSV curve both supply (a CSV has no model
sizes or compute, and says so); `facts` builds them from a fitted curve for both, and one
function writes the sentences. Every number carries its interval and level:

- the error now (the largest fitted size), its region, and how many points the fit rests on;
- the error at 2x and 10x the data, with their ``level`` predictive intervals;
- what one more doubling of data buys, 1 - f(2m) / f(m) on the fitted curve (docs/method.md),
  with the ``level`` percentile interval of the same ratio over the bootstrap refits;
- the best-fit model size needed at 10x the data, s(10m) = sigma (10m)^beta_p (its bootstrap
  band at ``level``);
- what the study's compute says (`analysis.surface_cost.compute_sentence`);
- how far the error is from the floor, (eps - floor) / eps, the share still reducible by data
  and model size, with the floor's bootstrap interval. "No floor" is said only when the floor's
  upper end is at most `SMALL_FLOOR_SHARE` of today's error; a form without a floor term (m1)
  has its floor bounded by an m2 fit to the same points (`floor_estimate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from analysis.fit import CurveFit, FitError, percentiles
from analysis.plan import Estimate, predict_errors

# "No floor" only when the floor's upper end is at most this share of today's error.
SMALL_FLOOR_SHARE = 0.10
# The form that bounds the floor of a curve whose own form has no floor term (the paper's).
FLOOR_FORM = "m2"


@dataclass(frozen=True)
class Facts:
    """What the summary says, in the curve's own units (``metric``, sizes in ``unit``). Every
    interval is at ``level``: ``at_2x``/``at_10x`` predictive (for a new measurement), ``gain``,
    ``floor`` and ``n_params_10x`` bootstrap percentile intervals of the curve."""

    metric: str
    unit: str
    x_now: float
    error_now: float
    region_now: str | None
    at_2x: Estimate
    at_10x: Estimate
    gain: Estimate
    floor: Estimate | None             # None: too few points to bound a floor
    level: float
    n_points: int
    x_lo: float                        # the smallest fitted size
    form: str
    floor_source: str = ""             # "" when the curve's own form has the floor; else what bounds it
    n_params_10x: Estimate | None = None
    compute: str | None = None         # the compute sentences (`analysis.surface_cost.compute_sentence`)
    notes: tuple[str, ...] = field(default=())
    what: str = "best-fit error"       # a study's points are best fits; a CSV's are whatever was measured


def fmt(v: float | None) -> str:
    """A number as the summary writes it (also its callers' notes): measured sizes in full, estimates to 3-4 figures."""
    if v is None or not math.isfinite(v):
        return "?"
    if float(v).is_integer() and abs(v) < 1e7:   # measured sizes in full, with separators
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) >= 1e4 else f"{v:.4g}"


def _iv(e: Estimate) -> str:
    return f"[{fmt(e.low)}, {fmt(e.high)}]"


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%" if math.isfinite(v) else "?"


# ---------------------------------------------------------------------------------------------
# The numbers
# ---------------------------------------------------------------------------------------------


def doubling_gain(fit: CurveFit, m: float, level: float) -> Estimate:
    """1 - f(2m) / f(m) on the fitted curve, with the ``level`` percentile interval of the same
    ratio over the bootstrap refits (nan ends without a bootstrap)."""
    x = np.array([m, 2.0 * m])
    f = fit.predict(x, warn=False)
    value = float(1.0 - f[1] / f[0])
    draws = []
    for p in fit.boot_params:
        with np.errstate(all="ignore"):
            b = fit.estimator.curve(p, x)
        if np.all(np.isfinite(b)) and b[0] > 0:
            draws.append(1.0 - b[1] / b[0])
    if not draws:
        return Estimate(value, math.nan, math.nan)
    lo, hi = np.percentile(draws, percentiles(level))
    return Estimate(value, float(lo), float(hi))


def floor_estimate(fit: CurveFit, x, y, level: float, n_boot: int = 200, seed: int = 0
                   ) -> tuple[Estimate | None, str]:
    """The floor (the error as m -> infinity) with its ``level`` bootstrap interval, and what it
    comes from: the fit's own form where it has a floor term; otherwise (m1) an m2 fit to the
    same points ``x``, ``y``, whose floor may be 0 but whose upper end bounds how much of the
    error could be floor. (None, why) when there are too few points for m2."""
    if fit.estimator.has_floor:
        return Estimate(fit.floor(), *fit.floor_interval(level)), ""
    from analysis.forms import make_form   # the forms build on analysis.fit, as this module does

    est = make_form(FLOOR_FORM, n_boot=n_boot, seed=seed)
    if len(x) < est.min_points:
        return None, f"{len(x)} points cannot bound a floor ({FLOOR_FORM} needs {est.min_points})"
    try:
        alt = est.fit(x, y)
    except FitError as exc:
        return None, f"no {FLOOR_FORM} fit bounds the floor ({exc})"
    return Estimate(alt.floor(), *alt.floor_interval(level)), f"an {FLOOR_FORM} fit to the same points"


def facts(fit: CurveFit, x_fit, y_fit, *, metric: str, unit: str, level: float, region_now: str | None = None,
          n_params_10x: Estimate | None = None, compute: str | None = None, notes: tuple[str, ...] = (),
          what: str = "best-fit error", n_boot: int = 200, seed: int = 0) -> Facts:
    """The summary's numbers for a curve fitted to (x_fit, y_fit): "now" is the largest fitted
    size and its measured error; a study and a CSV both build their facts here."""
    x_fit = np.asarray(x_fit, dtype=float)
    y_fit = np.asarray(y_fit, dtype=float)
    i = int(np.argmax(x_fit))
    x_now = float(x_fit[i])
    at_2x, at_10x = predict_errors(fit, [2 * x_now, 10 * x_now], level)
    floor, source = floor_estimate(fit, x_fit, y_fit, level, n_boot=n_boot, seed=seed)
    return Facts(metric=metric, unit=unit, x_now=x_now, error_now=float(y_fit[i]), region_now=region_now,
                 at_2x=at_2x, at_10x=at_10x, gain=doubling_gain(fit, x_now, level), floor=floor, level=level,
                 n_points=int(x_fit.size), x_lo=float(x_fit.min()), form=fit.form, floor_source=source,
                 n_params_10x=n_params_10x, compute=compute, notes=notes, what=what)


# ---------------------------------------------------------------------------------------------
# The sentences
# ---------------------------------------------------------------------------------------------


def summarize(f: Facts) -> str:
    """The summary as one Markdown paragraph of short sentences."""
    pct = f"{round(100 * f.level)}%"
    s = [f"At {fmt(f.x_now)} {f.unit} the {f.what} is {fmt(f.error_now)} {f.metric}"
         + (f" ({f.region_now} region)." if f.region_now else ".")]
    s.append(f"The fit (form {f.form}) rests on {f.n_points} points, from {fmt(f.x_lo)} to {fmt(f.x_now)} {f.unit}.")
    s.append(f"2x the data should give {fmt(f.at_2x.value)} {_iv(f.at_2x)} and 10x {fmt(f.at_10x.value)} "
             f"{_iv(f.at_10x)} ({pct} predictive intervals).")
    below_now = math.isfinite(f.at_2x.value) and f.at_2x.value >= f.error_now
    if below_now:
        s.append("The fitted curve lies above today's error, so it does not describe the largest size: "
                 "do not plan with it; measure more sizes in the power-law region.")
    elif math.isfinite(f.gain.value):
        s.append(f"The next doubling of data cuts the error by {_pct(f.gain.value)} "
                 f"[{_pct(f.gain.low)}, {_pct(f.gain.high)}] (1 - f(2m)/f(m) on the fitted curve, {pct} interval).")
    if f.n_params_10x is not None:
        s.append(f"At 10x the data the best-fit model has about {fmt(f.n_params_10x.value)} parameters "
                 f"{_iv(f.n_params_10x)} ({pct} interval of the model-size curve).")
    if f.compute:
        s.append(f.compute)
    s.append(_floor_sentence(f, pct))
    s.extend(f.notes)
    return " ".join(s)


def _floor_sentence(f: Facts, pct: str) -> str:
    fl = f.floor
    if fl is None:
        return f"Whether the error levels off cannot be told: {f.floor_source}."
    via = f" ({f.floor_source})" if f.floor_source else ""
    if math.isfinite(fl.high) and fl.high <= SMALL_FLOOR_SHARE * f.error_now:
        return (f"No floor shows in the data: it is at most {fmt(fl.high)}{via}, {_pct(fl.high / f.error_now)} of "
                f"today's error ({pct} upper end), so more data keeps paying at about the same rate.")
    if fl.value >= f.error_now:
        return (f"Today's error is at or below the fitted floor {fmt(fl.value)} {_iv(fl)}: the fit does not describe "
                "the largest size.")
    share = Estimate(1.0 - fl.value / f.error_now, 1.0 - fl.high / f.error_now, 1.0 - fl.low / f.error_now)
    lead = (f"Form {f.form} has no floor term, but the data do not rule one out: {f.floor_source} puts it at "
            if f.floor_source else "The fitted floor is ")
    return (f"{lead}{fmt(fl.value)} {_iv(fl)} ({pct} interval): {_pct(share.value)} "
            f"[{_pct(max(share.low, 0.0))}, {_pct(share.high)}] of today's error can still be removed by data and "
            "model size; the rest needs a better architecture or is irreducible.")

"""Planning with fitted curves: error at a size, data for a target error, and what that costs.

The error at a size comes with a predictive interval for a new measurement there, at coverage
``level`` (default 90%; `analysis.fit.CurveFit.interval`): where the next run's error will fall,
not only where the fitted curve may lie.

Every learning-curve form in `analysis.forms` falls monotonically from its start toward its
floor, so "data for error E" is the unique m with f(m) = E, found by root finding in log m; it
does not exist when E is at or below the floor ("unreachable"). Intervals come from the
bootstrap refits: each refit is inverted on its own, and a refit whose floor lies above E counts
as needing infinite data, so the upper end is infinite when more than the upper tail of refits
cannot reach E.

Model size and compute at the planned m follow fitted power laws (s(m) = sigma m**beta_p for
parameters, and the same form for measured wall time and units processed), evaluated at the
planned m and at its interval's ends.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from analysis.fit import DEFAULT_LEVEL, CurveFit, check_level, rank_interval, warn_if_far
from analysis.jsonsafe import json_number

# Root search bracket for m, in natural-log units around the fitted range.
LOG_M_BELOW = 30.0
LOG_M_ABOVE = 120.0


@dataclass(frozen=True)
class Estimate:
    """A value with its interval (low, high); the ends are nan without a bootstrap."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict:
        return {"value": json_number(self.value), "low": json_number(self.low), "high": json_number(self.high)}


@dataclass(frozen=True)
class DataPlan:
    """Training set size needed for ``target`` error. ``m`` is None when unreachable."""

    target: float
    m: float | None
    low: float
    high: float
    floor: float
    reachable: bool
    note: str = ""

    def to_dict(self) -> dict:
        return {"target_error": self.target, "m": json_number(self.m), "low": json_number(self.low),
                "high": json_number(self.high), "floor": json_number(self.floor), "reachable": self.reachable,
                "note": self.note}


def predict_errors(fit: CurveFit, sizes, level: float = DEFAULT_LEVEL, name: str | None = None) -> list[Estimate]:
    """f(m) at every size with the ``level`` predictive interval for a new measurement there;
    one warning for the whole curve (called ``name`` in it) when some size lies far outside the
    fitted range."""
    check_level(level)
    x = np.asarray([float(m) for m in sizes], dtype=float)
    if x.size == 0:
        return []
    warn_if_far(fit, x, name)
    value = fit.predict(x, warn=False)
    lo, hi = fit.interval(x, level)
    return [Estimate(float(v), float(a), float(b)) for v, a, b in zip(value, lo, hi)]


def predict_error(fit: CurveFit, m: float, level: float = DEFAULT_LEVEL) -> Estimate:
    """f(m) with the ``level`` predictive interval at m (see `predict_errors`)."""
    return predict_errors(fit, [m], level)[0]


def _invert(fit: CurveFit, target: float) -> float | None:
    """The m with f(m) = target, or None when target <= floor; m may lie outside the data."""
    if target <= fit.floor():
        return None
    lo_x, hi_x = fit.x_range
    a, b = math.log(lo_x) - LOG_M_BELOW, math.log(hi_x) + LOG_M_ABOVE
    est = fit.estimator

    def gap(log_m: float) -> float:
        return math.log(float(est.curve(fit.params, np.array([math.exp(log_m)]))[0])) - math.log(target)

    g_a, g_b = gap(a), gap(b)
    if g_a <= 0:   # reached already at the smallest m searched
        return math.exp(a)
    if g_b > 0:    # above the floor but not reached within the bracket: as good as unreachable
        return None
    return math.exp(brentq(gap, a, b, xtol=1e-10))


def data_for_error(fit: CurveFit, target: float, level: float | None = None) -> DataPlan:
    """Training set size for ``target`` error, with a bootstrap interval at ``level`` (default:
    the fit's own ``ci``)."""
    if not target > 0:
        raise ValueError(f"target error must be > 0, got {target}")
    floor = fit.floor()
    m = _invert(fit, target)
    low = high = math.nan
    if fit.n_boot:
        vals = np.array([v if (v := _invert(b, target)) is not None else math.inf for b in fit.boot_curves()])
        low, high = rank_interval(vals, fit.ci if level is None else level)
    if m is None:
        return DataPlan(target, None, low, high, floor, False,
                        f"unreachable: {target:.4g} is at or below the fitted floor {floor:.4g}")
    note = ""
    if math.isinf(high):
        note = "the upper end is infinite: some bootstrap refits level off above the target"
    return DataPlan(target, m, low, high, floor, True, note)


def power_at(fit: CurveFit, m: float, m_low: float | None = None, m_high: float | None = None,
             level: float | None = None) -> Estimate:
    """A power-law fit (model size, wall time, units processed; increasing in m) at m, its interval
    from the fit's band at the ends of m's interval (both sources of uncertainty at once), at
    ``level`` (default: the fit's own ``ci``)."""
    if level is not None:
        check_level(level)
        fit = dataclasses.replace(fit, ci=level)
    # No extrapolation warnings here: the one per curve is for the predictions asked for.
    value = float(fit.predict(np.array([m]), warn=False)[0])
    lo_m = m_low if m_low is not None and math.isfinite(m_low) else m
    hi_m = m_high if m_high is not None and math.isfinite(m_high) else m
    lo = float(fit.band(np.array([lo_m]), warn=False)[0][0])
    hi = float(fit.band(np.array([hi_m]), warn=False)[1][0]) if m_high is None or math.isfinite(m_high) else math.inf
    return Estimate(value, lo, hi)

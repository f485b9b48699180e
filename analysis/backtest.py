"""Backtests: how far can a fitted learning curve be trusted beyond its data?

The paper's promise is that small-data experiments predict large-data error. A backtest checks
it on the study's own points: refit on a prefix of the sizes, predict the points left out, and
compare. Two prefixes are tried:

- ``m_max/8``: the sizes up to an eighth of the largest (three doublings short), the question a
  user asks before paying for the last three doublings;
- ``leave_two_out``: all sizes but the largest two, the nearest extrapolation.

For every left-out point i: rel_error_i = (predicted_i - observed_i) / observed_i, and whether
observed_i lies inside the fit's predictive interval at x_i (`analysis.plan.predict_error`).
``rel_error_at_max`` is rel_error at the largest size, ``coverage`` the share of points inside.
The refit uses the same form rule (``auto`` chooses again on the prefix alone), so the backtest
measures the whole procedure, not one form.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from analysis.fit import FitError
from analysis.jsonsafe import json_number
from analysis.plan import predict_error
from analysis.select import AUTO, fit_curve

# The prefix of the first backtest: sizes up to m_max / M_MAX_DIVISOR.
M_MAX_DIVISOR = 8
# A prefix needs at least this many points to be refitted.
MIN_PREFIX_POINTS = 3


def _split(x: np.ndarray, y: np.ndarray, keep: np.ndarray, form: str, n_boot: int, seed: int,
           y_seeds, level: float | None) -> dict[str, Any]:
    """Refit on ``x[keep]``, predict the rest; the record of one backtest."""
    fit_x = float(x[keep].max()) if keep.any() else None
    out: dict[str, Any] = {"fit_max_x": fit_x, "n_fit": int(keep.sum()), "points": [],
                           "rel_error_at_max": None, "coverage": None}
    if keep.sum() < MIN_PREFIX_POINTS or keep.all():
        out["error"] = (f"{int(keep.sum())} fitted point(s) in the prefix; a refit needs at least {MIN_PREFIX_POINTS}"
                        if keep.sum() < MIN_PREFIX_POINTS else "no point is left out")
        return out
    seeds = [y_seeds[i] for i in np.flatnonzero(keep)] if y_seeds is not None else None
    try:
        sel = fit_curve(x[keep], y[keep], form=form, y_seeds=seeds, n_boot=n_boot, seed=seed)
    except FitError as exc:
        out["error"] = str(exc)
        return out
    out["form"] = sel.form
    extra = {} if level is None else {"level": level}
    for xv, obs in zip(x[~keep], y[~keep]):
        e = predict_error(sel.fit, float(xv), **extra)
        inside = bool(math.isfinite(e.low) and math.isfinite(e.high) and e.low <= obs <= e.high)
        out["points"].append({"x": float(xv), "observed": float(obs), "predicted": json_number(e.value),
                              "low": json_number(e.low), "high": json_number(e.high),
                              "rel_error": json_number((e.value - obs) / obs), "inside": inside})
    out["rel_error_at_max"] = out["points"][-1]["rel_error"]
    out["coverage"] = float(np.mean([p["inside"] for p in out["points"]]))
    return out


def backtest(x, y, form: str = AUTO, n_boot: int = 200, seed: int = 0,
             y_seeds: Sequence[Sequence[float]] | None = None, level: float | None = None) -> dict[str, Any]:
    """Both backtests of the curve (x, y): the ``m_max/8`` one at the top level and the
    ``leave_two_out`` one under that key, each {"fit_max_x", "points": [{"x", "observed",
    "predicted", "low", "high", "rel_error", "inside"}], "rel_error_at_max", "coverage"} (with
    "error" instead of points where the prefix is too short to refit)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    order = np.argsort(x)
    x, y = x[order], y[order]
    if y_seeds is not None:
        y_seeds = [y_seeds[i] for i in order]
    first = _split(x, y, x <= x.max() / M_MAX_DIVISOR, form, n_boot, seed, y_seeds, level)
    keep = np.ones(x.size, dtype=bool)
    keep[-2:] = False
    first["leave_two_out"] = _split(x, y, keep, form, n_boot, seed, y_seeds, level)
    return first


def metrics(bt: dict[str, Any]) -> dict[str, float]:
    """The backtest's headline numbers as MLflow metric names (finite values only)."""
    out = {}
    for prefix, rec in (("backtest_m8", bt), ("backtest_l2o", bt.get("leave_two_out", {}))):
        for key in ("rel_error_at_max", "coverage"):
            v = rec.get(key)
            if isinstance(v, float) and math.isfinite(v):   # not None, nor "inf" (`analysis.jsonsafe`)
                out[f"{prefix}_{key}"] = float(v)
    return out

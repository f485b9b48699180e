"""Predictions of the loss surface at chosen (N, D), and its backtest: does a surface fitted without
the largest runs predict them?

- `predictions`: L(N, D) with the predictive interval for a new measurement there
  (`analysis.surface.SurfaceFit.interval`), for ``scal surface --predict N,D``.
- `backtest_surface`: the paper's promise, asked of the surface. The points are ordered by their
  compute k N D (k is one constant, so by N D); the largest-compute eighth, ceil(n / 8) points, is
  held out; the surface is refitted on the rest (same bootstrap size and seed) and predicts each
  held-out point: relative error (predicted - observed) / observed, and whether the observation
  lies inside its predictive interval at ``level``. `check_backtest` says before anything is
  fitted whether the points can carry one.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from analysis.fit import FitError
from analysis.jsonsafe import json_number
from analysis.surface import MIN_POINTS, SurfaceFit, fit_surface, validate_points

HOLDOUT_FRACTION = 1.0 / 8.0      # the largest-compute eighth of the points, as `scal fit --backtest` holds out m > m_max/8


def predictions(fit: SurfaceFit, pairs: Sequence[tuple[float, float]], level: float) -> list[dict]:
    """``[{n, d, loss, low, high}]``: the surface and its ``level`` predictive interval at each (N, D)."""
    if not pairs:
        return []
    n = np.array([p[0] for p in pairs], dtype=float)
    d = np.array([p[1] for p in pairs], dtype=float)
    loss = fit.predict(n, d)
    low, high = fit.interval(n, d, level)
    return [{"n": float(a), "d": float(b), "loss": json_number(v), "low": json_number(lo), "high": json_number(hi)}
            for a, b, v, lo, hi in zip(n, d, loss, low, high)]


def holdout_split(n_params, data) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (fitted, held out): the ceil(n / 8) points of largest N D are held out (ties
    by their order in the input, so the split is deterministic)."""
    nd = np.asarray(n_params, dtype=float) * np.asarray(data, dtype=float)
    n_hold = math.ceil(nd.size * HOLDOUT_FRACTION)
    held = np.zeros(nd.size, dtype=bool)
    held[np.argsort(-nd, kind="stable")[:n_hold]] = True
    return ~held, held


def check_backtest(n_params, data, loss) -> None:
    """ValueError (one line) when the points, less their largest-compute eighth, cannot carry a
    surface: fewer than MIN_POINTS, or one distinct N or D."""
    n = np.asarray(n_params, dtype=float)
    keep, held = holdout_split(n, data)
    if keep.sum() < MIN_POINTS:
        need = next(m for m in range(MIN_POINTS, 10 * MIN_POINTS) if m - math.ceil(m * HOLDOUT_FRACTION) >= MIN_POINTS)
        raise ValueError(f"--backtest refits without the largest-compute eighth of the points and needs at least "
                         f"{need} points (cells), got {n.size}")
    try:
        validate_points(n[keep], np.asarray(data, dtype=float)[keep], np.asarray(loss, dtype=float)[keep])
    except FitError as exc:
        raise ValueError(f"--backtest: without the largest-compute eighth of the points, {exc}") from None


def backtest_surface(n_params, data, loss, flops_per_param_unit: float, n_boot: int, seed: int,
                     level: float) -> dict:
    """Refit without the largest-compute eighth and predict it (module docstring). The record:
    ``{held_out, fitted, fitted_compute_max, level, coverage, points: [{n, d, observed, predicted,
    low, high, rel_error, inside}]}``."""
    n, d, y = (np.asarray(v, dtype=float) for v in (n_params, data, loss))
    check_backtest(n, d, y)
    keep, held = holdout_split(n, d)
    fit = fit_surface(n[keep], d[keep], y[keep], (), flops_per_param_unit, n_boot=n_boot, seed=seed)
    pred = fit.predict(n[held], d[held])
    low, high = fit.interval(n[held], d[held], level)
    order = np.argsort(n[held] * d[held], kind="stable")   # smallest compute first, as the curve's backtest lists sizes
    points = []
    for i in order:
        obs, p, lo, hi = float(y[held][i]), float(pred[i]), float(low[i]), float(high[i])
        inside = bool(lo <= obs <= hi) if math.isfinite(lo) and math.isfinite(hi) else None
        points.append({"n": float(n[held][i]), "d": float(d[held][i]), "observed": obs, "predicted": json_number(p),
                       "low": json_number(lo), "high": json_number(hi), "rel_error": json_number(p / obs - 1.0),
                       "inside": inside})
    judged = [p["inside"] for p in points if p["inside"] is not None]
    return {"held_out": int(held.sum()), "fitted": int(keep.sum()),
            "fitted_compute_max": float(flops_per_param_unit * np.max(n[keep] * d[keep])), "level": float(level),
            "coverage": json_number(float(np.mean(judged)) if judged else math.nan), "points": points}


def backtest_lines(bt: dict, unit: str | None = None) -> list[str]:
    """The backtest as ``scal surface`` prints it: a head line, then one line per held-out point."""
    cov = bt.get("coverage")
    head = (f"backtest (refit without the largest-compute eighth: {bt['held_out']} of {bt['held_out'] + bt['fitted']} "
            f"points, fitted up to C = {bt['fitted_compute_max']:.4g} FLOPs): "
            + (f"coverage {100 * cov:.0f}% at {100 * bt['level']:.0f}%" if cov is not None else "no intervals"))
    lines = [head]
    d_unit = f" {unit}" if unit else ""
    for p in bt["points"]:
        iv = f"[{_g(p['low'])}, {_g(p['high'])}]"
        inside = {True: "inside", False: "OUTSIDE", None: ""}[p["inside"]]
        lines.append(f"  N {p['n']:.4g}, D {p['d']:.4g}{d_unit}: observed {p['observed']:.4g}, predicted "
                     f"{_g(p['predicted'])} {iv} {_pct(p['rel_error'])} {inside}".rstrip())
    return lines


def _g(v) -> str:
    return "-" if v is None else (v if isinstance(v, str) else f"{v:.4g}")


def _pct(v) -> str:
    return "-" if v is None or isinstance(v, str) else f"{100 * v:+.1f}%"

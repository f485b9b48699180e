"""Curve fitting machinery shared by every curve family: validation, robust multi-start least
squares in log space, bootstrap intervals, and the fitted result `CurveFit`.

The families themselves (M1-M4, the broken power law, the model-size power law) live in
`analysis.forms`; each says its formula, parameters, bounds and starts, and this module does the
rest the same way for all of them:

- residuals in log space, r_i = log f(x_i; theta) - log y_i, because the points span decades and
  a 1% miss at x = 1e3 matters as much as one at x = 1e6;
- a robust loss (soft-L1 by default, Huber or plain least squares on request) with scale
  ``f_scale`` in log units, so one bad point cannot drag the curve;
- box bounds on every parameter, and many starts (a grid plus one from a log-log regression);
  the lowest cost wins, ties keep the earlier start, so fits are deterministic;
- a nonparametric bootstrap over the points (and over each point's seeds when given), with
  percentile intervals for every parameter and for the curve;
- predictive intervals for a new observation at x (`CurveFit.interval`): the fit's noise, the
  spread of its bootstrap refits, the spread of the other candidate forms' predictions, and a
  term that grows with the distance beyond the fitted range, under a Student-t.

This module imports no form: a `CurveFit` carries the form that made it (any object with the
`Curve` interface), so the forms build on this module and never the other way round.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np
from scipy.optimize import least_squares
from scipy.special import stdtrit

from analysis.jsonsafe import json_number
from analysis.defaults import DEFAULT_LEVEL

log = logging.getLogger(__name__)

# soft_l1 scale in log units: residuals beyond ~10% relative error are down-weighted.
SOFT_L1_SCALE_LOG = 0.1
LOSSES = ("soft_l1", "huber", "linear")
# predict() warns when asked further than this factor outside the fitted x span.
EXTRAPOLATION_WARN_FACTOR = 10.0
# Every curve needs at least this many distinct x; a form with more parameters needs more.
MIN_POINTS = 3
# A bootstrap draws at most this many resamples per requested refit before giving up on the rest.
MAX_DRAWS_PER_BOOT = 20
# The predictive interval (`CurveFit.interval`): how fast its log scale grows per fitted span of
# distance past the data, the Student-t degrees of freedom of its far part, and the smallest noise
# it assumes (0.1%: no measurement repeats better). The first two were chosen on the development
# curves of benchmarks/calibration.py; its held-out curves and the quick studies report how they
# carry over.
EXTRAPOLATION_LOG_PER_SPAN = 0.05
FAR_DOF = 2.0
NOISE_FLOOR_LOG = 1e-3


class FitError(ValueError):
    """Input a curve cannot be fitted to (too few points, bad values, duplicate x)."""


class Curve(Protocol):
    """What a fitted curve needs of the form that made it (`analysis.forms.CurveForm` has it)."""

    exponent: str      # the public parameter that is the scaling exponent
    has_floor: bool    # floor() is a fitted parameter (m1's is 0 by construction)

    @property
    def n_params(self) -> int: ...

    def curve(self, params: dict[str, float], x: np.ndarray) -> np.ndarray:
        """The curve at x from public parameters."""

    def floor(self, params: dict[str, float]) -> float:
        """The limit of the curve as x -> infinity."""


@dataclass(frozen=True)
class CurveFit:
    """A fitted curve, its bootstrap percentile intervals and where it was fitted.

    ``params`` are the form's public parameters (see `analysis.forms`); ``exponent`` names the
    one that is the scaling exponent (beta_g for learning curves, beta_p for model size).
    ``rmse_log`` = sqrt(mean((log pred - log obs)**2)) over the fitted points. ``n_boot`` is the
    number of bootstrap refits behind the intervals; with 0 the intervals are (nan, nan).
    ``boot_params`` keeps each refit's parameters, so bands and inverse predictions need no
    second bootstrap. ``estimator`` is the form that made the fit, and evaluates it.
    ``residuals_log`` are log pred - log obs at the fitted points, in x order.
    ``alternatives`` are the candidate forms fitted to the same points, each (weight, form,
    params) with weights summing to 1 (`analysis.select.fit_curve` sets them from the forms'
    held-out errors; this fit's own form is among them): how much the forms disagree is part of
    the predictive interval (`interval`). Empty: no other form was fitted.
    """

    form: str
    params: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    x_range: tuple[float, float]
    n_points: int
    rmse_log: float
    n_boot: int
    estimator: Curve = field(repr=False, compare=False)
    ci: float = 0.95
    boot_params: tuple[dict[str, float], ...] = field(default=(), repr=False, compare=False)
    residuals_log: tuple[float, ...] = field(default=(), repr=False, compare=False)
    alternatives: tuple[tuple[float, Curve, dict[str, float]], ...] = field(default=(), repr=False, compare=False)

    @property
    def exponent(self) -> str:
        return self.estimator.exponent

    def predict(self, x, warn: bool = True) -> np.ndarray:
        """The curve at ``x`` (scalar or array); logs a warning for far extrapolation unless
        ``warn`` is False (internal uses: held-out scoring, intervals)."""
        x = np.asarray(x, dtype=float)
        if warn:
            warn_if_far(self, x)
        return self.estimator.curve(self.params, x)

    def floor(self) -> float:
        """The error the curve levels off at as x -> infinity (0 for a pure power law)."""
        return float(self.estimator.floor(self.params))

    def floor_interval(self, level: float | None = None) -> tuple[float, float]:
        """The floor's bootstrap percentile interval at ``level`` (default the fit's ``ci``);
        (nan, nan) without a bootstrap or for a form without a floor term (m1's is 0 by
        construction, not a fitted value: `analysis.decision.floor_estimate` bounds it)."""
        if not self.boot_params or not self.estimator.has_floor:
            return math.nan, math.nan
        vals = [self.estimator.floor(p) for p in self.boot_params]
        lo, hi = np.percentile(vals, percentiles(self.ci if level is None else level))
        return float(lo), float(hi)

    def band(self, x, warn: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise bootstrap percentile band (low, high) of the curve at ``x``: where the
        curve itself may lie, not where a new measurement may (that is `interval`)."""
        x = np.asarray(x, dtype=float)
        if warn:
            warn_if_far(self, x)
        if not self.boot_params:
            nan = np.full(x.shape, np.nan)
            return nan, nan.copy()
        est = self.estimator
        curves = np.stack([est.curve(p, x) for p in self.boot_params])
        lo_pct, hi_pct = percentiles(self.ci)
        return np.percentile(curves, lo_pct, axis=0), np.percentile(curves, hi_pct, axis=0)

    def noise_log(self) -> float:
        """The residuals' scale in log units with the degrees of freedom the fit used up,
        sigma = sqrt(sum r_i**2 / (n - p)) (p parameters; n - p at least 1)."""
        r = np.asarray(self.residuals_log, dtype=float)
        if r.size == 0:
            return math.nan
        return float(np.sqrt(np.sum(r**2) / max(r.size - self.estimator.n_params, 1)))

    def interval(self, x, level: float = DEFAULT_LEVEL) -> tuple[np.ndarray, np.ndarray]:
        """Predictive interval (low, high) at ``x`` for a NEW observation, covering it with
        probability ``level``; (nan, nan) without a bootstrap. No warning (callers warn once).

        In log space a new observation is log y = log f(x) + (error of the curve) + (noise), with

            log y ~ log f(x) + s(x) T_nu(x),   T_nu Student-t,
            s(x)**2 = [sigma**2 + var_b(x)] + [var_k(x) + (c d(x))**2]
                    =        near(x)        +        far(x),

        - sigma: the fit's noise (`noise_log`, at least `NOISE_FLOOR_LOG`);
        - var_b(x): the variance of log f_b(x) over the bootstrap refits (where this form's curve
          may lie);
        - var_k(x) = sum_k w_k (log f_k(x) - mean_w)**2 over the candidate forms fitted to the same
          points (``alternatives``, weights w_k from their held-out errors): which form is right
          is itself uncertain, and far from the data the forms part ways (the between-form term of
          the law of total variance, as in model averaging);
        - c d(x): d = `extrapolation_distance` in fitted spans past the data, c =
          `EXTRAPOLATION_LOG_PER_SPAN`: what none of the forms can show, a true curve that bends
          away from all of them.

        The two parts are known to different degrees, so nu(x) is Welch and Satterthwaite's

            nu(x) = s(x)**4 / (near(x)**2 / (n - p) + far(x)**2 / nu_far),

        the noise's n - p residual degrees of freedom near the data and the heavy tail nu_far =
        `FAR_DOF` (how far apart forms and truth end up varies a lot from curve to curve) where
        the forms' disagreement and the distance dominate. c and nu_far were chosen on the
        development curves of benchmarks/calibration.py (its held-out curves and the quick
        studies' backtests report how they carry over); the rest has no free constant. The
        interval is symmetric in log space and never has zero width.
        """
        x = np.asarray(x, dtype=float)
        check_level(level)
        if not self.boot_params:
            nan = np.full(x.shape, np.nan)
            return nan, nan.copy()
        log_f, scale, dof = self.log_scale(x.ravel())
        q = stdtrit(dof, (1.0 + level) / 2.0)
        with np.errstate(all="ignore"):
            low, high = np.exp(log_f - q * scale), np.exp(log_f + q * scale)
        return low.reshape(x.shape), high.reshape(x.shape)

    def log_scale(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(log f(x), s(x), nu(x)) of `interval` at the sizes ``x`` (1-d)."""
        est = self.estimator
        with np.errstate(all="ignore"):
            log_f = np.log(est.curve(self.params, x))
            boot = np.log(np.stack([est.curve(p, x) for p in self.boot_params]))   # (B, m)
        var_k = np.zeros(x.shape)
        if len(self.alternatives) > 1:
            w = np.array([a[0] for a in self.alternatives])
            with np.errstate(all="ignore"):
                logs = np.log(np.stack([a[1].curve(a[2], x) for a in self.alternatives]))   # (K, m)
            ok = np.isfinite(logs)
            w_ok = np.where(ok, w[:, None], 0.0)
            norm = np.sum(w_ok, axis=0)
            norm = np.where(norm > 0, norm, 1.0)
            mean = np.sum(w_ok * np.where(ok, logs, 0.0), axis=0) / norm
            var_k = np.sum(w_ok * np.where(ok, logs - mean, 0.0) ** 2, axis=0) / norm
        sigma = max(self.noise_log(), NOISE_FLOOR_LOG) if self.residuals_log else NOISE_FLOOR_LOG
        near = sigma**2 + _finite_var(boot)
        far = var_k + (EXTRAPOLATION_LOG_PER_SPAN * extrapolation_distance(x, self.x_range)) ** 2
        residual_dof = max(len(self.residuals_log) - est.n_params, 1)
        dof = (near + far) ** 2 / (near**2 / residual_dof + far**2 / FAR_DOF)
        return log_f, np.sqrt(near + far), dof

    def boot_curves(self) -> list["CurveFit"]:
        """Each bootstrap refit as a CurveFit without intervals (for inverse predictions)."""
        return [CurveFit(self.form, p, {}, self.x_range, self.n_points, math.nan, 0, self.estimator, self.ci)
                for p in self.boot_params]

    def to_dict(self) -> dict:
        """Plain floats, ints, strings and lists only; NaN and infinity as `analysis.jsonsafe` says."""
        return {
            "form": self.form,
            "params": {k: json_number(v) for k, v in self.params.items()},
            "intervals": {k: [json_number(lo), json_number(hi)] for k, (lo, hi) in self.intervals.items()},
            "floor": json_number(self.floor()),
            "x_range": [float(self.x_range[0]), float(self.x_range[1])],
            "n_points": int(self.n_points),
            "rmse_log": json_number(self.rmse_log),
            "n_boot": int(self.n_boot),
            "ci": float(self.ci),
        }


def sublinear(fit: CurveFit) -> bool:
    """True only when the whole beta_p interval lies below 1 (the model grows slower than data)."""
    if "beta_p" not in fit.intervals:
        raise ValueError(f"sublinear() needs a model-size fit with beta_p, got form {fit.form!r}")
    hi = fit.intervals["beta_p"][1]
    # A NaN upper end (no bootstrap) is not evidence of anything.
    return bool(math.isfinite(hi) and hi < 1.0)


# ---------------------------------------------------------------------------------------------
# Validation and shared plumbing
# ---------------------------------------------------------------------------------------------


def validate(x, y, min_points: int = MIN_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Float arrays sorted by x, or FitError with a one-line reason."""
    try:
        xa = np.asarray(x, dtype=float).ravel()
        ya = np.asarray(y, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise FitError(f"x and y must be numeric: {exc}") from None
    if xa.size != ya.size:
        raise FitError(f"x and y have different lengths ({xa.size} vs {ya.size})")
    for name, a in (("x", xa), ("y", ya)):
        if not np.all(np.isfinite(a)):
            raise FitError(f"{name} has non-finite values at indices {np.flatnonzero(~np.isfinite(a)).tolist()}")
        if np.any(a <= 0):
            raise FitError(f"{name} must be positive (log-space fit), got {a[a <= 0].tolist()}")
    uniq, counts = np.unique(xa, return_counts=True)
    if np.any(counts > 1):
        raise FitError(f"duplicate x values: {uniq[counts > 1].tolist()}")
    if xa.size < min_points:
        raise FitError(f"need at least {min_points} points to fit this curve, got {xa.size}")
    order = np.argsort(xa)
    return xa[order], ya[order]


def check_level(level: float) -> None:
    """A predictive interval's coverage must lie strictly between 0 and 1."""
    if not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
        raise ValueError(f"--level must lie strictly between 0 and 1, got {level}")


def extrapolation_distance(x: np.ndarray, x_range: tuple[float, float]) -> np.ndarray:
    """How far x lies outside the fitted range, in units of the range's log span L:
    d = max(0, log(x / x_hi), log(x_lo / x)) / L, L = log(x_hi / x_lo); 0 inside the range."""
    lo, hi = x_range
    span = math.log(hi / lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_x = np.log(np.asarray(x, dtype=float))
    out = np.maximum(0.0, np.maximum(log_x - math.log(hi), math.log(lo) - log_x))
    return out / span if span > 0 else np.where(out > 0, np.inf, 0.0)


def _finite_var(a: np.ndarray) -> np.ndarray:
    """Variance over axis 0 of the finite entries (0 where fewer than two are finite)."""
    ok = np.isfinite(a)
    n = ok.sum(axis=0)
    safe = np.where(ok, a, 0.0)
    mean = safe.sum(axis=0) / np.maximum(n, 1)
    var = np.where(ok, (a - mean) ** 2, 0.0).sum(axis=0) / np.maximum(n, 1)
    return np.where(n >= 2, var, 0.0)


def check_settings(loss: str, f_scale: float, n_boot: int, ci: float) -> None:
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if not f_scale > 0:
        raise ValueError(f"f_scale must be > 0, got {f_scale}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")


def percentiles(ci: float) -> tuple[float, float]:
    tail_pct = 100.0 * (1.0 - ci) / 2.0
    return tail_pct, 100.0 - tail_pct


def rank_interval(vals, ci: float) -> tuple[float, float]:
    """(low, high) bootstrap percentiles of ``vals`` by the nearest rank, i = ceil(p/100 * n) - 1.

    For answers that may not exist in some resamples (the data for a target error, the start of
    the irreducible region), given as inf: nearest ranks keep them inf, where np.percentile's
    interpolation between inf and a finite value gives NaN.
    """
    s = np.sort(np.asarray(vals, dtype=float))
    return tuple(float(s[min(s.size - 1, max(0, math.ceil(p / 100.0 * s.size) - 1))]) for p in percentiles(ci))


def rmse_log(pred: np.ndarray, obs: np.ndarray) -> float:
    """sqrt(mean((log pred - log obs)**2)); inf when a prediction is not positive."""
    pred = np.asarray(pred, dtype=float)
    if np.any(~np.isfinite(pred)) or np.any(pred <= 0):
        return math.inf
    return float(np.sqrt(np.mean((np.log(pred) - np.log(obs)) ** 2)))


def warn_if_far(fit: CurveFit, x, name: str | None = None) -> None:
    """One warning when any of ``x`` lies more than EXTRAPOLATION_WARN_FACTOR outside the fitted
    range, naming the farthest (and the curve, ``name``); callers with many predictions of one
    curve call it once."""
    x = np.asarray(x, dtype=float)
    lo, hi = fit.x_range
    far = (x > hi * EXTRAPOLATION_WARN_FACTOR) | (x < lo / EXTRAPOLATION_WARN_FACTOR)
    if np.any(far):
        worst = float(x[far].flat[np.argmax(extrapolation_distance(x[far], fit.x_range))])
        log.warning("extrapolating %s fit%s more than %gx beyond the fitted range [%g, %g] (to x = %g)",
                    fit.form, f" of {name}" if name is not None else "", EXTRAPOLATION_WARN_FACTOR, lo, hi, worst)


def best_of_starts(residuals, starts: Sequence[np.ndarray], lower: np.ndarray, upper: np.ndarray,
                   loss: str, f_scale: float, jac="2-point", max_nfev: int | None = None,
                   tol: float = 1e-8) -> np.ndarray:
    """The lowest-cost bounded least-squares solution over ``starts`` (earliest wins ties).

    ``max_nfev`` caps each start's evaluations and ``tol`` is scipy's ftol and xtol: forms with
    a long flat valley (M4) crawl along it for hundreds of steps while the cost changes by less
    than anything a prediction would notice.
    """
    best = None
    for p0 in starts:
        p0 = np.clip(np.asarray(p0, dtype=float), lower, upper)
        try:
            res = least_squares(residuals, p0, jac=jac, bounds=(lower, upper), method="trf", loss=loss,
                                f_scale=f_scale, x_scale="jac", max_nfev=max_nfev, ftol=tol, xtol=tol)
        except (ValueError, FloatingPointError) as exc:  # a start where the curve is undefined
            log.debug("start %s failed: %s", p0, exc)
            continue
        if not np.isfinite(res.cost):
            continue
        if best is None or res.cost < best.cost:
            best = res
    if best is None:
        raise FitError("no start of the optimiser gave a finite fit")
    return best.x


def bootstrap_indices(n: int, n_boot: int, seed: int, min_distinct: int) -> list[np.ndarray]:
    """``n_boot`` sorted resamples of range(n) with at least ``min_distinct`` distinct points."""
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    draws = 0
    while len(out) < n_boot and draws < n_boot * MAX_DRAWS_PER_BOOT:
        draws += 1
        idx = rng.integers(0, n, size=n)
        if np.unique(idx).size < min_distinct:
            continue
        idx.sort()   # keeps each refit independent of draw order
        out.append(idx)
    if len(out) < n_boot:
        log.warning("bootstrap: only %d of %d resamples had %d distinct points", len(out), n_boot, min_distinct)
    return out


def resample_y(y: np.ndarray, idx: np.ndarray, y_seeds: Sequence[np.ndarray] | None,
               rng: np.random.Generator) -> np.ndarray:
    """y at the resampled points; with per-point seed values, each point's median over a
    resample (with replacement) of its own seeds: the two-level bootstrap over subsets and seeds."""
    if y_seeds is None:
        return y[idx]
    out = np.empty(idx.size)
    for j, i in enumerate(idx):
        seeds = np.asarray(y_seeds[i], dtype=float)
        out[j] = np.median(rng.choice(seeds, size=seeds.size)) if seeds.size > 1 else y[i]
    return out

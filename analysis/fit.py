"""Fitting the paper's two scaling curves, with bootstrap intervals (Hestness et al. 2017, sec. 3).

Learning curve ("m2": power law plus constant), generalisation error against training set size m::

    eps(m) = alpha * m**beta_g + gamma        alpha > 0, -3 <= beta_g <= 0, 0 <= gamma < min(eps)

gamma is the irreducible error the curve levels off at; beta_g is the power-law exponent the
paper reports per domain.

Model-size curve ("power"), parameters of the best-fit model against m::

    s(m) = sigma * m**beta_p

beta_p < 1 means the model needs to grow sub-linearly in the data (`sublinear`).

Both fits work on log values, because the points span decades and an error of 1% at m = 1e6
matters as much as one of 1% at m = 1e3. Uncertainty comes from a nonparametric bootstrap over
the points: resample them with replacement, refit, and take percentile intervals.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.optimize import least_squares

log = logging.getLogger(__name__)

FORM_M2 = "m2"
FORM_POWER = "power"

# Bounds on the learning-curve exponent: error does not grow with data, and nothing in the paper
# falls faster than m**-3.
BETA_G_MIN, BETA_G_MAX = -3.0, 0.0
# gamma must stay strictly below the smallest observed error, or log(eps - gamma) is undefined
# in the starts and log(pred) cannot reach log(obs) at that point.
GAMMA_MAX_FRACTION = 0.999
# Starting values for gamma, as fractions of min(eps): a few starts guard against the local
# minima the (beta_g, gamma) trade-off produces.
GAMMA_START_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 0.9)
# soft_l1 scale in log units: residuals beyond ~10% relative error are down-weighted, so one
# bad point cannot drag the whole curve.
SOFT_L1_SCALE_LOG = 0.1
# predict() warns when asked further than this factor outside the fitted x span.
EXTRAPOLATION_WARN_FACTOR = 10.0
# A bootstrap resample needs this many distinct x to be fitted; draw at most this many
# resamples per requested one before giving up on the rest.
MIN_POINTS = 3
MAX_DRAWS_PER_BOOT = 20


class FitError(ValueError):
    """Input a curve cannot be fitted to (too few points, bad values, duplicate x)."""


@dataclass(frozen=True)
class CurveFit:
    """A fitted curve, its bootstrap percentile intervals and where it was fitted.

    ``form`` is "m2" (alpha * x**beta_g + gamma) or "power" (sigma * x**beta_p).
    ``rmse_log`` is sqrt(mean((log pred - log obs)**2)) over the fitted points.
    ``n_boot`` is the number of bootstrap refits the intervals come from; intervals are
    (nan, nan) when it is 0. ``ci`` is the interval's coverage. ``boot_params`` keeps the refits'
    parameters so that `band` needs no second bootstrap.
    """

    form: str
    params: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    x_range: tuple[float, float]
    n_points: int
    rmse_log: float
    n_boot: int
    ci: float = 0.95
    boot_params: tuple[dict[str, float], ...] = field(default=(), repr=False, compare=False)

    def predict(self, x) -> np.ndarray:
        """The curve at ``x`` (scalar or array); logs a warning for far extrapolation."""
        x = np.asarray(x, dtype=float)
        _warn_if_far(self.form, x, self.x_range)
        return _predict(self.form, self.params, x)

    def band(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Bootstrap percentile band (low, high) of the curve at ``x``: every refit predicts at x,
        the band is the pointwise percentile at the fit's coverage ``ci``."""
        x = np.asarray(x, dtype=float)
        _warn_if_far(self.form, x, self.x_range)
        if not self.boot_params:
            nan = np.full(x.shape, np.nan)
            return nan, nan.copy()
        curves = np.stack([_predict(self.form, p, x) for p in self.boot_params])
        lo_pct, hi_pct = _percentiles(self.ci)
        return np.percentile(curves, lo_pct, axis=0), np.percentile(curves, hi_pct, axis=0)

    def to_dict(self) -> dict:
        """Plain floats, ints, strings and lists only; non-finite numbers become None (valid JSON)."""
        return {
            "form": self.form,
            "params": {k: _json_float(v) for k, v in self.params.items()},
            "intervals": {k: [_json_float(lo), _json_float(hi)] for k, (lo, hi) in self.intervals.items()},
            "x_range": [float(self.x_range[0]), float(self.x_range[1])],
            "n_points": int(self.n_points),
            "rmse_log": _json_float(self.rmse_log),
            "n_boot": int(self.n_boot),
            "ci": float(self.ci),
        }


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------


def fit_learning_curve(m, eps, n_boot: int = 200, seed: int = 0, ci: float = 0.95) -> CurveFit:
    """Fit eps(m) = alpha * m**beta_g + gamma in log space, with bootstrap intervals.

    Minimises sum(rho((log pred_i - log eps_i) / f)) with rho = soft_l1, f = 0.1, over
    several starts (see `_fit_m2_theta`); deterministic for a given seed.
    """
    x, y = _validate(m, eps)
    _check_boot_args(n_boot, ci)
    params = _m2_params(_fit_m2_theta(x, y))
    samples = _bootstrap(x, y, _m2_refitter(params), n_boot, seed)
    boot_params = [_m2_params(t) for t in samples]
    return _make_fit(FORM_M2, params, boot_params, x, y, ci)


def prediction_band(m, eps, x, n_boot: int = 200, seed: int = 0, ci: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap percentile band (low, high) of the learning curve at ``x``.

    The band of `fit_learning_curve` with the same arguments (`CurveFit.band`), so the band and
    the parameter intervals come from the same resamples.
    """
    return fit_learning_curve(m, eps, n_boot=n_boot, seed=seed, ci=ci).band(x)


def fit_model_size(m, n_params, n_boot: int = 200, seed: int = 0, ci: float = 0.95) -> CurveFit:
    """Fit s(m) = sigma * m**beta_p by ordinary least squares on (log m, log s).

    log s = log sigma + beta_p * log m, so the fit is a straight line in log-log space.
    Equal parameter counts at different m are fine (several subsets may pick one model size).
    """
    x, y = _validate(m, n_params)
    _check_boot_args(n_boot, ci)
    theta = _fit_power_theta(x, y)
    params = _power_params(theta)
    samples = _bootstrap(x, y, _fit_power_theta, n_boot, seed)
    boot_params = [_power_params(t) for t in samples]
    return _make_fit(FORM_POWER, params, boot_params, x, y, ci)


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


def _validate(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Float arrays sorted by x, or FitError with a one-line reason."""
    try:
        xa = np.asarray(x, dtype=float).ravel()
        ya = np.asarray(y, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise FitError(f"x and y must be numeric: {exc}") from None
    if xa.size != ya.size:
        raise FitError(f"x and y have different lengths ({xa.size} vs {ya.size})")
    if xa.size < MIN_POINTS:
        raise FitError(f"need at least {MIN_POINTS} points to fit a curve, got {xa.size}")
    for name, a in (("x", xa), ("y", ya)):
        if not np.all(np.isfinite(a)):
            raise FitError(f"{name} has non-finite values at indices {np.flatnonzero(~np.isfinite(a)).tolist()}")
        if np.any(a <= 0):
            raise FitError(f"{name} must be positive (log-space fit), got {a[a <= 0].tolist()}")
    uniq, counts = np.unique(xa, return_counts=True)
    if np.any(counts > 1):
        raise FitError(f"duplicate x values: {uniq[counts > 1].tolist()}")
    order = np.argsort(xa)
    return xa[order], ya[order]


def _check_boot_args(n_boot: int, ci: float) -> None:
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")


def _percentiles(ci: float) -> tuple[float, float]:
    tail_pct = 100.0 * (1.0 - ci) / 2.0
    return tail_pct, 100.0 - tail_pct


def _json_float(v: float) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _warn_if_far(form: str, x: np.ndarray, x_range: tuple[float, float]) -> None:
    """Log a warning when x reaches more than EXTRAPOLATION_WARN_FACTOR beyond the fitted span."""
    lo, hi = x_range
    far = (x > hi * EXTRAPOLATION_WARN_FACTOR) | (x < lo / EXTRAPOLATION_WARN_FACTOR)
    if np.any(far):
        log.warning(
            "extrapolating %s fit more than %gx beyond the fitted range [%g, %g] (to x = %g)",
            form, EXTRAPOLATION_WARN_FACTOR, lo, hi, float(x[far].flat[np.argmax(np.abs(np.log(x[far])))]),
        )


def _predict(form: str, params: dict[str, float], x: np.ndarray) -> np.ndarray:
    if form == FORM_M2:
        return params["alpha"] * np.power(x, params["beta_g"]) + params["gamma"]
    if form == FORM_POWER:
        return params["sigma"] * np.power(x, params["beta_p"])
    raise ValueError(f"unknown curve form {form!r}")


def _bootstrap(
    x: np.ndarray, y: np.ndarray, fit_theta: Callable[[np.ndarray, np.ndarray], np.ndarray], n_boot: int, seed: int
) -> list[np.ndarray]:
    """Internal parameter vectors of up to ``n_boot`` refits on resampled points.

    Resamples with fewer than MIN_POINTS distinct x cannot pin a 3-parameter curve and are
    skipped (redrawn), so the count stays n_boot unless the data are tiny and unlucky.
    """
    rng = np.random.default_rng(seed)
    n = x.size
    out: list[np.ndarray] = []
    draws = skipped = 0
    while len(out) < n_boot and draws < n_boot * MAX_DRAWS_PER_BOOT:
        draws += 1
        idx = rng.integers(0, n, size=n)
        if np.unique(idx).size < MIN_POINTS:
            skipped += 1
            continue
        # Sorting keeps the refit independent of draw order (x itself may now repeat).
        idx.sort()
        try:
            out.append(fit_theta(x[idx], y[idx]))
        except (ValueError, np.linalg.LinAlgError) as exc:
            skipped += 1
            log.debug("bootstrap refit failed: %s", exc)
    if skipped:
        log.debug("bootstrap: skipped %d of %d resamples", skipped, draws)
    if len(out) < n_boot:
        log.warning("bootstrap: only %d of %d refits succeeded", len(out), n_boot)
    return out


def _make_fit(form: str, params: dict[str, float], boot_params: list[dict[str, float]], x, y, ci: float) -> CurveFit:
    lo_pct, hi_pct = _percentiles(ci)
    intervals: dict[str, tuple[float, float]] = {}
    for key in params:
        if boot_params:
            vals = np.array([p[key] for p in boot_params])
            intervals[key] = (float(np.percentile(vals, lo_pct)), float(np.percentile(vals, hi_pct)))
        else:
            intervals[key] = (math.nan, math.nan)
    resid_log = np.log(_predict(form, params, x)) - np.log(y)
    return CurveFit(
        form=form,
        params=params,
        intervals=intervals,
        x_range=(float(x[0]), float(x[-1])),
        n_points=int(x.size),
        rmse_log=float(np.sqrt(np.mean(resid_log**2))),
        n_boot=len(boot_params),
        ci=ci,
        boot_params=tuple(boot_params),
    )


def _line_fit(log_x: np.ndarray, log_y: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of ordinary least squares log_y = a + b * log_x.

    With every x equal the slope is undefined; that never reaches here because callers
    require at least MIN_POINTS distinct x.
    """
    lx_mean = log_x.mean()
    dx = log_x - lx_mean
    slope = float(np.dot(dx, log_y - log_y.mean()) / np.dot(dx, dx))
    return float(log_y.mean() - slope * lx_mean), slope


# ---------------------------------------------------------------------------------------------
# Model-size power law
# ---------------------------------------------------------------------------------------------


def _fit_power_theta(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """theta = (log sigma, beta_p)."""
    return np.array(_line_fit(np.log(x), np.log(y)))


def _power_params(theta: np.ndarray) -> dict[str, float]:
    return {"sigma": float(np.exp(theta[0])), "beta_p": float(theta[1])}


# ---------------------------------------------------------------------------------------------
# Learning curve: power law plus constant
# ---------------------------------------------------------------------------------------------
#
# Internal parameters theta = (log_a, beta_g, gamma, log_m0) with
#     pred(m) = exp(log_a) * (m / m0)**beta_g + gamma,    alpha = exp(log_a) * m0**(-beta_g).
# m0 is the geometric mean of the fitted m. Centring m this way decorrelates the amplitude from
# the exponent (with raw m ~ 1e5 a small change in beta_g swings alpha by orders of magnitude),
# which keeps the least-squares problem well conditioned; log_a keeps alpha positive.
# log_m0 rides along in theta so bootstrap refits (each with its own m0) convert back correctly.


def _m2_params(theta: np.ndarray) -> dict[str, float]:
    log_a, beta_g, gamma, log_m0 = (float(v) for v in theta)
    return {"alpha": float(np.exp(log_a - beta_g * log_m0)), "beta_g": beta_g, "gamma": gamma}


def _m2_refitter(full_params: dict[str, float]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The bootstrap's refit: warm-started from the full-data fit (see `_fit_m2_theta`)."""

    def refit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return _fit_m2_theta(x, y, warm=full_params)

    return refit


def _fit_m2_theta(x: np.ndarray, y: np.ndarray, warm: dict[str, float] | None = None) -> np.ndarray:
    """Best of several bounded soft_l1 fits in log space; returns (log_a, beta_g, gamma, log_m0).

    Without ``warm`` every start of `_m2_starts` is tried. With ``warm`` (a bootstrap refit,
    ``warm`` = the full-data fit) only two are: the full-data optimum and the plain log-log
    regression (gamma = 0). A resample's optimum sits next to the full-data one or, when the
    resample loses the curve's bend, at the pure power law; each least_squares call costs
    ~1.5 ms of scipy overhead, so trying all five starts 200 times would take seconds.
    """
    log_x = np.log(x)
    log_m0 = float(log_x.mean())
    log_u = log_x - log_m0
    log_y = np.log(y)
    gamma_max = GAMMA_MAX_FRACTION * float(y.min())

    def residuals(p: np.ndarray) -> np.ndarray:
        return np.log(np.exp(p[0] + p[1] * log_u) + p[2]) - log_y

    def jacobian(p: np.ndarray) -> np.ndarray:
        # r = log(A u^b + g) - log y:  dr/dlogA = A u^b / pred,  dr/db = A u^b log u / pred,
        # dr/dg = 1 / pred.
        power = np.exp(p[0] + p[1] * log_u)
        pred = power + p[2]
        return np.column_stack((power / pred, power * log_u / pred, 1.0 / pred))

    lower = np.array([-np.inf, BETA_G_MIN, 0.0])
    upper = np.array([np.inf, BETA_G_MAX, gamma_max])

    starts = _m2_starts(log_u, y, gamma_max)
    if warm is not None:
        starts = [_m2_warm_start(warm, log_m0, gamma_max), starts[0]]

    best = None
    for p0 in starts:
        res = least_squares(
            residuals, p0, jac=jacobian, bounds=(lower, upper), method="trf",
            loss="soft_l1", f_scale=SOFT_L1_SCALE_LOG, x_scale="jac",
        )
        # Strict '<' keeps the earliest start on ties, so the choice is deterministic.
        if best is None or res.cost < best.cost:
            best = res
    return np.append(best.x, log_m0)


def _m2_warm_start(params: dict[str, float], log_m0: float, gamma_max: float) -> np.ndarray:
    """Public (alpha, beta_g, gamma) as an internal start centred on m0, clipped into bounds."""
    beta0 = float(np.clip(params["beta_g"], BETA_G_MIN, BETA_G_MAX))
    log_a = float(np.log(params["alpha"])) + beta0 * log_m0
    return np.array([log_a, beta0, float(np.clip(params["gamma"], 0.0, gamma_max))])


def _m2_starts(log_u: np.ndarray, y: np.ndarray, gamma_max: float) -> list[np.ndarray]:
    """Starts from the line log(eps - gamma) = log_a + beta_g * log u for a few gammas.

    gamma = 0 is the plain log-log regression start. Each start is clipped into the bounds:
    a rising or flat residual curve gives a slope >= 0, which becomes a barely falling one.
    """
    y_min = float(y.min())
    starts = []
    for frac in GAMMA_START_FRACTIONS:
        gamma0 = min(frac * y_min, gamma_max)
        intercept, slope = _line_fit(log_u, np.log(y - gamma0))
        beta0 = float(np.clip(slope, BETA_G_MIN, -1e-3))
        starts.append(np.array([intercept, beta0, gamma0]))
    return starts

"""Curve families behind one interface: settings in the constructor, data in `fit`, the fitted
values in the returned `analysis.fit.CurveFit`.

Learning curves, error eps against training set size m (beta_g <= 0 is the scaling exponent):

==========  ====================================================================  ==============
form        formula                                                               source
==========  ====================================================================  ==============
``m1``      eps = alpha * m**beta_g                                                pure power law
``m2``      eps = alpha * m**beta_g + gamma                                        Hestness 2017
``m3``      eps = alpha * (1/m + 1/m_sat)**(-beta_g)                               Alabdulmohsin
``m4``      (eps - gamma) / (eps_0 - eps)**shape = alpha * m**beta_g               Alabdulmohsin
``bnsl``    eps = gamma + alpha * m**beta_0 * (1 + (m/m_break)**(1/smooth))        Caballero 2022
            ** ((beta_g - beta_0) * smooth)                                        (one break)
==========  ====================================================================  ==============

Model size, parameters s against m: ``power``, s = sigma * m**beta_p (ordinary least squares in
log-log space).

`fit_learning_curve` and `fit_model_size` at the end are the two fits the paper needs (M2 and the
model-size power law), kept as functions for callers that want just those.

How each form is fitted (`CurveForm.fit`): x is centred on its geometric mean x0 (u = x / x0) so
that the amplitude and the exponent are not tied together by a factor x0**beta, then the form's
internal parameters theta are found from every one of the form's starts at once by the batched
Levenberg-Marquardt of `analysis.solve` (the lowest cost wins, the earlier start on ties), with
the form's analytic Jacobian, and mapped back to the public parameters in the table. Every public
parameter gets a bootstrap percentile interval; all bootstrap refits are one more batch, each
started from the full-data optimum and from its own resample's regression start.

``solver="scipy"`` fits one start at a time with scipy's least_squares instead (each bootstrap
refit from the same two starts): the path before the batched solver, kept as the reference that
benchmarks/fit_speed.py times and the tests compare against.

Each form's ``_log_curve`` and ``_jac_log_curve`` take theta as one vector (p,) or as a batch
(B, p): `_cols` turns each parameter into a column that broadcasts against the points.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from scipy.special import expit

from analysis.fit import (
    SOFT_L1_SCALE_LOG,
    CurveFit,
    FitError,
    best_of_starts,
    bootstrap_indices,
    check_settings,
    percentiles,
    resample_y,
    validate,
)
from analysis.solve import solve

# Exponent bounds: error does not grow with data and nothing in the paper falls faster than m**-3.
BETA_MIN, BETA_MAX = -3.0, 0.0
# A floor must stay strictly below the smallest observed error, or log(eps - floor) is undefined.
FLOOR_MAX_FRACTION = 0.999
FLOOR_START_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 0.9)
SOLVERS = ("lm", "scipy")


@dataclass(frozen=True)
class Frame:
    """What a form needs to know about the data to set bounds and starts.

    ``log_u`` and ``y`` are (n,) for one fit, or (B, n) for a batch of bootstrap resamples that
    share the centre ``log_x0``; then ``y_max`` is a (B, 1) column (M4 scales eps_0 by it).
    """

    log_x0: float      # centre: mean of log x
    log_u: np.ndarray  # log(x / x0)
    y: np.ndarray

    @property
    def y_min(self) -> float:
        return float(self.y.min())

    @property
    def y_max(self):
        return float(self.y.max()) if self.y.ndim == 1 else self.y.max(axis=-1, keepdims=True)

    @property
    def floor_max(self) -> float:
        return FLOOR_MAX_FRACTION * self.y_min


def _frame(x: np.ndarray, y: np.ndarray) -> Frame:
    log_x = np.log(x)
    log_x0 = float(log_x.mean())
    return Frame(log_x0, log_x - log_x0, y)


def _cols(theta: np.ndarray) -> list[np.ndarray]:
    """Each internal parameter as a column, shape (1,) for one theta (p,) and (B, 1) for a
    batch (B, p), so that formulas broadcast against the points either way."""
    theta = np.asarray(theta, dtype=float)
    return [theta[..., i, None] for i in range(theta.shape[-1])]


def _stack(*columns) -> np.ndarray:
    """Jacobian columns (each broadcastable to the points' shape) as (..., n, p)."""
    out = np.empty(np.broadcast_shapes(*(np.shape(c) for c in columns)) + (len(columns),))
    for i, c in enumerate(columns):
        out[..., i] = c
    return out


def line_fit(log_x: np.ndarray, log_y: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of ordinary least squares log_y = a + b * log_x."""
    dx = log_x - log_x.mean()
    denom = float(np.dot(dx, dx))
    slope = float(np.dot(dx, log_y - log_y.mean()) / denom) if denom > 0 else 0.0
    return float(log_y.mean() - slope * log_x.mean()), slope


class CurveForm(ABC):
    """Base of every family. Subclasses set ``name``, ``param_names``, ``exponent`` and
    implement the hooks below; `fit` is the same for all.

    Settings: ``loss`` (soft_l1 | huber | linear) and ``f_scale`` (its scale in log units),
    ``n_boot`` bootstrap refits, ``seed`` of the bootstrap, ``ci`` coverage of the intervals,
    ``solver`` (lm: batched, the default; scipy: the reference path, see the module docstring).
    """

    name: str = ""
    param_names: tuple[str, ...] = ()
    exponent: str = "beta_g"
    has_floor: bool = False          # the form has a floor term (its floor() is a fitted value, not 0)
    default_loss: str = "soft_l1"
    # Optimiser limits per start (see analysis.fit.best_of_starts); None is scipy's default
    # (100 evaluations per parameter), which the batched solver uses as its iteration cap too.
    max_nfev: int | None = None
    tol: float = 1e-8

    def __init__(self, loss: str | None = None, f_scale: float = SOFT_L1_SCALE_LOG, n_boot: int = 200,
                 seed: int = 0, ci: float = 0.95, solver: str = "lm"):
        self.loss = loss or self.default_loss
        self.f_scale = f_scale
        self.n_boot = n_boot
        self.seed = seed
        self.ci = ci
        self.solver = solver
        check_settings(self.loss, f_scale, n_boot, ci)
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(loss={self.loss!r}, n_boot={self.n_boot}, seed={self.seed}, ci={self.ci}, "
                f"solver={self.solver!r})")

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    @property
    def min_points(self) -> int:
        """A form is fitted only on at least one point more than it has parameters (and 3), so
        that its residuals measure the scatter (n - p >= 1): with as many points as parameters
        the curve passes through every point and its intervals would have zero width."""
        return max(3, self.n_params + 1)

    def check_points(self, n: int) -> None:
        """FitError in one line when ``n`` points are too few for this form (`min_points`)."""
        if n < self.min_points:
            raise FitError(f"form {self.name} needs at least {self.min_points} points ({self.n_params} parameters "
                           f"and one more to measure the scatter), got {n}")

    # --- hooks -------------------------------------------------------------------------------

    @abstractmethod
    def curve(self, params: dict[str, float], x: np.ndarray) -> np.ndarray:
        """The curve at x from public parameters."""

    def floor(self, params: dict[str, float]) -> float:
        """The limit of the curve as x -> infinity."""
        return 0.0

    @abstractmethod
    def _log_curve(self, theta: np.ndarray, fr: Frame) -> np.ndarray:
        """log f(u; theta) at the frame's points (internal parameters, centred x)."""

    @abstractmethod
    def _jac_log_curve(self, theta: np.ndarray, fr: Frame) -> np.ndarray:
        """d log f / d theta, shape (..., n_points, n_theta)."""

    @abstractmethod
    def _bounds(self, fr: Frame) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) box bounds on theta for this frame's data."""

    @abstractmethod
    def _starts(self, fr: Frame) -> Iterator[np.ndarray]:
        """Starting thetas, the log-log regression start first (the bootstrap reuses it); a
        generator, so that the bootstrap's 200 resamples compute only that first one."""

    @abstractmethod
    def _public(self, theta: np.ndarray, fr: Frame) -> dict[str, float]:
        """Internal theta as the form's public parameters (un-centred x)."""

    @abstractmethod
    def _internal(self, params: dict[str, float], fr: Frame) -> np.ndarray:
        """Public parameters as a start in this frame (the bootstrap's warm start)."""

    # --- the shared fit ----------------------------------------------------------------------

    def fit(self, x, y, y_seeds: Sequence[Sequence[float]] | None = None) -> CurveFit:
        """Fit the curve to points (x, y); ``y_seeds`` optionally gives each point's values over
        seeds (y is then their median), so the bootstrap resamples seeds as well as points."""
        xa, ya = validate(x, y)
        self.check_points(xa.size)
        if y_seeds is not None:
            if len(y_seeds) != xa.size:
                raise FitError(f"y_seeds has {len(y_seeds)} entries for {xa.size} points")
            order = np.argsort(np.asarray(x, dtype=float).ravel())
            y_seeds = [np.asarray(y_seeds[i], dtype=float) for i in order]
        theta = self._fit_theta(xa, ya)
        params = self._public(theta, _frame(xa, ya))
        if self.solver == "scipy":
            boot = self._bootstrap(xa, ya, y_seeds, params)
        else:
            boot = self._bootstrap_batch(xa, ya, y_seeds, params)
        return self._make_fit(params, boot, xa, ya)

    @property
    def _max_iter(self) -> int:
        return self.max_nfev or 100 * self.n_params

    def _model(self, fr: Frame):
        """(g, dg/dtheta) as the batched solver calls it: theta (k, p) for problems ``rows``."""
        if fr.log_u.ndim == 1:
            return lambda th, rows: self._log_curve_and_jac(th, fr)
        return lambda th, rows: self._log_curve_and_jac(th, Frame(fr.log_x0, fr.log_u[rows], fr.y[rows]))

    def _log_curve_and_jac(self, theta: np.ndarray, fr: Frame) -> tuple[np.ndarray, np.ndarray]:
        """Both at once; forms whose two share work override this."""
        return self._log_curve(theta, fr), self._jac_log_curve(theta, fr)

    def _fit_theta(self, x: np.ndarray, y: np.ndarray, warm: dict[str, float] | None = None) -> np.ndarray:
        fr = _frame(x, y)
        log_y = np.log(y)
        lower, upper = self._bounds(fr)
        if warm is None:
            starts = list(self._starts(fr))
        else:
            # A bootstrap refit: the full-data optimum and the plain regression start, not the
            # whole grid (200 refits x every start would take seconds per form).
            starts = [self._internal(warm, fr), next(self._starts(fr))]
        if self.solver == "lm":
            theta, cost = solve(self._model(fr), log_y, np.stack(starts), lower, upper, self.loss, self.f_scale,
                                self.tol, self._max_iter)
            return theta[int(np.argmin(cost))]   # argmin: the earliest start wins ties

        def residuals(theta: np.ndarray) -> np.ndarray:
            with np.errstate(all="ignore"):
                r = self._log_curve(theta, fr) - log_y
            # Outside the curve's domain (a negative inside a log): a large, finite penalty
            # steers the optimiser back instead of stopping it.
            return np.where(np.isfinite(r), r, 1e3)

        def jac(theta: np.ndarray) -> np.ndarray:
            with np.errstate(all="ignore"):
                j = self._jac_log_curve(theta, fr)
            return np.where(np.isfinite(j), j, 0.0)

        return best_of_starts(residuals, starts, lower, upper, self.loss, self.f_scale, jac=jac, max_nfev=self.max_nfev,
                              tol=self.tol)

    def _bootstrap(self, x: np.ndarray, y: np.ndarray, y_seeds, params: dict[str, float]) -> list[dict[str, float]]:
        """One refit at a time (the scipy path)."""
        rng = np.random.default_rng(self.seed + 1)
        out = []
        for idx in bootstrap_indices(x.size, self.n_boot, self.seed, self.n_params):
            xb, yb = x[idx], resample_y(y, idx, y_seeds, rng)
            try:
                theta = self._fit_theta(xb, yb, warm=params)
            except (FitError, ValueError, np.linalg.LinAlgError):
                continue
            out.append(self._public(theta, _frame(xb, yb)))
        return out

    def _bootstrap_batch(self, x: np.ndarray, y: np.ndarray, y_seeds,
                         params: dict[str, float]) -> list[dict[str, float]]:
        """Every refit in one batch: the same resamples, starts and bounds as `_bootstrap`.

        Each resample keeps the full data's centre x0 (rather than its own), so that all of them
        share one set of formulas; centring only reparameterises the curve, so the public
        parameters of an optimum do not depend on it. Problem b is resample b from the warm
        start, problem B + b the same resample from its regression start; the lower cost wins.
        """
        rng = np.random.default_rng(self.seed + 1)
        idx = bootstrap_indices(x.size, self.n_boot, self.seed, self.n_params)
        if not idx:
            return []
        full = _frame(x, y)
        ys = np.stack([resample_y(y, i, y_seeds, rng) for i in idx])          # (B, n)
        log_u = full.log_u[np.stack(idx)]                                      # (B, n)
        frames = [Frame(full.log_x0, lu, yb) for lu, yb in zip(log_u, ys)]
        bounds = [self._bounds(f) for f in frames]
        lower = np.stack([b[0] for b in bounds])
        upper = np.stack([b[1] for b in bounds])
        theta0 = np.concatenate([np.stack([self._internal(params, f) for f in frames]),
                                 np.stack([next(self._starts(f)) for f in frames])])
        batch = Frame(full.log_x0, np.concatenate([log_u, log_u]), np.concatenate([ys, ys]))
        theta, cost = solve(self._model(batch), np.log(batch.y), theta0, np.concatenate([lower, lower]),
                            np.concatenate([upper, upper]), self.loss, self.f_scale, self.tol, self._max_iter)
        n = len(idx)
        pick = np.where(cost[n:] < cost[:n], np.arange(n) + n, np.arange(n))   # warm start wins ties
        return [self._public(theta[k], f) for k, f in zip(pick, frames)]

    def _make_fit(self, params, boot, x, y) -> CurveFit:
        lo_pct, hi_pct = percentiles(self.ci)
        intervals = {}
        for key in params:
            if boot:
                vals = np.array([p[key] for p in boot])
                intervals[key] = (float(np.percentile(vals, lo_pct)), float(np.percentile(vals, hi_pct)))
            else:
                intervals[key] = (math.nan, math.nan)
        with np.errstate(all="ignore"):
            resid = np.log(self.curve(params, x)) - np.log(y)
        return CurveFit(form=self.name, params=params, intervals=intervals, x_range=(float(x[0]), float(x[-1])),
                        n_points=int(x.size), rmse_log=float(np.sqrt(np.mean(resid**2))), n_boot=len(boot),
                        ci=self.ci, boot_params=tuple(boot), estimator=self,
                        residuals_log=tuple(float(v) for v in resid))


# ---------------------------------------------------------------------------------------------
# M1: pure power law
# ---------------------------------------------------------------------------------------------


class M1(CurveForm):
    """eps = alpha * m**beta_g, beta_g in [-3, 0].

    Internal theta = (log A, beta_g) with A = alpha * x0**beta_g: log eps = log A + beta_g log u,
    so d log eps / d theta = (1, log u).
    """

    name = "m1"
    param_names = ("alpha", "beta_g")
    bounds_exponent = (BETA_MIN, BETA_MAX)

    def curve(self, params, x):
        return params[self.param_names[0]] * np.power(x, params[self.param_names[1]])

    def _log_curve(self, theta, fr):
        log_a, beta = _cols(theta)
        return log_a + beta * fr.log_u

    def _jac_log_curve(self, theta, fr):
        log_a, _ = _cols(theta)
        return _stack(np.ones_like(log_a), fr.log_u + 0.0 * log_a)

    def _bounds(self, fr):
        lo, hi = self.bounds_exponent
        return np.array([-np.inf, lo]), np.array([np.inf, hi])

    def _starts(self, fr):
        a, b = line_fit(fr.log_u, np.log(fr.y))
        yield np.array([a, b])

    def _public(self, theta, fr):
        log_x0 = fr.log_x0
        amp, exp_ = self.param_names
        return {amp: float(math.exp(theta[0] - theta[1] * log_x0)), exp_: float(theta[1])}

    def _internal(self, params, fr):
        amp, exp_ = self.param_names
        return np.array([math.log(params[amp]) + params[exp_] * fr.log_x0, params[exp_]])


class PowerLaw(M1):
    """Model size: s = sigma * m**beta_p, by ordinary least squares on (log m, log s).

    beta_p in [-3, 3]; ``sublinear`` asks whether its whole interval lies below 1.
    """

    name = "power"
    param_names = ("sigma", "beta_p")
    exponent = "beta_p"
    default_loss = "linear"
    bounds_exponent = (-3.0, 3.0)

    def _fit_theta(self, x, y, warm=None):
        if self.loss != "linear":
            return super()._fit_theta(x, y, warm)
        # Least squares on a straight line has a closed form; no optimiser needed.
        fr = _frame(x, y)
        return np.array(line_fit(fr.log_u, np.log(y)))

    def _bootstrap_batch(self, x, y, y_seeds, params):
        if self.loss != "linear":
            return super()._bootstrap_batch(x, y, y_seeds, params)
        return self._bootstrap(x, y, y_seeds, params)   # closed-form refits: nothing to batch


# ---------------------------------------------------------------------------------------------
# M2: power law plus constant (the paper's form)
# ---------------------------------------------------------------------------------------------


class M2(CurveForm):
    """eps = alpha * m**beta_g + gamma, beta_g in [-3, 0], 0 <= gamma < min(eps).

    gamma is the irreducible error the curve levels off at. Internal theta = (log A, beta_g,
    gamma), A = alpha * x0**beta_g. Starts: the line log(eps - gamma0) = log A + beta_g log u for
    gamma0 in {0, .25, .5, .75, .9} x min(eps) (gamma0 = 0 is the log-log regression).
    With p = A u**beta_g and eps = p + gamma: d log eps / d theta = (p, p log u, 1) / eps.
    """

    name = "m2"
    has_floor = True
    param_names = ("alpha", "beta_g", "gamma")

    def curve(self, params, x):
        return params["alpha"] * np.power(x, params["beta_g"]) + params["gamma"]

    def floor(self, params):
        return params["gamma"]

    def _log_curve(self, theta, fr):
        log_a, beta, gamma = _cols(theta)
        return np.log(np.exp(log_a + beta * fr.log_u) + gamma)

    def _jac_log_curve(self, theta, fr):
        return self._log_curve_and_jac(theta, fr)[1]

    def _log_curve_and_jac(self, theta, fr):
        log_a, beta, gamma = _cols(theta)
        p = np.exp(log_a + beta * fr.log_u)
        eps = p + gamma
        return np.log(eps), _stack(p / eps, p * fr.log_u / eps, 1.0 / eps)

    def _bounds(self, fr):
        return np.array([-np.inf, BETA_MIN, 0.0]), np.array([np.inf, BETA_MAX, fr.floor_max])

    def _starts(self, fr):
        for frac in FLOOR_START_FRACTIONS:
            g0 = min(frac * fr.y_min, fr.floor_max)
            a, b = line_fit(fr.log_u, np.log(fr.y - g0))
            yield np.array([a, float(np.clip(b, BETA_MIN, -1e-3)), g0])

    def _public(self, theta, fr):
        log_x0 = fr.log_x0
        return {"alpha": float(math.exp(theta[0] - theta[1] * log_x0)), "beta_g": float(theta[1]),
                "gamma": float(theta[2])}

    def _internal(self, params, fr):
        b = float(np.clip(params["beta_g"], BETA_MIN, BETA_MAX))
        return np.array([math.log(params["alpha"]) + b * fr.log_x0, b, min(params["gamma"], fr.floor_max)])


# ---------------------------------------------------------------------------------------------
# M3: Alabdulmohsin et al. 2022
# ---------------------------------------------------------------------------------------------


class M3(CurveForm):
    """eps = alpha * (1/m + 1/m_sat)**(-beta_g), beta_g in [-3, 0], m_sat > 0.

    Alabdulmohsin et al.'s M3, eps = beta * (x**-1 + gamma)**c, with beta = alpha, c = -beta_g,
    gamma = 1/m_sat. A power law for m << m_sat that levels off at alpha * m_sat**beta_g.
    Internal theta = (log A, beta_g, log s), A = alpha * x0**beta_g, s = x0 / m_sat:
    log eps = log A - beta_g * L with L = log(1/u + s), so d log eps / d theta =
    (1, -L, -beta_g * s / (1/u + s)) and s / (1/u + s) = expit(log s + log u).
    """

    name = "m3"
    has_floor = True
    param_names = ("alpha", "beta_g", "m_sat")
    LOG_S_BOUNDS = (-25.0, 10.0)

    def curve(self, params, x):
        return params["alpha"] * np.power(1.0 / x + 1.0 / params["m_sat"], -params["beta_g"])

    def floor(self, params):
        return params["alpha"] * params["m_sat"] ** params["beta_g"]

    def _log_curve(self, theta, fr):
        log_a, beta, log_s = _cols(theta)
        return log_a - beta * np.logaddexp(-fr.log_u, log_s)

    def _jac_log_curve(self, theta, fr):
        log_a, beta, log_s = _cols(theta)
        return _stack(np.ones_like(log_a), -np.logaddexp(-fr.log_u, log_s), -beta * expit(log_s + fr.log_u))

    def _bounds(self, fr):
        return (np.array([-np.inf, BETA_MIN, self.LOG_S_BOUNDS[0]]),
                np.array([np.inf, BETA_MAX, self.LOG_S_BOUNDS[1]]))

    def _starts(self, fr):
        a, b = line_fit(fr.log_u, np.log(fr.y))
        b = float(np.clip(b, BETA_MIN, -1e-3))
        # m_sat far beyond the data (the pure power law), at the largest x, at the centre.
        for log_s in (-10.0, -float(fr.log_u.max()), 0.0):
            yield np.array([a, b, log_s])

    def _public(self, theta, fr):
        log_x0 = fr.log_x0
        return {"alpha": float(math.exp(theta[0] - theta[1] * log_x0)), "beta_g": float(theta[1]),
                "m_sat": float(math.exp(log_x0 - theta[2]))}

    def _internal(self, params, fr):
        b = float(np.clip(params["beta_g"], BETA_MIN, BETA_MAX))
        log_s = float(np.clip(fr.log_x0 - math.log(params["m_sat"]), *self.LOG_S_BOUNDS))
        return np.array([math.log(params["alpha"]) + b * fr.log_x0, b, log_s])


# ---------------------------------------------------------------------------------------------
# M4: Alabdulmohsin et al. 2022
# ---------------------------------------------------------------------------------------------

M4_SHAPE_BOUNDS = (1e-3, 5.0)
# eps_0 - max(eps) as a fraction of max(eps): eps_0 lies above every observed error.
M4_HEADROOM_BOUNDS = (1e-3, 100.0)
# Newton steps for M4's implicit equation; from the start used below they converge to 1e-12
# (relative) within 18 steps for every shape in bounds and k in [e**-40, e**40].
M4_NEWTON_STEPS = 20
M4_NEWTON_TOL = 1e-13


def m4_excess_fraction(log_k: np.ndarray, shape) -> np.ndarray:
    """log t for t in (0, 1) solving t = k * (1 - t)**shape (shape > 0), vectorised (shape may
    be an array that broadcasts against log_k).

    With b = eps_0 - gamma and f = alpha * m**beta_g, M4 says w = f * (b - w)**shape for the excess
    w = eps - gamma; t = w / b gives t = k (1 - t)**shape with k = f * b**(shape - 1). The left
    side rises and the right side falls in t, so the root is unique.

    Solved by Newton's method on h(s) = s - a * log(1 - e**s) - log k' in s = log t, which is
    increasing and convex, so Newton from a point with h >= 0 descends monotonically onto the
    root. For k <= 1 that point is s = log k (t <= k). For k > 1 (t near 1, where s is badly
    conditioned) the mirrored equation 1 - t = k**(-1/a) * t**(1/a) is solved instead for
    s = log(1 - t), which has the same form with a -> 1/a and log k -> -log k / a.
    """
    log_k = np.asarray(log_k, dtype=float)
    mirror = log_k > 0
    lk = np.where(mirror, -log_k / shape, log_k)
    a = np.where(mirror, 1.0 / shape, shape)
    s = np.minimum(lk, -1e-15)
    for _ in range(M4_NEWTON_STEPS):
        e = np.exp(s)
        h = s - a * np.log1p(-e) - lk
        step = h / (1.0 + a * e / (1.0 - e))
        s = s - step
        # Quadratic convergence: once every step is this small, the next would change nothing.
        if not np.any(np.abs(step) > M4_NEWTON_TOL * (1.0 + np.abs(s))):
            break
    return np.where(mirror, np.log1p(-np.exp(s)), s)


class M4(CurveForm):
    """(eps - gamma) / (eps_0 - eps)**shape = alpha * m**beta_g.

    Alabdulmohsin et al.'s M4 with their beta -> alpha, c -> beta_g, eps_inf -> gamma, alpha ->
    shape. eps_0 > max(eps) is the error of an untrained model (the curve starts there),
    gamma < min(eps) the floor; shape in [0.001, 5] bends the curve between them (shape -> 0 is
    M2). eps(m) solves the implicit equation (see `m4_excess_fraction`). Internal theta =
    (log A, beta_g, gamma, log h, shape) with A = alpha * x0**beta_g, eps_0 = max(eps) * (1 + h).
    """

    name = "m4"
    has_floor = True
    param_names = ("alpha", "beta_g", "gamma", "eps_0", "shape")
    # M4's (alpha, eps_0, shape) trade off along a flat valley: past 100 evaluations the cost
    # falls by under 1% and predictions move in the third digit, so stop there.
    max_nfev = 100
    tol = 1e-6

    def curve(self, params, x):
        x = np.asarray(x, dtype=float)
        b = params["eps_0"] - params["gamma"]
        log_f = math.log(params["alpha"]) + params["beta_g"] * np.log(x)
        shape = params["shape"]
        log_t = m4_excess_fraction(log_f + (shape - 1.0) * math.log(b), shape)
        return params["gamma"] + b * np.exp(log_t)

    def floor(self, params):
        return params["gamma"]

    def _excess(self, theta, fr):
        """(log t, b, gamma, shape, log h) of the curve at the frame's points."""
        log_a, beta, gamma, log_h, shape = _cols(theta)
        b = fr.y_max * (1.0 + np.exp(log_h)) - gamma      # eps_0 - gamma
        log_t = m4_excess_fraction(log_a + beta * fr.log_u + (shape - 1.0) * np.log(b), shape)
        return log_t, b, gamma, shape, log_h

    def _log_curve(self, theta, fr):
        log_t, b, gamma, _, _ = self._excess(theta, fr)
        return np.log(gamma + b * np.exp(log_t))

    def _jac_log_curve(self, theta, fr):
        return self._log_curve_and_jac(theta, fr)[1]

    def _log_curve_and_jac(self, theta, fr):
        """Implicit differentiation of F(w) = log w - log f - shape * log(b - w) = 0, w = eps - gamma:
        dw/dp = -(dF/dp) / (dF/dw) with dF/dw = 1/w + shape/(b - w); then d log eps = dw / eps
        (plus d gamma / eps for gamma itself)."""
        log_t, b, gamma, shape, log_h = self._excess(theta, fr)
        w = b * np.exp(log_t)
        rest = -b * np.expm1(log_t)          # b - w, accurate when t is near 1
        eps = gamma + w
        d_w = 1.0 / w + shape / rest
        dw_db = (shape / rest) / d_w
        return np.log(eps), _stack(
            (1.0 / d_w) / eps,                              # log A
            (fr.log_u / d_w) / eps,                         # beta_g
            (1.0 - dw_db) / eps,                            # gamma (b = eps_0 - gamma)
            dw_db * fr.y_max * np.exp(log_h) / eps,         # log h (eps_0 = y_max (1 + e^h))
            (np.log(rest) / d_w) / eps,                     # shape
        )

    def _bounds(self, fr):
        return (np.array([-np.inf, BETA_MIN, 0.0, math.log(M4_HEADROOM_BOUNDS[0]), M4_SHAPE_BOUNDS[0]]),
                np.array([np.inf, BETA_MAX, fr.floor_max, math.log(M4_HEADROOM_BOUNDS[1]), M4_SHAPE_BOUNDS[1]]))

    def _starts(self, fr):
        # The paper's linearisation: log((eps - gamma) / (eps_0 - eps)**shape) = log A + beta_g log u.
        for g_frac in (0.0, 0.5):
            for h in (0.1, 1.0):
                for shape in (0.5, 1.5):
                    gamma = g_frac * fr.y_min
                    eps_0 = fr.y_max * (1.0 + h)
                    a, b = line_fit(fr.log_u, np.log(fr.y - gamma) - shape * np.log(eps_0 - fr.y))
                    yield np.array([a, float(np.clip(b, BETA_MIN, -1e-3)), gamma, math.log(h), shape])

    def _public(self, theta, fr):
        log_a, beta, gamma, log_h, shape = (float(v) for v in theta)
        return {"alpha": math.exp(log_a - beta * fr.log_x0), "beta_g": beta, "gamma": gamma,
                "eps_0": fr.y_max * (1.0 + math.exp(log_h)), "shape": shape}

    def _internal(self, params, fr):
        b = float(np.clip(params["beta_g"], BETA_MIN, BETA_MAX))
        h = float(np.clip(params["eps_0"] / fr.y_max - 1.0, *M4_HEADROOM_BOUNDS))
        return np.array([math.log(params["alpha"]) + b * fr.log_x0, b, min(params["gamma"], fr.floor_max),
                         math.log(h), float(np.clip(params["shape"], *M4_SHAPE_BOUNDS))])


# ---------------------------------------------------------------------------------------------
# Broken power law with one break (Caballero et al. 2022)
# ---------------------------------------------------------------------------------------------

BNSL_SMOOTH_BOUNDS = (0.05, 10.0)


class BNSL(CurveForm):
    """eps = gamma + alpha * m**beta_0 * (1 + (m / m_break)**(1/smooth))**((beta_g - beta_0) * smooth).

    Caballero et al.'s broken neural scaling law with one break, y = a + b x**-c0 (1 + (x/d1)**(1/f1))
    **(-c1 f1), with a = gamma, b = alpha, c0 = -beta_0, c1 = beta_0 - beta_g, d1 = m_break,
    f1 = smooth. Slope beta_0 before the break, beta_g after it (both in [-3, 0], beta_g <= beta_0:
    the break steepens the curve, e.g. leaving the small-data region); gamma is the floor.
    m_break lies inside the fitted x range: a break outside the data cannot be identified.
    Internal theta = (log A, c0, c1, gamma, log d, log f) with A = alpha * x0**-c0, d = m_break / x0,
    f = smooth. With z = (log u - log d) / f, S = log(1 + e**z), P = log A - c0 log u - c1 f S and
    eps = gamma + e**P, q = e**P / eps: d log eps / d theta =
    (q, -q log u, -q f S, 1/eps, q c1 expit(z), -q c1 f (S - z expit(z))).
    """

    name = "bnsl"
    has_floor = True
    param_names = ("alpha", "beta_0", "beta_g", "gamma", "m_break", "smooth")

    def curve(self, params, x):
        x = np.asarray(x, dtype=float)
        c0, c1, f = -params["beta_0"], params["beta_0"] - params["beta_g"], params["smooth"]
        z = (np.log(x) - math.log(params["m_break"])) / f
        log_power = math.log(params["alpha"]) - c0 * np.log(x) - c1 * f * np.logaddexp(0.0, z)
        return params["gamma"] + np.exp(log_power)

    def floor(self, params):
        return params["gamma"]

    def _parts(self, theta, fr):
        log_a, c0, c1, gamma, log_d, log_f = _cols(theta)
        f = np.exp(log_f)
        z = (fr.log_u - log_d) / f
        s = np.logaddexp(0.0, z)
        power = np.exp(log_a - c0 * fr.log_u - c1 * f * s)
        return power, gamma, c1, f, z, s

    def _log_curve(self, theta, fr):
        power, gamma, *_ = self._parts(theta, fr)
        return np.log(power + gamma)

    def _jac_log_curve(self, theta, fr):
        return self._log_curve_and_jac(theta, fr)[1]

    def _log_curve_and_jac(self, theta, fr):
        power, gamma, c1, f, z, s = self._parts(theta, fr)
        eps = power + gamma
        q = power / eps
        sig = expit(z)
        return np.log(eps), _stack(q, -q * fr.log_u, -q * f * s, 1.0 / eps, q * c1 * sig, -q * c1 * f * (s - z * sig))

    def _bounds(self, fr):
        lo_u, hi_u = float(fr.log_u.min()), float(fr.log_u.max())
        lo_f, hi_f = (math.log(v) for v in BNSL_SMOOTH_BOUNDS)
        return (np.array([-np.inf, 0.0, 0.0, 0.0, lo_u, lo_f]),
                np.array([np.inf, -BETA_MIN, -BETA_MIN, fr.floor_max, hi_u, hi_f]))

    def _starts(self, fr):
        log_y = np.log(fr.y)
        _, slope_all = line_fit(fr.log_u, log_y)
        for q in (0.5, 0.25, 0.75):
            log_d = float(np.quantile(fr.log_u, q))
            before, after = fr.log_u <= log_d, fr.log_u >= log_d
            s0 = line_fit(fr.log_u[before], log_y[before])[1] if before.sum() >= 2 else slope_all
            s1 = line_fit(fr.log_u[after], log_y[after])[1] if after.sum() >= 2 else slope_all
            c0 = float(np.clip(-s0, 0.0, -BETA_MIN))
            c1 = float(np.clip(-s1 - c0, 0.0, -BETA_MIN))
            for g_frac in (0.0, 0.5):
                gamma = g_frac * fr.y_min
                for smooth in (0.3, 1.0):
                    # Amplitude so that the curve passes through the point nearest u = 1 (x = x0).
                    i = int(np.argmin(np.abs(fr.log_u)))
                    corr = -c1 * smooth * float(np.logaddexp(0.0, (fr.log_u[i] - log_d) / smooth)) - c0 * fr.log_u[i]
                    log_a = float(np.log(max(fr.y[i] - gamma, 1e-12 * fr.y[i]))) - corr
                    yield np.array([log_a, c0, c1, gamma, log_d, math.log(smooth)])

    def _public(self, theta, fr):
        log_x0 = fr.log_x0
        log_a, c0, c1, gamma, log_d, log_f = (float(v) for v in theta)
        return {"alpha": math.exp(log_a + c0 * log_x0), "beta_0": -c0, "beta_g": -(c0 + c1), "gamma": gamma,
                "m_break": math.exp(log_d + log_x0), "smooth": math.exp(log_f)}

    def _internal(self, params, fr):
        lo, hi = self._bounds(fr)
        c0 = -params["beta_0"]
        theta = np.array([math.log(params["alpha"]) - c0 * fr.log_x0, c0, params["beta_0"] - params["beta_g"],
                          params["gamma"], math.log(params["m_break"]) - fr.log_x0, math.log(params["smooth"])])
        return np.clip(theta, lo, hi)


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

LEARNING_FORMS: dict[str, type[CurveForm]] = {"m1": M1, "m2": M2, "m3": M3, "m4": M4, "bnsl": BNSL}
FORMS: dict[str, type[CurveForm]] = {**LEARNING_FORMS, "power": PowerLaw}


def make_form(name: str, **settings) -> CurveForm:
    """The form called ``name`` with the given settings, or a one-line error listing the forms."""
    try:
        cls = FORMS[name]
    except KeyError:
        raise ValueError(f"unknown curve form {name!r}; choose from auto, {', '.join(FORMS)}") from None
    return cls(**settings)


# ---------------------------------------------------------------------------------------------
# The paper's two fits
# ---------------------------------------------------------------------------------------------


def fit_learning_curve(m, eps, n_boot: int = 200, seed: int = 0, ci: float = 0.95) -> CurveFit:
    """eps(m) = alpha * m**beta_g + gamma (form M2, the paper's), with bootstrap intervals."""
    return M2(n_boot=n_boot, seed=seed, ci=ci).fit(m, eps)


def prediction_band(m, eps, x, n_boot: int = 200, seed: int = 0, ci: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap band (low, high) at ``x`` of `fit_learning_curve` with the same arguments."""
    return fit_learning_curve(m, eps, n_boot=n_boot, seed=seed, ci=ci).band(x)


def fit_model_size(m, n_params, n_boot: int = 200, seed: int = 0, ci: float = 0.95) -> CurveFit:
    """s(m) = sigma * m**beta_p by ordinary least squares on (log m, log s), with intervals.

    Equal parameter counts at different m are fine (several subsets may pick one model size).
    """
    return PowerLaw(n_boot=n_boot, seed=seed, ci=ci).fit(m, n_params)

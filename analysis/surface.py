"""The loss surface L(N, D) over model size and data, and the compute-optimal frontier it implies.

    L(N, D) = E + A / N**alpha + B / D**beta          (Hoffmann et al. 2022, "Chinchilla" form)

N is the parameter count, D the data in the study's unit (subset size), L the fitted metric.

Fit: approach 3 of Hoffmann et al. as redone by Besiroglu et al. 2024 (Epoch AI's replication).
With a = log A, b = log B, e = log E the prediction is taken in log space,

    log L_hat(N, D) = logsumexp(a - alpha log N, b - beta log D, e),

and theta = (a, b, e, alpha, beta) minimises the mean Huber loss (delta = 1e-3, in log units, so
nearly an absolute loss: a few bad runs cannot drag the surface) of log L_hat - log L, by L-BFGS-B
with the analytic gradient. Starts: a grid of 432 (alpha, beta in [0.2, 2], a, b, e each a share of
the typical loss); the objective is evaluated at all of them and L-BFGS-B runs from the 12 best
(on every data set tried, nearly all starts reached the same optimum, at 20-400 evaluations each);
the lowest objective wins (the earlier start on ties, so fits are deterministic). Internally log N
and log D are centred on their means, so one grid fits any scale (N ~ 1e2 or 1e10 alike);
a = a_c + alpha * mean(log N) maps back.

Intervals: a nonparametric bootstrap over the (N, D, L) rows, each resample refitted from the
point estimate and the two next-best local optima of the full fit; 95% percentile intervals of
E, A, B, alpha, beta, of the allocation exponents and of the optimum at each compute budget.
Each refit keeps the rows it was drawn from (``SurfaceFit.boot_rows``), so a quantity measured on
the same rows (a study's cost per cell, `analysis.surface_cost`) is refitted on the same resample.

Predictive interval for a NEW measurement at (N, D) (`SurfaceFit.interval`, ``--predict``,
``--backtest``): in log space a new measurement is log y = log L(N, D) + (error of the surface) +
(noise). The surface's error is drawn from the bootstrap refits, log L_b(N, D); the noise from the
fit's own log residuals, e_i = (log L_i - log L_hat_i) * sqrt(n / (n - 5)) (the factor undoes the
shrinking of residuals by the five fitted parameters), so a skewed or heavy-tailed scatter keeps
its shape. The interval is the (1 -+ level) / 2 percentiles of every sum log L_b + e_i (B refits x
n residuals, no random draws), as `analysis.fit.CurveFit.interval` does for a learning curve.

Compute-optimal allocation for a budget C = k N D (k: FLOPs per parameter per unit of data, 6 for
a dense net, ``domain.train_flops(1, 1)`` for a study): minimise E + A N**-alpha + B D**-beta on
k N D = C. Put D = C / (k N); setting dL/dN = 0 gives alpha A N**-alpha = beta B D**-beta, i.e.
N**(alpha + beta) = (alpha A / (beta B)) (C / k)**beta, so

    N_opt = G (C / k)**a_exp,   D_opt = (C / k)**b_exp / G,   G = (alpha A / (beta B))**(1 / (alpha + beta)),
    a_exp = beta / (alpha + beta),   b_exp = alpha / (alpha + beta)   (a_exp + b_exp = 1).

The same condition alpha A N**-alpha = beta B D**-beta read as N against D is the frontier as a
model-size curve: N_frontier(D) = (alpha A / (beta B))**(1 / alpha) * D**(beta / alpha).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from itertools import product
from typing import Sequence

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber
from threadpoolctl import threadpool_limits

from analysis.fit import DEFAULT_LEVEL, FitError, check_level, percentiles
from analysis.jsonsafe import json_number

log = logging.getLogger(__name__)

PARAMS = ("E", "A", "B", "alpha", "beta")
HUBER_DELTA = 1e-3                 # log units: residuals beyond ~0.1% count linearly (Epoch's choice)
FLOPS_PER_PARAM_UNIT = 6.0         # ~2 N forward + ~4 N backward per unit of data, dense nets
MIN_POINTS = 5                     # five parameters
MIN_DISTINCT = 2                   # distinct N and distinct D: one of each leaves an exponent unidentified
# Starts: exponents spread over [0, 2] (Epoch's range); a_c, b_c, e as offsets (log units) from the
# median log L. At the centre of the data L = E + A_c + B_c, so each term is below it: each start
# gives a term a share of about e**-2.5 ~ 8%, e**-1 ~ 37% or e**-0.1 ~ 90% of the typical loss.
EXPONENT_STARTS = (0.2, 0.6, 1.2, 2.0)
LOG_SHARE_STARTS = (-2.5, -1.0, -0.1)
EXPONENT_MAX = 10.0                # nothing measured falls faster than N**-10; keeps the search finite
# A term e**-15 ~ 3e-7 of the loss is zero for every purpose; a lower bound that deep only lets a
# vanishing E crawl towards it for hundreds of steps (its gradient shrinks with E itself).
LOG_TERM_BELOW = 15.0
LOG_TERM_ABOVE = 10.0
SCREEN_KEEP = 12                   # grid starts L-BFGS-B runs from, the best by their initial objective
BOOT_EXTRA_STARTS = 2              # refits also start from this many next-best optima of the full fit
DISTINCT_OPTIMUM = 1e-3            # optima closer than this in every coordinate of theta are one
MAX_DRAWS_PER_BOOT = 20
# The objective is ~ mean |log residual|: 1e-10 of it is far below anything a prediction shows.
OPTIMIZER_OPTIONS = {"maxiter": 1000, "ftol": 1e-10, "gtol": 1e-6}


@dataclass(frozen=True)
class Optimum:
    """The compute-optimal model size, data and loss at one budget, with bootstrap intervals."""

    compute: float
    n_params: float
    data: float
    loss: float
    n_params_interval: tuple[float, float] = (math.nan, math.nan)
    data_interval: tuple[float, float] = (math.nan, math.nan)
    loss_interval: tuple[float, float] = (math.nan, math.nan)

    def to_dict(self) -> dict:
        return {"compute": json_number(self.compute), "n_params": json_number(self.n_params),
                "data": json_number(self.data), "loss": json_number(self.loss),
                "n_params_interval": _pair(self.n_params_interval), "data_interval": _pair(self.data_interval),
                "loss_interval": _pair(self.loss_interval)}


@dataclass(frozen=True)
class SurfaceFit:
    """A fitted surface (``params``: E, A, B, alpha, beta), its percentile intervals, the allocation
    exponents a = beta / (alpha + beta) (N_opt ~ C**a) and b = alpha / (alpha + beta) (D_opt ~ C**b),
    and the optimum at each requested compute budget. ``boot_params`` keeps every bootstrap refit, so
    any further derived quantity gets its interval without a second bootstrap."""

    params: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    a: float
    a_interval: tuple[float, float]
    b: float
    b_interval: tuple[float, float]
    n_points: int
    optimal: tuple[Optimum, ...]
    flops_per_param_unit: float
    rmse_log: float
    n_range: tuple[float, float]
    d_range: tuple[float, float]
    n_boot: int
    ci: float = 0.95
    boot_params: tuple[dict[str, float], ...] = field(default=(), repr=False, compare=False)
    # The rows (indices into the fitted points) each bootstrap refit was drawn from, in the order
    # of boot_params, and the fit's log residuals log L_i - log L_hat_i: the predictive interval's noise.
    boot_rows: tuple[np.ndarray, ...] = field(default=(), repr=False, compare=False)
    residuals_log: tuple[float, ...] = field(default=(), repr=False, compare=False)

    def predict(self, n_params, data) -> np.ndarray:
        """L(N, D) at the given points (broadcast)."""
        return loss_at(self.params, n_params, data)

    def interval(self, n_params, data, level: float = DEFAULT_LEVEL) -> tuple[np.ndarray, np.ndarray]:
        """Predictive interval (low, high) for a NEW measurement at (N, D), covering it with
        probability ``level``: percentiles of log L_b(N, D) + e_i over the bootstrap refits b and
        the dof-corrected log residuals e_i (module docstring); (nan, nan) without a bootstrap."""
        check_level(level)
        n = np.asarray(n_params, dtype=float)
        d = np.asarray(data, dtype=float)
        n, d = np.broadcast_arrays(n, d)
        r = np.asarray(self.residuals_log, dtype=float)
        if not self.boot_params or r.size == 0:
            nan = np.full(n.shape, np.nan)
            return nan, nan.copy()
        noise = r * math.sqrt(r.size / max(r.size - len(PARAMS), 1))
        with np.errstate(all="ignore"):
            log_surfaces = np.log(np.stack([loss_at(q, n.ravel(), d.ravel()) for q in self.boot_params]))  # (B, m)
        samples = log_surfaces[:, :, None] + noise[None, None, :]                                      # (B, m, n)
        samples = np.moveaxis(samples, 1, 0).reshape(n.size, -1)
        lo_pct, hi_pct = percentiles(level)
        with np.errstate(all="ignore"):
            low = np.exp(np.nanpercentile(samples, lo_pct, axis=1))
            high = np.exp(np.nanpercentile(samples, hi_pct, axis=1))
        return low.reshape(n.shape), high.reshape(n.shape)

    def optimum(self, compute: float) -> Optimum:
        """N_opt, D_opt and L there for the budget ``compute`` (FLOPs), with bootstrap intervals."""
        return optimum_at(self.params, self.boot_params, compute, self.flops_per_param_unit, self.ci)

    def frontier_n_params(self, data) -> np.ndarray:
        """N on the compute-optimal frontier at data D: (alpha A / (beta B))**(1/alpha) D**(beta/alpha)."""
        return frontier_n_params(self.params, data)

    def frontier_exponent(self) -> tuple[float, tuple[float, float]]:
        """beta / alpha (N_opt ~ D_opt**(beta/alpha) along the frontier) and its percentile interval."""
        p = self.params
        value = _ratio(p["beta"], p["alpha"])
        boots = [_ratio(q["beta"], q["alpha"]) for q in self.boot_params]
        return value, percentile_interval(boots, self.ci)

    def to_dict(self) -> dict:
        """Plain JSON types; NaN and infinity as `analysis.jsonsafe` says."""
        return {
            "params": {k: json_number(self.params[k]) for k in PARAMS},
            "intervals": {k: _pair(self.intervals[k]) for k in PARAMS},
            "a": json_number(self.a), "a_interval": _pair(self.a_interval),
            "b": json_number(self.b), "b_interval": _pair(self.b_interval),
            "n_points": int(self.n_points),
            "optimal": [o.to_dict() for o in self.optimal],
            "flops_per_param_unit": json_number(self.flops_per_param_unit),
            "rmse_log": json_number(self.rmse_log),
            "n_range": _pair(self.n_range), "d_range": _pair(self.d_range),
            "n_boot": int(self.n_boot), "ci": float(self.ci), "huber_delta": HUBER_DELTA,
        }


# ---------------------------------------------------------------------------------------------
# The surface and its optimum (closed forms)
# ---------------------------------------------------------------------------------------------


def loss_at(params: dict[str, float], n_params, data) -> np.ndarray:
    """E + A / N**alpha + B / D**beta."""
    n = np.asarray(n_params, dtype=float)
    d = np.asarray(data, dtype=float)
    return params["E"] + params["A"] * n ** -params["alpha"] + params["B"] * d ** -params["beta"]


def allocation_exponents(params: dict[str, float]) -> tuple[float, float]:
    """(a, b) = (beta / (alpha + beta), alpha / (alpha + beta)); nan when both exponents are 0."""
    s = params["alpha"] + params["beta"]
    return _ratio(params["beta"], s), _ratio(params["alpha"], s)


def compute_optimal(params: dict[str, float], compute, flops_per_param_unit: float = FLOPS_PER_PARAM_UNIT
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(N_opt, D_opt) for budgets ``compute`` = k N D: N_opt = G (C/k)**a, D_opt = (C/k)**b / G with
    G = (alpha A / (beta B))**(1 / (alpha + beta)) (derivation in the module docstring).
    nan where the surface has no interior optimum (an exponent or amplitude of 0)."""
    c = np.asarray(compute, dtype=float) / flops_per_param_unit
    A, B, alpha, beta = params["A"], params["B"], params["alpha"], params["beta"]
    with np.errstate(all="ignore"):
        if not (alpha > 0 and beta > 0 and A > 0 and B > 0):
            nan = np.full(c.shape, np.nan)
            return nan, nan.copy()
        a_exp, b_exp = allocation_exponents(params)
        # In logs: the ratio alpha A / (beta B) may overflow as a float when A is huge.
        log_g = (math.log(alpha) + math.log(A) - math.log(beta) - math.log(B)) / (alpha + beta)
        n_opt = np.exp(log_g + a_exp * np.log(c))
        d_opt = np.exp(-log_g + b_exp * np.log(c))
    return n_opt, d_opt


def frontier_n_params(params: dict[str, float], data) -> np.ndarray:
    """N on the frontier at data D: from alpha A N**-alpha = beta B D**-beta,
    N = (alpha A / (beta B))**(1 / alpha) * D**(beta / alpha)."""
    d = np.asarray(data, dtype=float)
    A, B, alpha, beta = params["A"], params["B"], params["alpha"], params["beta"]
    if not (alpha > 0 and beta > 0 and A > 0 and B > 0):
        return np.full(d.shape, np.nan)
    with np.errstate(all="ignore"):
        return np.exp((math.log(alpha * A) - math.log(beta * B) + beta * np.log(d)) / alpha)


def optimum_at(params: dict[str, float], boot_params: Sequence[dict[str, float]], compute: float,
               flops_per_param_unit: float, ci: float = 0.95) -> Optimum:
    """`compute_optimal` and the loss there, for the fit and for each bootstrap refit (intervals)."""
    n, d = (float(v) for v in compute_optimal(params, compute, flops_per_param_unit))
    loss = float(loss_at(params, n, d)) if math.isfinite(n) else math.nan
    ns, ds, ls = [], [], []
    for q in boot_params:
        bn, bd = (float(v) for v in compute_optimal(q, compute, flops_per_param_unit))
        ns.append(bn)
        ds.append(bd)
        ls.append(float(loss_at(q, bn, bd)) if math.isfinite(bn) else math.nan)
    return Optimum(float(compute), n, d, loss, percentile_interval(ns, ci), percentile_interval(ds, ci),
                   percentile_interval(ls, ci))


# ---------------------------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------------------------


def fit_surface(n_params, data, loss, computes: Sequence[float] = (),
                flops_per_param_unit: float = FLOPS_PER_PARAM_UNIT, n_boot: int = 200, seed: int = 0,
                ci: float = 0.95) -> SurfaceFit:
    """Fit L(N, D) to the rows (n_params[i], data[i], loss[i]) with bootstrap intervals, and the
    optimum at each budget in ``computes`` (FLOPs, C = k N D with k = ``flops_per_param_unit``)."""
    n, d, y = validate_points(n_params, data, loss)
    _check_settings(computes, flops_per_param_unit, n_boot, ci)
    # One BLAS thread: L-BFGS-B's 5x5 linear algebra is tiny, and with BLAS threads on a busy
    # machine each of its calls waits for the threads to sync, ten times slower (measured).
    with threadpool_limits(1):
        return _fit(n, d, y, computes, flops_per_param_unit, n_boot, seed, ci)


def _fit(n: np.ndarray, d: np.ndarray, y: np.ndarray, computes: Sequence[float], flops_per_param_unit: float,
         n_boot: int, seed: int, ci: float) -> SurfaceFit:
    frame = _Frame(float(np.mean(np.log(n))), float(np.mean(np.log(d))), float(np.median(np.log(y))))
    x_c, y_c, log_l = np.log(n) - frame.log_n0, np.log(d) - frame.log_d0, np.log(y)
    optima = _local_optima(x_c, y_c, log_l, _screen(frame.starts(), x_c, y_c, log_l), frame.bounds())
    theta = optima[0][1]
    params = frame.public(theta)
    # Warm starts for the refits: the estimate, then the next-best distinct optima (a resample may
    # tip the data into another basin, as the full fit's other starts found).
    boot_starts = [theta]
    for _, t in optima[1:]:
        if len(boot_starts) > BOOT_EXTRA_STARTS:
            break
        if all(np.max(np.abs(t - u)) > DISTINCT_OPTIMUM for u in boot_starts):
            boot_starts.append(t)
    boots, rows = [], []
    for idx in _resamples(n, d, n_boot, seed):
        try:
            best = _local_optima(x_c[idx], y_c[idx], log_l[idx], boot_starts, frame.bounds())[0][1]
        except FitError:
            continue
        boots.append(frame.public(best))
        rows.append(idx)
    if n_boot and len(boots) < n_boot:
        log.warning("surface bootstrap: %d of %d refits succeeded", len(boots), n_boot)
    intervals = {k: percentile_interval([q[k] for q in boots], ci) for k in PARAMS}
    a, b = allocation_exponents(params)
    boot_ab = [allocation_exponents(q) for q in boots]
    pred = loss_at(params, n, d)
    residuals = log_l - np.log(pred)
    rmse = float(np.sqrt(np.mean(residuals ** 2)))
    optimal = tuple(optimum_at(params, boots, c, flops_per_param_unit, ci) for c in computes)
    return SurfaceFit(params, intervals, a, percentile_interval([v[0] for v in boot_ab], ci), b,
                      percentile_interval([v[1] for v in boot_ab], ci), int(n.size), optimal,
                      float(flops_per_param_unit), rmse, (float(n.min()), float(n.max())),
                      (float(d.min()), float(d.max())), len(boots), ci, tuple(boots), tuple(rows),
                      tuple(float(v) for v in residuals))


def validate_points(n_params, data, loss) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three float arrays of equal length, finite and positive, with enough distinct N and D;
    otherwise FitError with a one-line reason."""
    arrays = []
    for name, v in (("N (parameters)", n_params), ("D (data)", data), ("L (loss)", loss)):
        try:
            a = np.asarray(v, dtype=float).ravel()
        except (TypeError, ValueError) as exc:
            raise FitError(f"{name} must be numeric: {exc}") from None
        arrays.append(a)
    n, d, y = arrays
    if not n.size == d.size == y.size:
        raise FitError(f"N, D and L have different lengths ({n.size}, {d.size}, {y.size})")
    for name, a in (("N (parameters)", n), ("D (data)", d), ("L (loss)", y)):
        bad = ~np.isfinite(a)
        if bad.any():
            raise FitError(f"{name} has non-finite values at rows {np.flatnonzero(bad)[:10].tolist()}")
        if np.any(a <= 0):
            raise FitError(f"{name} must be positive (log-space fit), got {a[a <= 0][:10].tolist()}")
    if n.size < MIN_POINTS:
        raise FitError(f"a loss surface needs at least {MIN_POINTS} points (N, D, L), got {n.size}")
    for name, a in (("N", n), ("D", d)):
        distinct = np.unique(a).size
        if distinct < MIN_DISTINCT:
            raise FitError(f"a loss surface needs at least {MIN_DISTINCT} distinct values of {name}, got {distinct}")
    return n, d, y


def percentile_interval(values, ci: float = 0.95) -> tuple[float, float]:
    """(low, high) percentiles of the finite ``values``; (nan, nan) when fewer than half are finite
    (an interval over the few refits that happened to work would claim too much)."""
    v = np.asarray(values, dtype=float)
    ok = v[np.isfinite(v)]
    if ok.size == 0 or ok.size < v.size / 2:
        return math.nan, math.nan
    lo, hi = np.percentile(ok, percentiles(ci))
    return float(lo), float(hi)


@dataclass(frozen=True)
class _Frame:
    """Centring of the data: theta = (a_c, b_c, e, alpha, beta) with a_c = a - alpha log_n0."""

    log_n0: float
    log_d0: float
    log_l_mid: float   # median log L: where the starts and bounds of a_c, b_c, e sit

    def starts(self) -> list[np.ndarray]:
        shares = [self.log_l_mid + s for s in LOG_SHARE_STARTS]
        return [np.array([a, b, e, al, be]) for al, be in product(EXPONENT_STARTS, EXPONENT_STARTS)
                for a, b, e in product(shares, shares, shares)]

    def bounds(self) -> list[tuple[float, float]]:
        logs = (self.log_l_mid - LOG_TERM_BELOW, self.log_l_mid + LOG_TERM_ABOVE)
        return [logs, logs, logs, (0.0, EXPONENT_MAX), (0.0, EXPONENT_MAX)]

    def public(self, theta: np.ndarray) -> dict[str, float]:
        a_c, b_c, e, alpha, beta = (float(v) for v in theta)
        return {"E": math.exp(e), "A": _exp(a_c + alpha * self.log_n0), "B": _exp(b_c + beta * self.log_d0),
                "alpha": alpha, "beta": beta}


def _objective(theta: np.ndarray, x: np.ndarray, y: np.ndarray, log_l: np.ndarray) -> tuple[float, np.ndarray]:
    """mean Huber_delta(r) / delta with r = logsumexp(a - alpha x, b - beta y, e) - log L, and its
    gradient. Dividing by delta makes the objective about mean |r| (log units) and the gradient
    O(1), so L-BFGS-B's tolerances mean the same whatever delta is.

    d logsumexp / d(term j) = w_j, the softmax weight of term j, hence
    d/da = w_A, d/dalpha = -x w_A, d/db = w_B, d/dbeta = -y w_B, d/de = w_E, and
    d Huber(r) / dr / delta = clip(r / delta, -1, 1)."""
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * x, b - beta * y, np.full(x.shape, e)])   # (3, n)
    # logsumexp by hand: scipy.special.logsumexp's array-API dispatch costs ~0.25 ms a call here,
    # 30 times the arithmetic, and the fit evaluates this ~10^5 times.
    top = terms.max(axis=0)
    z = np.exp(terms - top)
    total = z.sum(axis=0)
    lse = top + np.log(total)
    w = z / total
    r = lse - log_l
    value = float(np.mean(huber(HUBER_DELTA, r))) / HUBER_DELTA
    psi = np.clip(r / HUBER_DELTA, -1.0, 1.0) / r.size
    psi_w = w * psi                                                        # (3, n)
    grad = np.array([psi_w[0].sum(), psi_w[1].sum(), psi_w[2].sum(), -(psi_w[0] @ x), -(psi_w[1] @ y)])
    return value, grad


def _local_optima(x: np.ndarray, y: np.ndarray, log_l: np.ndarray, starts, bounds) -> list[tuple[float, np.ndarray]]:
    """(objective, theta) of L-BFGS-B from every start, best first (a stable sort: earlier start on ties)."""
    found = []
    for p0 in starts:
        res = minimize(_objective, p0, args=(x, y, log_l), jac=True, method="L-BFGS-B", bounds=bounds,
                       options=OPTIMIZER_OPTIONS)
        if np.isfinite(res.fun) and np.all(np.isfinite(res.x)):
            found.append((float(res.fun), res.x))
    if not found:
        raise FitError("no start of the optimiser gave a finite surface fit")
    found.sort(key=lambda t: t[0])
    return found


def _screen(starts: list[np.ndarray], x: np.ndarray, y: np.ndarray, log_l: np.ndarray) -> list[np.ndarray]:
    """The SCREEN_KEEP starts with the lowest objective, in grid order among equals."""
    values = np.array([_objective(p, x, y, log_l)[0] for p in starts])
    return [starts[i] for i in np.argsort(values, kind="stable")[:SCREEN_KEEP]]


def _resamples(n: np.ndarray, d: np.ndarray, n_boot: int, seed: int) -> list[np.ndarray]:
    """``n_boot`` row resamples (with replacement), each with enough distinct N and D to fit."""
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    draws = 0
    while len(out) < n_boot and draws < n_boot * MAX_DRAWS_PER_BOOT:
        draws += 1
        idx = np.sort(rng.integers(0, n.size, size=n.size))
        if np.unique(n[idx]).size >= MIN_DISTINCT and np.unique(d[idx]).size >= MIN_DISTINCT:
            out.append(idx)
    return out


def _check_settings(computes: Sequence[float], k: float, n_boot: int, ci: float) -> None:
    for c in computes:
        if not (math.isfinite(c) and c > 0):
            raise ValueError(f"a compute budget must be a positive finite number of FLOPs, got {c}")
    if not (math.isfinite(k) and k > 0):
        raise ValueError(f"flops per parameter per unit of data must be positive and finite, got {k}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must lie in (0, 1), got {ci}")


def _ratio(num: float, den: float) -> float:
    return num / den if den != 0 and math.isfinite(den) else math.nan


def _exp(v: float) -> float:
    """exp that gives inf instead of raising (an amplitude of e**800 is a useless fit, not a crash)."""
    return math.exp(v) if v < 709.0 else math.inf


def _pair(iv) -> list:
    return [json_number(iv[0]), json_number(iv[1])]

"""Several learning curves fitted together in one form, under constraints on what they share.

Hestness et al. (2017, section 5) find that a better model family moves the learning curve
eps(m) = alpha * m**beta_g + gamma down by its offset alpha and leaves the exponent beta_g alone.
Whether measured curves agree with that is a question about all of them at once, so they are
fitted jointly, in one form, under nested constraints (`analysis.joint_select` tests them). Curve
k of K (N points in all) is

    eps_k(m) = alpha_k * m**beta_k + gamma_k        (form m2; gamma_k = 0 is form m1)

in one of six joint models, simplest first (p = number of parameters):

=============  ===============  ===============  ========  ====================================
model          exponent         floor            p         what it says
=============  ===============  ===============  ========  ====================================
``shift-m1``   beta shared      none (m1)        K + 1     pure power laws, one slope
``shift``      beta shared      gamma shared     K + 2     the paper's claim: offsets differ
``free-m1``    beta_k           none (m1)        2K        pure power laws, own slopes
``floors``     beta shared      gamma_k          2K + 1    one slope, own floors
``slopes``     beta_k           gamma shared     2K + 1    own slopes, one floor
``free``       beta_k           gamma_k          3K        every curve on its own (reference)
=============  ===============  ===============  ========  ====================================

``form="m1"`` keeps the m1 models, ``"m2"`` the m2 ones, ``"auto"`` all six. Curves that differ
only in alpha (shift, shift-m1) never cross; a crossover needs different slopes, or one slope
with floors and offsets in opposite order (floors).

Fit: least squares in log space, RSS = sum_i (log f(x_i) - log y_i)**2, by the batched
Levenberg-Marquardt of `analysis.solve` (loss linear: the F-test is built on RSS). x is
centred on the geometric mean x0 of all points, so theta = (log A_k, beta, gamma) with
A_k = alpha_k * x0**beta_k. Models that share nothing (free, free-m1) are K one-curve fits; the
others start from every floor fraction of `analysis.forms.FLOOR_START_FRACTIONS` (the pooled
log-log regression at that floor) and from the free fit projected onto them (mean slope, lowest
floor); the lowest RSS wins.

Bootstrap (the refits behind every interval): a residual bootstrap of the model, curves
together. The sizes are designed, not sampled, so x stays; each draw is

    log y*_i = log f(x_i; theta_hat) + e*_i,   e* drawn with replacement from r * sqrt(N / (N - p)),

r the pooled log residuals (the factor undoes their shrinking by the p fitted parameters), and
refitted in the same model from its optimum and from the plain regression start. Draw i of
every curve comes from one refit, so pairing curves draw by draw samples their joint
distribution (a shared exponent moves all of them together). It assumes one noise level for
all curves.

Which model the curves are compared in (tests, choice, weights): `analysis.joint_select`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np

from analysis.fit import FitError, validate
from analysis.forms import BETA_MAX, BETA_MIN, FLOOR_MAX_FRACTION, FLOOR_START_FRACTIONS, make_form
from analysis.solve import solve

AUTO = "auto"
COMMON_FORMS = ("m1", "m2")
SOLVER_TOL = 1e-10           # tighter than a single fit's: the F-test divides small RSS differences
SOLVER_ITER_PER_PARAM = 100  # iteration cap per parameter (scipy's default evaluation budget)
FLOORS = ("none", "shared", "free")


@dataclass(frozen=True)
class JointModel:
    """A joint model: whether the curves share the exponent, and their floor (none: m1)."""

    name: str
    shared_exponent: bool
    floor: str
    words: str

    @property
    def form(self) -> str:
        return "m1" if self.floor == "none" else "m2"

    def n_params(self, n_curves: int) -> int:
        k = n_curves
        return k + (1 if self.shared_exponent else k) + {"none": 0, "shared": 1, "free": k}[self.floor]

    @property
    def separable(self) -> bool:
        """Shares no parameter: its joint fit is one fit per curve."""
        return not self.shared_exponent and self.floor != "shared"


# Simplest first: the choice takes the simplest one not rejected (`analysis.joint_select`).
MODELS = (
    JointModel("shift-m1", True, "none", "one exponent, no floor"),
    JointModel("shift", True, "shared", "one exponent, one floor"),
    JointModel("free-m1", False, "none", "own exponents, no floor"),
    JointModel("floors", True, "free", "one exponent, own floors"),
    JointModel("slopes", False, "shared", "own exponents, one floor"),
    JointModel("free", False, "free", "own exponents, own floors"),
)
BY_NAME = {m.name: m for m in MODELS}


def models_for(form: str) -> tuple[JointModel, ...]:
    """The joint models of a common form: m1, m2, or auto (both)."""
    if form == AUTO:
        return MODELS
    if form not in COMMON_FORMS:
        raise ValueError(f"curves are compared in one common form: auto, m1 or m2, got {form!r}")
    return tuple(m for m in MODELS if m.form == form)


def nested(inner: JointModel, outer: JointModel) -> bool:
    """``inner`` is ``outer`` with constraints: a shared exponent only if ``outer``'s may differ
    or is shared too, and a floor no freer (none < shared < free)."""
    exponent_ok = inner.shared_exponent or not outer.shared_exponent
    return exponent_ok and FLOORS.index(inner.floor) <= FLOORS.index(outer.floor)


# ---------------------------------------------------------------------------------------------
# The stacked points
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    """Every curve's points, sorted by x within a curve and stacked; ``curve[i]`` says whose."""

    names: tuple[str, ...]
    curve: np.ndarray      # (N,) index of each point's curve
    log_u: np.ndarray      # (N,) log(x / x0)
    log_y: np.ndarray      # (N,)
    log_x0: float
    x_points: np.ndarray   # (N,) the sizes as given (exp(log_u + log_x0) would round them)
    row_index: tuple[np.ndarray, ...] = field(default=(), repr=False)

    def __post_init__(self):
        if not self.row_index:   # each curve's rows, looked up in every start and refit
            rows = tuple(np.flatnonzero(self.curve == k) for k in range(len(self.names)))
            object.__setattr__(self, "row_index", rows)

    @property
    def n_curves(self) -> int:
        return len(self.names)

    @property
    def n_points(self) -> int:
        return int(self.log_y.size)

    def rows(self, k: int) -> np.ndarray:
        return self.row_index[k]

    def x(self, k: int) -> np.ndarray:
        return self.x_points[self.rows(k)]


def stack(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]]) -> Stack:
    """The curves {name: (x, y)} as one `Stack`; a curve that cannot be fitted is a FitError
    naming it."""
    names, xs, ys = [], [], []
    for name, (x, y) in curves.items():
        try:
            xa, ya = validate(x, y)
        except FitError as exc:
            raise FitError(f"curve {name!r}: {exc}") from None
        names.append(name)
        xs.append(xa)
        ys.append(ya)
    x_points = np.concatenate(xs)
    log_x = np.log(x_points)
    log_x0 = float(log_x.mean())
    return Stack(tuple(names), np.concatenate([np.full(x.size, k) for k, x in enumerate(xs)]),
                 log_x - log_x0, np.log(np.concatenate(ys)), log_x0, x_points)


# ---------------------------------------------------------------------------------------------
# One joint model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where each point's parameters sit in theta = (log A_1..K, beta block, gamma block)."""

    n_params: int
    col_a: np.ndarray           # (N,)
    col_b: np.ndarray           # (N,)
    col_g: np.ndarray | None    # (N,), None without a floor


def layout(model: JointModel, st: Stack) -> Layout:
    k = st.n_curves
    col_b = k + (np.zeros_like(st.curve) if model.shared_exponent else st.curve)
    start_g = k + (1 if model.shared_exponent else k)
    col_g = None
    if model.floor != "none":
        col_g = start_g + (np.zeros_like(st.curve) if model.floor == "shared" else st.curve)
    return Layout(model.n_params(k), st.curve.copy(), col_b, col_g)


def log_curve_and_jac(theta: np.ndarray, lay: Layout, log_u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log eps at every point and d log eps / d theta, for a batch theta (B, P): with
    p_i = A_k u_i**beta and eps_i = p_i + gamma, the columns are (p, p log u, 1) / eps."""
    n = log_u.size
    p = np.exp(theta[:, lay.col_a] + theta[:, lay.col_b] * log_u)       # (B, N)
    eps = p + theta[:, lay.col_g] if lay.col_g is not None else p
    jac = np.zeros((theta.shape[0], n, lay.n_params))
    at = np.arange(n)
    jac[:, at, lay.col_a] = p / eps
    jac[:, at, lay.col_b] = p * log_u / eps
    if lay.col_g is not None:
        jac[:, at, lay.col_g] = 1.0 / eps
    return np.log(eps), jac


def bounds(model: JointModel, st: Stack, lay: Layout, log_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of theta for targets log_y (N,) or (B, N): beta in [-3, 0]; a floor in
    [0, 0.999 min y] over the curves that share it, so log(eps - gamma) stays defined."""
    log_y = np.atleast_2d(log_y)
    lo = np.full((log_y.shape[0], lay.n_params), -np.inf)
    hi = np.full((log_y.shape[0], lay.n_params), np.inf)
    lo[:, lay.col_b], hi[:, lay.col_b] = BETA_MIN, BETA_MAX
    if lay.col_g is not None:
        lo[:, lay.col_g] = 0.0
        y = np.exp(log_y)
        for col in np.unique(lay.col_g):
            hi[:, col] = FLOOR_MAX_FRACTION * y[:, lay.col_g == col].min(axis=1)
    return lo, hi


def _starts(model: JointModel, st: Stack, lay: Layout, log_y: np.ndarray, gamma: np.ndarray,
            beta: np.ndarray | None = None) -> np.ndarray:
    """Starting thetas (B, P) for targets log_y (B, N) from each curve's floor ``gamma`` (B, K)
    (and slope ``beta`` (B, K)): shared floors are the lowest, shared slopes the pooled
    within-curve regression of log(y - gamma) on log u (or the mean of ``beta``), and each log A_k
    the intercept that goes with them."""
    k = st.n_curves
    y = np.exp(log_y)
    y_min = np.stack([y[:, st.rows(c)].min(axis=1) for c in range(k)], axis=1)            # (B, K)
    if model.floor == "none":
        gamma = np.zeros_like(y_min)
    elif model.floor == "shared":
        gamma = np.repeat(gamma.min(axis=1, keepdims=True), k, axis=1)
    cap = y_min.min(axis=1, keepdims=True) if model.floor == "shared" else y_min
    gamma = np.minimum(gamma, FLOOR_MAX_FRACTION * cap)
    z = np.log(np.maximum(y - gamma[:, st.curve], 1e-12 * y))                               # (B, N)
    du = [st.log_u[st.rows(c)] - st.log_u[st.rows(c)].mean() for c in range(k)]
    dz = [z[:, st.rows(c)] - z[:, st.rows(c)].mean(axis=1, keepdims=True) for c in range(k)]
    if beta is None:
        sxy = np.stack([dz[c] @ du[c] for c in range(k)], axis=1)                           # (B, K)
        sxx = np.array([du[c] @ du[c] for c in range(k)])                                    # (K,)
        if model.shared_exponent:   # pooled slope: the least-squares common slope of K lines
            beta = np.repeat(sxy.sum(axis=1, keepdims=True) / max(sxx.sum(), 1e-300), k, axis=1)
        else:
            beta = sxy / np.where(sxx > 0, sxx, 1.0)
    elif model.shared_exponent:
        beta = np.repeat(beta.mean(axis=1, keepdims=True), k, axis=1)
    beta = np.clip(beta, BETA_MIN, -1e-3)
    log_a = np.stack([(z[:, st.rows(c)] - beta[:, c:c + 1] * st.log_u[st.rows(c)]).mean(axis=1) for c in range(k)],
                     axis=1)
    theta = np.empty((y.shape[0], lay.n_params))
    theta[:, lay.col_a], theta[:, lay.col_b] = log_a[:, st.curve], beta[:, st.curve]
    if lay.col_g is not None:
        theta[:, lay.col_g] = gamma[:, st.curve]
    return theta


def _grid_starts(model: JointModel, st: Stack, lay: Layout, log_y: np.ndarray) -> np.ndarray:
    """One start per floor fraction of `FLOOR_START_FRACTIONS` (m1 models: the plain regression)."""
    y = np.exp(log_y)
    y_min = np.array([y[st.rows(c)].min() for c in range(st.n_curves)])
    fracs = np.array((0.0,) if model.floor == "none" else FLOOR_START_FRACTIONS)
    n = fracs.size
    return _starts(model, st, lay, np.repeat(log_y[None, :], n, axis=0), fracs[:, None] * y_min[None, :])


def _solve(model: JointModel, st: Stack, lay: Layout, target: np.ndarray,
           starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """theta and cost of every start (B, P), for targets (N,) or one row of (B, N) per start."""
    lo, hi = bounds(model, st, lay, target)
    if target.ndim == 1:
        lo, hi = lo[0], hi[0]

    def fn(theta, rows):
        return log_curve_and_jac(theta, lay, st.log_u)

    return solve(fn, target, starts, lo, hi, loss="linear", f_scale=1.0, tol=SOLVER_TOL,
                 max_iter=SOLVER_ITER_PER_PARAM * lay.n_params)


@dataclass(frozen=True)
class JointFit:
    """One joint model fitted to the curves.

    ``params`` maps each curve to its public parameters in the model's form (alpha, beta_g and,
    for m2, gamma; shared ones repeat). ``rss_log`` = sum of squared log residuals, ``residuals_log``
    per curve log pred - log obs in x order. ``boot_params`` per curve: the residual-bootstrap
    refits, draw i of every curve from one refit (empty without a bootstrap).
    """

    model: JointModel
    names: tuple[str, ...]
    params: dict[str, dict[str, float]]
    rss_log: float
    n_points: int
    residuals_log: dict[str, np.ndarray] = field(repr=False)
    theta: np.ndarray = field(repr=False)
    boot_params: dict[str, tuple[dict[str, float], ...]] = field(default_factory=dict, repr=False)

    @property
    def n_params(self) -> int:
        return self.model.n_params(len(self.names))

    @property
    def dof(self) -> int:
        return self.n_points - self.n_params

    @property
    def n_boot(self) -> int:
        return min((len(b) for b in self.boot_params.values()), default=0)

    def aicc(self) -> float:
        """AICc with k = p + 1 (module docstring); inf when N - k - 1 <= 0."""
        n, k = self.n_points, self.n_params + 1
        if n - k - 1 <= 0:
            return math.inf
        rss = max(self.rss_log, 1e-300 * n)   # exact data: a finite, very low value
        return n * math.log(rss / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)

    def curve(self, name: str, x, params: Mapping[str, float] | None = None) -> np.ndarray:
        """Curve ``name`` at x (or one bootstrap refit's ``params`` of it)."""
        p = self.params[name] if params is None else params
        return _form(self.model.form).curve(dict(p), np.asarray(x, dtype=float))


@functools.lru_cache(maxsize=None)
def _form(name: str):
    """The `analysis.forms` form that evaluates a curve of the model (one per form, reused)."""
    return make_form(name, n_boot=0)


def _public(model: JointModel, st: Stack, lay: Layout, theta: np.ndarray) -> dict[str, dict[str, float]]:
    out = {}
    for c, name in enumerate(st.names):
        i = st.rows(c)[0]
        beta = float(theta[lay.col_b[i]])
        p = {"alpha": math.exp(float(theta[lay.col_a[i]]) - beta * st.log_x0), "beta_g": beta}
        if lay.col_g is not None:
            p["gamma"] = float(theta[lay.col_g[i]])
        out[name] = p
    return out


def fit_joint(st: Stack, model: JointModel, project_from: JointFit | None = None) -> JointFit:
    """Fit ``model`` to the stacked curves (no bootstrap; `bootstrap` adds it). ``project_from``:
    a fit whose per-curve slopes and floors give one more start (module docstring)."""
    lay = layout(model, st)
    if st.n_points < lay.n_params:
        raise FitError(f"joint model {model.name} has {lay.n_params} parameters for {st.n_points} points")
    if model.separable and st.n_curves > 1:
        theta = np.empty(lay.n_params)
        for c in range(st.n_curves):
            rows = st.rows(c)
            one = Stack((st.names[c],), np.zeros(rows.size, dtype=int), st.log_u[rows], st.log_y[rows], st.log_x0,
                        st.x_points[rows])
            sub = fit_joint(one, model)
            sub_lay = layout(model, one)
            theta[lay.col_a[rows[0]]] = sub.theta[sub_lay.col_a[0]]
            theta[lay.col_b[rows[0]]] = sub.theta[sub_lay.col_b[0]]
            if lay.col_g is not None:
                theta[lay.col_g[rows[0]]] = sub.theta[sub_lay.col_g[0]]
    else:
        starts = _grid_starts(model, st, lay, st.log_y)
        if project_from is not None:
            gamma = np.array([[project_from.params[n].get("gamma", 0.0) for n in st.names]])
            beta = np.array([[project_from.params[n]["beta_g"] for n in st.names]])
            starts = np.concatenate([starts, _starts(model, st, lay, st.log_y[None, :], gamma, beta)])
        thetas, cost = _solve(model, st, lay, st.log_y, starts)
        theta = thetas[int(np.argmin(cost))]   # the earliest start wins ties
    return _make_fit(model, st, lay, theta)


def _make_fit(model: JointModel, st: Stack, lay: Layout, theta: np.ndarray) -> JointFit:
    g, _ = log_curve_and_jac(theta[None, :], lay, st.log_u)
    resid = g[0] - st.log_y
    return JointFit(model, st.names, _public(model, st, lay, theta), float(np.sum(resid**2)), st.n_points,
                    {n: resid[st.rows(c)] for c, n in enumerate(st.names)}, theta)


def bootstrap(st: Stack, fit: JointFit, n_boot: int, seed: int | tuple[int, ...]) -> JointFit:
    """``fit`` with ``n_boot`` residual-bootstrap refits (module docstring); seeded, so one seed
    gives the same draws."""
    if n_boot <= 0:
        return fit
    model = fit.model
    lay = layout(model, st)
    rng = np.random.default_rng(seed)
    resid = np.concatenate([fit.residuals_log[n] for n in st.names])   # stacked order: curve by curve
    dof = max(fit.dof, 1)
    pool = -resid * math.sqrt(st.n_points / dof)   # observed minus fitted, in log units
    g, _ = log_curve_and_jac(fit.theta[None, :], lay, st.log_u)
    targets = g[0][None, :] + rng.choice(pool, size=(n_boot, st.n_points), replace=True)   # (B, N)
    warm = np.repeat(fit.theta[None, :], n_boot, axis=0)
    cold = _starts(model, st, lay, targets, np.zeros((n_boot, st.n_curves)))   # the plain regression
    # The warm start must lie inside each draw's bounds (a floor below every new minimum).
    lo, hi = bounds(model, st, lay, targets)
    warm = np.clip(warm, lo, hi)
    thetas, cost = _solve(model, st, lay, np.concatenate([targets, targets]), np.concatenate([warm, cold]))
    pick = np.where(cost[n_boot:] < cost[:n_boot], np.arange(n_boot) + n_boot, np.arange(n_boot))
    draws = [_public(model, st, lay, thetas[i]) for i in pick]
    return replace(fit, boot_params={n: tuple(d[n] for d in draws) for n in st.names})

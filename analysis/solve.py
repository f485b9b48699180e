"""Batched Levenberg-Marquardt: many small, bounded, robust least-squares problems solved at once.

Why not scipy.optimize.least_squares for every fit: a learning curve has 3-70 points and 2-6
parameters, where scipy's trust-region reflective method spends about a millisecond of Python
bookkeeping per iteration, and ``form=auto`` needs thousands of iterations per curve (five forms,
up to twelve starts each, four held-out horizons, then 200 bootstrap refits with two starts). All
starts of one fit, or all bootstrap refits of one form, are the same arithmetic on different
numbers, so they are solved here as one batch of numpy arrays, at about the cost of one.

Problem b (one row of the batch) minimises over theta_b in the box [lower_b, upper_b]

    cost_b = C**2 / 2 * sum_i rho((r_bi / C)**2),    r_bi = g(theta_b)_i - t_bi,

the robust cost of scipy's least_squares with the same ``loss`` and ``f_scale`` C:
soft_l1 rho(z) = 2 (sqrt(1 + z) - 1), huber rho(z) = z for z <= 1 else 2 sqrt(z) - 1, linear
rho(z) = z. Each iteration is one reweighted Gauss-Newton step (iteratively reweighted least
squares with weights rho'(z_bi), which has the robust cost's stationary points), damped as
Marquardt did:

    (A + mu * diag(A)) delta = -grad,    A = J^T W J,  grad = J^T W r,  W = diag(rho'(z)),

with every parameter that sits on a bound and whose gradient pushes it outward held fixed
(projected Newton), and the step clipped into the box. A step that lowers the cost is taken and
mu shrinks by Nielsen's rule, mu *= max(1/3, 1 - (2 q - 1)**3), q = actual / predicted
decrease; a step that does not is refused and mu grows (x2, x4, x8, ...). Madsen, Nielsen and
Tingleff, "Methods for non-linear least squares problems" (2004), section 3.2.

A problem stops, like scipy's, when an accepted step lowers the cost by under ``tol`` of it
(with q > 1/4), when a step is shorter than tol * (tol + |theta|), or after ``max_iter``
iterations. A residual that is not finite (the curve is undefined there) counts as a large, finite
miss, so the step that caused it is refused.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# A residual where the curve is undefined (log of a negative) counts as this miss in log units.
UNDEFINED_RESIDUAL = 1e3
MU_START = 1e-3
MU_MAX = 1e12
# Relative floor on diag(A), so a parameter the data do not constrain still has a damped step.
DIAG_FLOOR = 1e-12

Model = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def rho(z: np.ndarray, loss: str) -> tuple[np.ndarray, np.ndarray]:
    """(rho(z), rho'(z)) of scipy's robust losses, z = (r / C)**2."""
    if loss == "linear":
        return z, np.ones_like(z)
    if loss == "soft_l1":
        s = np.sqrt(1.0 + z)
        return 2.0 * (s - 1.0), 1.0 / s
    if loss == "huber":
        big = z > 1.0
        sz = np.sqrt(np.where(big, z, 1.0))
        return np.where(big, 2.0 * sz - 1.0, z), np.where(big, 1.0 / sz, 1.0)
    raise ValueError(f"unknown loss {loss!r}")


def solve(model: Model, target: np.ndarray, theta0: np.ndarray, lower: np.ndarray, upper: np.ndarray,
          loss: str = "soft_l1", f_scale: float = 0.1, tol: float = 1e-8,
          max_iter: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Solve B problems; returns (theta (B, p), cost (B,)).

    ``model(theta, rows)`` gives (g(theta) (k, n), its Jacobian (k, n, p)) for the problems
    numbered ``rows`` (theta is (k, p)): both at once, since the forms share most of the work
    (M4 solves its implicit equation once for both). ``target`` t is (n,) when every problem
    fits the same points, else (B, n). ``lower``/``upper`` are (p,) or (B, p).
    """
    theta = np.array(theta0, dtype=float, ndmin=2)
    n_prob, n_par = theta.shape
    lo = np.array(np.broadcast_to(np.asarray(lower, dtype=float), theta.shape))
    hi = np.array(np.broadcast_to(np.asarray(upper, dtype=float), theta.shape))
    target = np.asarray(target, dtype=float)
    theta = np.clip(theta, lo, hi)
    c2 = f_scale * f_scale
    out_theta, out_cost = theta.copy(), np.empty(n_prob)

    def evaluate(th, rows):
        """(residuals, Jacobian, cost, IRLS weights rho'(z)) at th."""
        t = target if target.ndim == 1 else target[rows]
        with np.errstate(all="ignore"):
            g, jac = model(th, rows)
            r = g - t
        r = np.where(np.isfinite(r), r, UNDEFINED_RESIDUAL)
        jac = np.where(np.isfinite(jac), jac, 0.0)
        value, weight = rho(r * r / c2, loss)
        return r, jac, 0.5 * c2 * value.sum(axis=-1), weight

    # The working set: problems still iterating, compacted whenever some finish.
    rows = np.arange(n_prob)
    r, J, cost, w = evaluate(theta, rows)
    mu = np.full(n_prob, MU_START)
    nu = np.full(n_prob, 2.0)
    iters = 0
    eye = np.eye(n_par)

    while rows.size:
        JW = J * w[:, :, None]                                           # (k, n, p)
        A = np.matmul(JW.transpose(0, 2, 1), J)                          # (k, p, p)
        g = np.matmul(JW.transpose(0, 2, 1), r[:, :, None])[:, :, 0]     # (k, p)
        # Parameters on a bound that the descent direction -g would push outside stay put.
        fixed = ((theta <= lo) & (g > 0)) | ((theta >= hi) & (g < 0))
        free = ~fixed
        d = np.diagonal(A, axis1=1, axis2=2)
        d = np.maximum(d, DIAG_FLOOR * np.maximum(d.max(axis=1, keepdims=True), 1e-300))
        M = (A + (mu[:, None] * d)[:, :, None] * eye) * (free[:, :, None] & free[:, None, :]) + fixed[:, :, None] * eye
        step = _solve_batch(M, np.where(free, -g, 0.0))
        new = np.clip(theta + step, lo, hi)
        step = new - theta
        r_new, J_new, cost_new, w_new = evaluate(new, rows)
        # Predicted decrease of the quadratic model along the step actually taken.
        pred = -((g + 0.5 * np.matmul(A, step[:, :, None])[:, :, 0]) * step).sum(axis=1)
        gain = cost - cost_new
        ok = np.isfinite(cost_new) & (gain > 0)
        q = np.where(pred > 0, gain / np.where(pred > 0, pred, 1.0), 0.0)
        small_step = np.linalg.norm(step, axis=1) <= tol * (tol + np.linalg.norm(theta, axis=1))
        flat = ok & (gain <= tol * cost) & (q > 0.25)

        theta[ok], r[ok], J[ok], cost[ok], w[ok] = new[ok], r_new[ok], J_new[ok], cost_new[ok], w_new[ok]
        mu = np.where(ok, mu * np.maximum(1.0 / 3.0, 1.0 - (2.0 * np.clip(q, 0.0, 1.0) - 1.0) ** 3), mu * nu)
        nu = np.where(ok, 2.0, nu * 2.0)
        iters += 1
        done = flat | small_step | (cost <= 0.0) | (mu > MU_MAX) | (iters >= max_iter)
        if done.any():
            out_theta[rows[done]], out_cost[rows[done]] = theta[done], cost[done]
            keep = ~done
            rows, theta, r, J, cost, w, mu, nu, lo, hi = (
                v[keep] for v in (rows, theta, r, J, cost, w, mu, nu, lo, hi))
    return out_theta, out_cost


def _solve_batch(M: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve every (p, p) system; a singular one (rare: all its damping floors) by least squares."""
    try:
        return np.linalg.solve(M, rhs[:, :, None])[:, :, 0]
    except np.linalg.LinAlgError:
        return np.stack([np.linalg.lstsq(m, b, rcond=None)[0] for m, b in zip(M, rhs)])

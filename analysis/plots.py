"""The paper's two figures per domain: the learning curve and the model-size curve, log-log.

Each function writes one PNG and closes its figure, so long report runs do not pile up open
figures (pyplot keeps every figure alive until closed).
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

# Headless: reports run on servers and in CI with no display. Must precede the pyplot import.
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from analysis.fit import CurveFit  # noqa: E402

log = logging.getLogger(__name__)

# The fitted curve is drawn this factor beyond the data on each side: enough to see where it
# heads, well inside CurveFit.predict's extrapolation warning (10x).
CURVE_EXTEND_FACTOR = 1.5
CURVE_POINTS = 200
DPI = 150
FIGSIZE_IN = (6.4, 4.8)


def plot_learning_curve(
    m,
    eps,
    fit: CurveFit | None,
    path,
    metric_label: str,
    best_guess: float | None = None,
    title: str = "",
    band: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> Path:
    """Generalisation error against training set size, with the fit eps = alpha m^beta_g + gamma.

    ``band`` is (x, low, high), e.g. x plus `analysis.fit.prediction_band`; drawn shaded when
    given. gamma (irreducible error) and ``best_guess`` (the error of always predicting the
    best constant) are dashed horizontal lines.
    """
    m = np.asarray(m, dtype=float)
    eps = np.asarray(eps, dtype=float)
    fig, ax = plt.subplots(figsize=FIGSIZE_IN)
    try:
        if band is not None:
            bx, lo, hi = (np.asarray(a, dtype=float) for a in band)
            ax.fill_between(bx, lo, hi, color="C0", alpha=0.2, linewidth=0, label=_ci_label(fit, "bootstrap band"))
        ax.plot(m, eps, "o", color="C0", label="measured")
        if fit is not None:
            x_curve = _curve_x(m)
            beta = fit.params["beta_g"]
            ax.plot(x_curve, fit.predict(x_curve), "-", color="C1",
                    label=f"fit: $\\beta_g$ = {beta:.3f} {_interval_text(fit, 'beta_g')}")
            gamma = fit.params["gamma"]
            # gamma = 0 has no place on a log axis; the legend entry would only mislead.
            if gamma > 0:
                ax.axhline(gamma, color="C2", linestyle="--", label=f"irreducible $\\gamma$ = {gamma:.3g}")
        if best_guess is not None and best_guess > 0:
            ax.axhline(best_guess, color="C3", linestyle="--", label=f"best guess = {best_guess:.3g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training set size m")
        ax.set_ylabel(metric_label)
        _finish(ax, title)
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_model_size(m, n_params, fit: CurveFit | None, path, title: str = "") -> Path:
    """Parameters of the best-fit model against training set size, with s = sigma m^beta_p."""
    m = np.asarray(m, dtype=float)
    n_params = np.asarray(n_params, dtype=float)
    fig, ax = plt.subplots(figsize=FIGSIZE_IN)
    try:
        ax.plot(m, n_params, "s", color="C0", label="best-fit model")
        if fit is not None:
            x_curve = _curve_x(m)
            beta = fit.params["beta_p"]
            ax.plot(x_curve, fit.predict(x_curve), "-", color="C1",
                    label=f"fit: $\\beta_p$ = {beta:.3f} {_interval_text(fit, 'beta_p')}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training set size m")
        ax.set_ylabel("parameters of best-fit model")
        _finish(ax, title)
        return _save(fig, path)
    finally:
        plt.close(fig)


def _curve_x(m: np.ndarray) -> np.ndarray:
    """Log-spaced x from a bit below the smallest m to a bit above the largest."""
    return np.geomspace(m.min() / CURVE_EXTEND_FACTOR, m.max() * CURVE_EXTEND_FACTOR, CURVE_POINTS)


def _interval_text(fit: CurveFit, key: str) -> str:
    lo, hi = fit.intervals.get(key, (float("nan"), float("nan")))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "(no interval)"
    return f"[{lo:.3f}, {hi:.3f}] ({fit.ci:.0%})"


def _ci_label(fit: CurveFit | None, what: str) -> str:
    return f"{fit.ci:.0%} {what}" if fit is not None else what


def _finish(ax, title: str) -> None:
    if title:
        ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    log.info("wrote %s", path)
    return path

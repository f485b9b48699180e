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
from analysis.regions import COMPUTE_LIMITED  # noqa: E402

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
    regions=None,
    in_fit=None,
    holdout: int = 0,
    extend_to: float | None = None,
    band_label: str | None = None,
) -> Path:
    """Generalisation error against training set size, log-log, with the fitted curve.

    ``band`` is (x, low, high), drawn shaded and labelled ``band_label`` (default: the fit's
    bootstrap band). ``regions`` (`analysis.regions.Regions`) shades the small-data and
    irreducible regions and marks compute-limited points apart (hollow triangles). ``in_fit`` marks the points the curve was fitted on
    (others hollow); the largest ``holdout`` of those are the held-out check (drawn as crosses).
    The curve is solid over the fitted range and dashed beyond it up to ``extend_to``. The floor
    and ``best_guess`` are dashed horizontal lines.
    """
    m = np.asarray(m, dtype=float)
    eps = np.asarray(eps, dtype=float)
    in_fit = np.ones(m.shape, dtype=bool) if in_fit is None else np.asarray(in_fit, dtype=bool)
    fig, ax = plt.subplots(figsize=FIGSIZE_IN)
    try:
        x_hi = max(float(m.max()) * CURVE_EXTEND_FACTOR, extend_to or 0.0)
        x_lo = float(m.min()) / CURVE_EXTEND_FACTOR
        if regions is not None:
            _shade_regions(ax, regions, x_lo, x_hi)
        if band is not None:
            bx, lo, hi = (np.asarray(a, dtype=float) for a in band)
            ax.fill_between(bx, lo, hi, color="C0", alpha=0.2, linewidth=0,
                            label=band_label or _ci_label(fit, "bootstrap band"))
        held = np.zeros(m.shape, dtype=bool)
        if holdout:
            held[np.flatnonzero(in_fit)[-holdout:]] = True
        ax.plot(m[in_fit & ~held], eps[in_fit & ~held], "o", color="C0", label="measured (fitted)")
        if held.any():
            ax.plot(m[held], eps[held], "X", color="C4", markersize=9, label=f"held-out check ({holdout} largest)")
        limited = np.zeros(m.shape, dtype=bool)
        if regions is not None:
            limited = np.array([lab == COMPUTE_LIMITED for lab in regions.labels], dtype=bool)
        if (~in_fit & ~limited).any():
            ax.plot(m[~in_fit & ~limited], eps[~in_fit & ~limited], "o", mfc="none", color="C0", label="measured (not fitted)")
        if limited.any():   # an upper bound on the best-fit error: the marker points down
            ax.plot(m[limited], eps[limited], "v", mfc="none", color="C3", markersize=8,
                    label="compute-limited (upper bound" + (", fitted)" if (limited & in_fit).any() else ", not fitted)"))
        if fit is not None:
            lo_fit, hi_fit = fit.x_range
            inside = np.geomspace(lo_fit, hi_fit, CURVE_POINTS)
            exp_name = fit.exponent
            ax.plot(inside, fit.predict(inside), "-", color="C1",
                    label=f"{fit.form}: $\\{exp_name}$ = {fit.params[exp_name]:.3f} {_interval_text(fit, exp_name)}")
            if x_hi > hi_fit:
                beyond = np.geomspace(hi_fit, x_hi, CURVE_POINTS)
                ax.plot(beyond, fit.predict(beyond), "--", color="C1", label="extrapolation")
            floor = fit.floor()
            # A zero floor has no place on a log axis; the legend entry would only mislead.
            if floor > 0:
                ax.axhline(floor, color="C2", linestyle="--", label=f"floor = {floor:.3g}")
        if best_guess is not None and best_guess > 0:
            ax.axhline(best_guess, color="C3", linestyle="--", label=f"best guess = {best_guess:.3g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(x_lo, x_hi)
        ax.set_xlabel("training set size m")
        ax.set_ylabel(metric_label)
        _finish(ax, title)
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def _shade_regions(ax, regions, x_lo: float, x_hi: float) -> None:
    if regions.small_data_until is not None:
        edge = regions.small_data_until
        if regions.power_law_from is not None:
            edge = float(np.sqrt(regions.small_data_until * regions.power_law_from))
        ax.axvspan(x_lo, edge, color="0.6", alpha=0.2, linewidth=0, label="small-data region")
    if regions.irreducible_from is not None and regions.irreducible_from < x_hi:
        ax.axvspan(max(regions.irreducible_from, x_lo), x_hi, color="C2", alpha=0.1, linewidth=0,
                   label="irreducible region")


def plot_residuals(m, eps, fit: CurveFit, path, in_fit=None, holdout_fits: dict | None = None,
                   holdout: int = 0, title: str = "") -> Path:
    """log(fit) - log(measured) against m for the chosen fit, and for each form's fit on the
    points before the held-out ones (how each would have extrapolated)."""
    m = np.asarray(m, dtype=float)
    eps = np.asarray(eps, dtype=float)
    in_fit = np.ones(m.shape, dtype=bool) if in_fit is None else np.asarray(in_fit, dtype=bool)
    fig, ax = plt.subplots(figsize=FIGSIZE_IN)
    try:
        ax.axhline(0.0, color="0.3", linewidth=0.8)
        ax.plot(m[in_fit], np.log(fit.predict(m[in_fit])) - np.log(eps[in_fit]), "o-", color="C1",
                label=f"{fit.form} on all fitted points")
        for i, (name, f) in enumerate(sorted((holdout_fits or {}).items())):
            with np.errstate(all="ignore"):
                r = np.log(f.predict(m[in_fit])) - np.log(eps[in_fit])
            ax.plot(m[in_fit], r, ".:", color=f"C{(i + 3) % 10}", alpha=0.8, label=f"{name} before held-out")
        if holdout:
            ax.axvspan(m[in_fit][-holdout] / 1.2, m[in_fit][-1] * 1.2, color="C4", alpha=0.1, linewidth=0,
                       label="held out")
        ax.set_xscale("log")
        ax.set_xlabel("training set size m")
        ax.set_ylabel("log(predicted) - log(measured)")
        _finish(ax, title)
        return save_figure(fig, path)
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
            beta = fit.params[fit.exponent]
            ax.plot(x_curve, fit.predict(x_curve), "-", color="C1",
                    label=f"fit: $\\beta_p$ = {beta:.3f} {_interval_text(fit, 'beta_p')}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training set size m")
        ax.set_ylabel("parameters of best-fit model")
        _finish(ax, title)
        return save_figure(fig, path)
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


def save_figure(fig, path) -> Path:
    """Lay out, write at DPI (folders made as needed), log, and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    log.info("wrote %s", path)
    return path

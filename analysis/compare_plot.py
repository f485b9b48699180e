"""One log-log figure of compared learning curves (`analysis.compare`).

Every curve gets its measured points, its fitted curve (solid over the data, dashed beyond; for
curves with points, the chosen joint model's, named in the legend), its predictive band
(`CurveFit.interval`, the per-size intervals' kind) out past the comparison sizes, and error bars
at each comparison size; every crossover is a dotted vertical line with its interval shaded (an
open end, 0 or inf, is shaded to the frame).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import matplotlib

# Headless: comparisons run on servers and in CI with no display. Must precede the pyplot import.
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from analysis.compare import curve_function  # noqa: E402
from analysis.fit import CurveFit  # noqa: E402
from analysis.plots import FIGSIZE_IN, save_figure  # noqa: E402

# The x axis runs this factor past the largest comparison size (or drawn crossover) and below the
# smallest point, so the last error bar and crossover line are not on the frame.
MARGIN_FACTOR = 1.5
CURVE_POINTS = 200
# Crossovers further than this factor beyond the largest comparison size are listed in the
# legend but not drawn: stretching the axis to 1000x the data would squash everything measured.
DRAW_CROSSOVER_FACTOR = 100.0


def plot_comparison(points: Mapping[str, tuple], fits: Mapping[str, CurveFit], result: Mapping[str, Any], path,
                    metric_label: str = "error", title: str = "") -> Path:
    """Write the comparison figure to ``path`` (PNG) and return the path.

    ``points`` maps each curve's name to its measured (x, y), or (x, y, in_fit) where in_fit
    marks the points the curve was fitted on (the others are drawn hollow); ``result`` is
    `analysis.compare.compare_joint`'s (or `compare_fits`') dict for the same ``fits``.
    """
    sizes = [a["x"] for a in result["at"]]
    x_lo = min(float(np.min(p[0])) for p in points.values()) / MARGIN_FACTOR
    x_top = max(sizes + [f.x_range[1] for f in fits.values()])
    drawn = [p for p in result["pairs"] if p["crossover_x"] is not None
             and p["crossover_x"] <= x_top * DRAW_CROSSOVER_FACTOR]
    x_hi = max([x_top] + [p["crossover_x"] for p in drawn]) * MARGIN_FACTOR
    grid = np.geomspace(x_lo, x_hi, CURVE_POINTS)
    fig, ax = plt.subplots(figsize=FIGSIZE_IN)
    try:
        for k, (name, fit) in enumerate(fits.items()):
            color = f"C{k % 10}"
            _draw_curve(ax, name, fit, points[name], grid, color, result["level"])
            _draw_sizes(ax, name, result["at"], color)
        for p in drawn:
            _draw_crossover(ax, p, x_lo, x_hi)
        joint = result.get("joint")
        if joint:
            p_shared = (joint.get("exponent_test") or {}).get("p_value")
            ax.plot([], [], " ", label=f"joint {joint['form']} fit: {joint['chosen_means']}"
                    + (f" (shared exponent: p = {p_shared:.2g})" if p_shared is not None else ""))
        if any(f.boot_params for f in fits.values()):
            ax.fill_between([], [], [], color="0.5", alpha=0.15, linewidth=0,
                            label=f"{result['level']:.0%} predictive intervals")
        for p in result["pairs"]:
            if p["crossover_x"] is not None and p not in drawn:
                ax.plot([], [], " ", label=f"{p['a']} = {p['b']} at {p['crossover_x']:.3g} (off the plot)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(x_lo, x_hi)
        ax.set_xlabel("training set size m")
        ax.set_ylabel(metric_label)
        if title:
            ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="x-small")
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def _draw_curve(ax, name: str, fit: CurveFit, pts: tuple, grid: np.ndarray, color: str, level: float) -> None:
    x, y = np.asarray(pts[0], dtype=float), np.asarray(pts[1], dtype=float)
    in_fit = np.asarray(pts[2], dtype=bool) if len(pts) > 2 else np.ones(x.shape, dtype=bool)
    ax.plot(x[in_fit], y[in_fit], "o", color=color, markersize=4)
    if (~in_fit).any():
        ax.plot(x[~in_fit], y[~in_fit], "o", mfc="none", color=color, markersize=4)
    lo_fit, hi_fit = fit.x_range
    f = curve_function(fit)
    exp = fit.params[fit.exponent]
    inside = grid[(grid >= lo_fit) & (grid <= hi_fit)]
    ax.plot(inside, f(inside), "-", color=color, label=f"{name}: {fit.form}, $\\beta_g$ = {exp:.3f}")
    beyond = grid[grid >= hi_fit]
    if beyond.size:
        ax.plot(beyond, f(beyond), "--", color=color)
    if fit.boot_params:
        low, high = fit.interval(grid, level)
        ax.fill_between(grid, low, high, color=color, alpha=0.15, linewidth=0)


def _draw_sizes(ax, name: str, at: list[dict], color: str) -> None:
    for a in at:
        e = a["errors"][name]
        if e["y"] is None:
            continue
        lo = e["y"] - e["low"] if e["low"] is not None else 0.0
        hi = e["high"] - e["y"] if e["high"] is not None else 0.0
        ax.errorbar([a["x"]], [e["y"]], yerr=[[max(lo, 0.0)], [max(hi, 0.0)]], fmt="s", color=color,
                    markersize=4, capsize=3)


def _draw_crossover(ax, pair: dict, x_lo: float, x_hi: float) -> None:
    x = pair["crossover_x"]
    lo, hi = (_number(v) for v in pair["crossover_interval"])
    label = f"{pair['a']} = {pair['b']} at {x:.3g}"
    if lo is not None and hi is not None:
        ax.axvspan(max(lo, x_lo), min(hi, x_hi), color="0.5", alpha=0.12, linewidth=0)
        label += f" [{lo:.3g}, {hi:.3g}]"
    ax.axvline(x, color="0.3", linestyle=":", label=label)


def _number(v) -> float | None:
    """A record's number as a float: None stays None, "inf" (`analysis.jsonsafe`) is infinity."""
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v

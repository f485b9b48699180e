"""The loss surface as a picture: iso-loss contours of the fitted L(N, D) on log axes, the points it
was fitted to (a study's tuned cells, a CSV's rows) coloured by their observed loss on the same
colour scale, and the compute-optimal frontier.

One PNG per call, the figure closed afterwards (as in `analysis.plots`).
"""

from __future__ import annotations

from pathlib import Path
import matplotlib

# Headless: reports run on servers and in CI with no display. Must precede the pyplot import.
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from analysis.plots import save_figure  # noqa: E402
from analysis.surface import SurfaceFit, compute_optimal  # noqa: E402

# The contours cover the trials' N and D box widened by this factor on each side: enough to see
# where the surface heads without pretending to know it far away.
BOX_EXTEND_FACTOR = 3.0
# The frontier is drawn from the smallest trial budget k N D divided by this to the largest times it.
FRONTIER_EXTEND_FACTOR = 10.0
FRONTIER_MAX_STRETCH = 100.0
FRONTIER_MARGIN = 1.5       # room around the frontier's ends, so the stars at the edge stay whole
GRID_POINTS = 120
N_LEVELS = 12
FIGSIZE_IN = (6.8, 5.2)


def plot_surface(n_params, data, loss, fit: SurfaceFit, path, metric_label: str = "loss",
                 data_label: str = "data D", title: str = "", points_label: str = "points") -> Path:
    """Contours of ``fit`` over (N, D), the points (n_params, data) coloured by ``loss``, the
    frontier (N_opt(C), D_opt(C)) for C from the points' smallest k N D / FRONTIER_EXTEND_FACTOR to
    their largest times it, and the optimum at each of the fit's requested budgets."""
    n = np.asarray(n_params, dtype=float)
    d = np.asarray(data, dtype=float)
    y = np.asarray(loss, dtype=float)
    k = fit.flops_per_param_unit
    budgets = k * n * d
    c_line = np.geomspace(budgets.min() / FRONTIER_EXTEND_FACTOR, budgets.max() * FRONTIER_EXTEND_FACTOR, 200)
    n_opt, d_opt = compute_optimal(fit.params, c_line, k)
    n_lo, n_hi = _span(n, n_opt)
    d_lo, d_hi = _span(d, d_opt)
    nn, dd = np.meshgrid(np.geomspace(n_lo, n_hi, GRID_POINTS), np.geomspace(d_lo, d_hi, GRID_POINTS))
    z = fit.predict(nn, dd)
    # One log colour scale for the contours and the points, so a point's colour says whether it
    # lies above or below the surface around it.
    z_lo = float(min(np.nanmin(z), y.min()))
    z_hi = float(max(np.nanmax(z), y.max()))
    norm = LogNorm(vmin=z_lo, vmax=z_hi if z_hi > z_lo else z_lo * 1.01)
    fig, ax = plt.subplots(figsize=FIGSIZE_IN)
    try:
        levels = np.geomspace(norm.vmin, norm.vmax, N_LEVELS + 2)[1:-1]
        cs = ax.contour(nn, dd, z, levels=levels, cmap="viridis", norm=norm, linewidths=1.0)
        ax.clabel(cs, fmt=lambda v: f"{v:.3g}", fontsize="x-small")
        sc = ax.scatter(n, d, c=y, cmap="viridis", norm=norm, edgecolors="k", linewidths=0.5, s=30, zorder=3,
                        label=f"{points_label} ({n.size})")
        fig.colorbar(sc, ax=ax, label=metric_label)
        if np.all(np.isfinite(n_opt)):
            ax.plot(n_opt, d_opt, "-", color="C3", linewidth=2,
                    label=f"compute-optimal: N ~ C^{fit.a:.2f}, D ~ C^{fit.b:.2f}")
        _mark_optima(ax, fit)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):    # labelled minor ticks collide on spans of a decade or two
            axis.set_minor_formatter(NullFormatter())
        ax.set_xlim(n_lo, n_hi)
        ax.set_ylim(d_lo, d_hi)
        ax.set_xlabel("parameters N")
        ax.set_ylabel(data_label)
        p = fit.params
        ax.set_title(title or f"L = {p['E']:.3g} + {p['A']:.3g}/N^{p['alpha']:.3f} + {p['B']:.3g}/D^{p['beta']:.3f}",
                     fontsize="medium")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize="small", loc="best")
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def _span(values: np.ndarray, frontier: np.ndarray) -> tuple[float, float]:
    """The axis range: the points widened by BOX_EXTEND_FACTOR, stretched to take in the frontier,
    but by no more than FRONTIER_MAX_STRETCH beyond the points (a poorly determined fit can put
    its frontier decades away, and the contours of the data would shrink to nothing)."""
    lo, hi = values.min() / BOX_EXTEND_FACTOR, values.max() * BOX_EXTEND_FACTOR
    f = frontier[np.isfinite(frontier) & (frontier > 0)]
    if f.size:
        lo = max(min(lo, f.min() / FRONTIER_MARGIN), lo / FRONTIER_MAX_STRETCH)
        hi = min(max(hi, f.max() * FRONTIER_MARGIN), hi * FRONTIER_MAX_STRETCH)
    return float(lo), float(hi)


def _mark_optima(ax, fit: SurfaceFit) -> None:
    """A star at (N_opt, D_opt) of each budget the fit was asked about."""
    for i, o in enumerate(fit.optimal):
        if np.isfinite(o.n_params) and np.isfinite(o.data):
            ax.plot([o.n_params], [o.data], "*", color="C1", markersize=11, markeredgecolor="k", zorder=4,
                    label="optimum at the requested budgets" if i == 0 else None)

"""Fit a study's curves from what MLflow holds, and log the fits and plots to its parent run.

Shared by ``scal study`` (at the end) and ``scal analyze`` (on an existing store). The points are
read back from MLflow with `analysis.reader`, never taken from memory, so what is fitted is
exactly what anyone can see in the store.

Points whose error is within ``SMALL_DATA_TOL`` of the best-guess error are in the small-data
region (the model has learnt next to nothing) and are left out of the power-law fit when at
least three other points remain.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from analysis.fit import FitError, fit_learning_curve, fit_model_size, sublinear
from analysis.plots import plot_learning_curve, plot_model_size
from analysis.reader import best_fit_points, read_trials
from scal import keys
from scal.tracking import StudyTracker

log = logging.getLogger(__name__)

SMALL_DATA_TOL = 0.05


def classify_regions(errors: np.ndarray, best_guess: float) -> list[str]:
    """``small-data`` where error >= (1 - tol) * best guess, else ``power-law``."""
    return ["small-data" if e >= (1 - SMALL_DATA_TOL) * best_guess else "power-law" for e in errors]


def analyze_study(tracker: StudyTracker, parent_run_id: str, metric: str, best_guess: float,
                  n_boot: int = 200, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Read, fit, plot, log; return the summary (the fields of ``scal study --json``)."""
    points = best_fit_points(read_trials(tracker.uri, parent_run_id))
    if len(points) < 3:
        raise FitError(f"study {parent_run_id} has {len(points)} subsets with finished trials; a fit needs at least 3")
    m = points["size"].to_numpy(float)
    eps = points["val_error"].to_numpy(float)
    n_params = points["n_params"].to_numpy(float)
    points["region"] = classify_regions(eps, best_guess)
    in_fit = points["region"].to_numpy() == "power-law"
    if in_fit.sum() < 3:
        in_fit[:] = True
    points["in_fit"] = in_fit

    lc = fit_learning_curve(m[in_fit], eps[in_fit], n_boot=n_boot)
    ms = fit_model_size(m, n_params, n_boot=n_boot)
    grid = np.geomspace(m.min() / 1.5, m.max() * 4, 60)
    low, high = lc.band(grid)

    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="scal-analysis-"))
    out.mkdir(parents=True, exist_ok=True)
    lc_png = plot_learning_curve(m, eps, lc, out / "learning_curve.png", metric, best_guess=best_guess,
                                 band=(grid, low, high), title=f"learning curve ({metric})")
    ms_png = plot_model_size(m, n_params, ms, out / "model_size.png", title="best-fit model size")
    points.to_csv(out / "best_fit_points.csv", index=False)
    fits = {"learning_curve": lc.to_dict(), "model_size": ms.to_dict(), "sublinear": sublinear(ms),
            "metric": metric, "best_guess_error": best_guess, "points": points.to_dict(orient="records")}
    tracker.log_dict(fits, "fits.json")
    for path in (lc_png, ms_png, out / "best_fit_points.csv"):
        tracker.log_artifact(path, "analysis")
    bg_lo, bg_hi = lc.intervals["beta_g"]
    bp_lo, bp_hi = ms.intervals["beta_p"]
    tracker.log_summary({
        keys.M_ALPHA: lc.params["alpha"], keys.M_BETA_G: lc.params["beta_g"], keys.M_GAMMA: lc.params["gamma"],
        "beta_g_low": bg_lo, "beta_g_high": bg_hi, keys.M_SIGMA: ms.params["sigma"], keys.M_BETA_P: ms.params["beta_p"],
        "beta_p_low": bp_lo, "beta_p_high": bp_hi, "fit_rmse_log": lc.rmse_log,
    })
    table = format_table(points, metric)
    return {
        "subsets": [
            {"size": int(r["size"]), "val_error": float(r["val_error"]), "n_params": int(r["n_params"]),
             "n_seeds": int(r["n_seeds"]), "region": r["region"], "in_fit": bool(r["in_fit"]),
             "size_knobs": {k.removeprefix(keys.P_SIZE_PREFIX): int(float(r[k])) for k in points.columns
                            if k.startswith(keys.P_SIZE_PREFIX)}, "lr": float(r["lr"])}
            for _, r in points.iterrows()
        ],
        "alpha": lc.params["alpha"], "beta_g": lc.params["beta_g"], "beta_g_interval": [bg_lo, bg_hi],
        "gamma": lc.params["gamma"], "gamma_interval": list(lc.intervals["gamma"]),
        "sigma": ms.params["sigma"], "beta_p": ms.params["beta_p"], "beta_p_interval": [bp_lo, bp_hi],
        "sublinear": sublinear(ms), "best_guess_error": best_guess, "table": table,
        "artifacts_dir": str(out),
    }


def format_table(points, metric: str) -> str:
    """The summary table printed at the end of a study."""
    knobs = [c for c in points.columns if c.startswith(keys.P_SIZE_PREFIX)]
    cols = ["size", "val_error", "val_error_min", "val_error_max", "n_seeds", "n_params", *knobs, "lr", "region"]
    shown = points[cols].rename(columns={"size": "m", "val_error": f"{metric} (median)", "val_error_min": "min",
                                         "val_error_max": "max", **{k: k.removeprefix(keys.P_SIZE_PREFIX) for k in knobs}})
    return shown.to_string(index=False, float_format=lambda v: f"{v:.4g}")

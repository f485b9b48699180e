"""A study's analysis: read its runs from MLflow, fit, classify, plan, plot, report, log.

Shared by ``scal study`` (at the end), ``scal analyze``, ``scal report`` and ``scal predict``.
The points are read back from MLflow with `scal.reader`, never taken from memory, so what is
fitted is exactly what anyone can see in the store.

- Learning curve: the best-fit configuration of every subset (median over seeds of minimum
  validation error); small-data points are left out of the fit (`analysis.regions.fit_mask`);
  the form is ``auto`` by default (chosen by held-out extrapolation, `analysis.select`); the
  bootstrap resamples subsets and, within each, seeds.
- Model size: s(m) = sigma m**beta_p over the best-fit models' parameter counts.
- Cost: measured wall time and units processed (epochs x m) of the best-fit trials, each fitted
  with the same power law, and the domain's FLOPs estimate, for planning.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from analysis import decision
from analysis.backtest import backtest
from analysis.backtest import metrics as backtest_metrics
from analysis.defaults import DEFAULT_N_BOOT
from analysis.fit import DEFAULT_LEVEL, CurveFit, FitError, sublinear
from analysis.forms import fit_model_size
from analysis.jsonsafe import json_number
from analysis.plan import data_for_error, power_at, predict_errors
from analysis.plots import plot_learning_curve, plot_model_size, plot_residuals
from analysis.regions import Regions, classify, compute_limited_reasons, fit_mask
from analysis.report import write_report
from analysis.select import AUTO, Selection, fit_curve
from analysis.surface_cost import compute_sentence
from mlflow.tracking import MlflowClient

from scal import keys, story
from scal.reader import best_fit_points, read_trials, study_params
from scal.tracking import StudyTracker

log = logging.getLogger(__name__)

# The learning-curve plot draws the extrapolation this far past the largest subset.
PLOT_EXTEND_FACTOR = 4.0


@dataclass
class StudyFits:
    """Everything fitted for one study (see the module docstring)."""

    run_id: str
    points: pd.DataFrame
    metric: str
    best_guess: float
    domain: str | None
    unit: str | None
    selection: Selection
    regions: Regions
    model_size: CurveFit
    wall_time: CurveFit | None
    units_seen: CurveFit | None
    trials: pd.DataFrame | None = None   # every trial run as read (the loss surface's points), read once

    @property
    def curve(self) -> CurveFit:
        return self.selection.fit


def fit_study(client: MlflowClient, run_id: str, form: str = AUTO, holdout: int | None = None, n_boot: int = 200,
              seed: int = 0, include_compute_limited: bool = False) -> StudyFits:
    """Read the study ``run_id`` through ``client`` and fit its curves. Compute-limited
    points (`analysis.regions.compute_limited_reasons`) are labelled and, unless
    ``include_compute_limited``, left out of the learning-curve fit."""
    params = study_params(client, run_id)
    metric = params.get("study.metric", "error")
    best_guess = float(params.get("study.best_guess_error", "nan"))
    trials = read_trials(client, run_id)
    points = best_fit_points(trials)
    if len(points) < 3:
        raise FitError(f"study {run_id} has {len(points)} subsets with finished trials; a fit needs at least 3")
    m = points["size"].to_numpy(float)
    eps = points["val_error"].to_numpy(float)
    points["compute_limited"] = _compute_limited(points, params)
    limited = points["compute_limited"].to_numpy(str) != ""
    in_fit = fit_mask(eps, best_guess, exclude=None if include_compute_limited else limited)
    seeds = [np.asarray(v, dtype=float) for v in points["seed_errors"]]
    sel = fit_curve(m[in_fit], eps[in_fit], form=form, holdout=holdout,
                    y_seeds=[s for s, keep in zip(seeds, in_fit) if keep], n_boot=n_boot, seed=seed)
    regions = classify(m, eps, sel.fit, best_guess, compute_limited=limited)
    points["region"] = regions.labels
    points["in_fit"] = in_fit
    ms = fit_model_size(m, points["n_params"].to_numpy(float), n_boot=n_boot, seed=seed)
    return StudyFits(run_id, points, metric, best_guess, params.get("study.domain"), params.get("study.unit"),
                     sel, regions, ms, _cost_fit(m, points["wall_time_s"], n_boot, seed),
                     _cost_fit(m, points["epochs"].to_numpy(float) * m, n_boot, seed), trials)


def _compute_limited(points: pd.DataFrame, params: dict[str, str]) -> list[str]:
    """Each point's compute-limited reason ("" if none), from the study's width cap and the
    growth knob of its domain."""
    import domains

    dom = domains.REGISTRY.get(params.get("study.domain", ""))
    knob = f"{keys.P_SIZE_PREFIX}{dom.grow_knob}" if dom is not None else None
    widths = pd.to_numeric(points[knob], errors="coerce") if knob in points else np.full(len(points), np.nan)
    cap = pd.to_numeric(params.get("study.max_width"), errors="coerce")
    return compute_limited_reasons(widths, points.get("cut_short", np.zeros(len(points))),
                                   float(cap) if pd.notna(cap) else None)


def _cost_fit(m: np.ndarray, values, n_boot: int, seed: int) -> CurveFit | None:
    """A power law of a measured cost against m, or None when it was not measured."""
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v) & (v > 0)
    if ok.sum() < 3:
        return None
    return fit_model_size(m[ok], v[ok], n_boot=n_boot, seed=seed)


# ---------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------


def plan(fits: StudyFits, sizes: Sequence[float] = (), target_error: float | None = None,
         level: float = DEFAULT_LEVEL) -> dict[str, Any]:
    """Errors at ``sizes`` with ``level`` predictive intervals (one extrapolation warning for them
    all) and, for ``target_error``, the data, model size and compute it needs."""
    out: dict[str, Any] = {
        "predictions": [{"m": float(s), **e.to_dict()} for s, e in zip(sizes, predict_errors(fits.curve, sizes, level))]}
    if target_error is None:
        return out
    need = data_for_error(fits.curve, target_error, level)
    entry: dict[str, Any] = {"data": need.to_dict()}
    if need.reachable:
        entry.update(_costs_at(fits, need.m, need.low, need.high, level))
    out["target"] = entry
    return out


def _costs_at(fits: StudyFits, m: float, m_low: float, m_high: float, level: float) -> dict[str, Any]:
    size = power_at(fits.model_size, m, m_low, m_high, level)
    out: dict[str, Any] = {"n_params": size.to_dict()}
    if fits.wall_time is not None:
        out["wall_time_s"] = power_at(fits.wall_time, m, m_low, m_high, level).to_dict()
        out["wall_time_exponent"] = fits.wall_time.params["beta_p"]
    if fits.units_seen is not None and fits.domain:
        import domains

        dom = domains.REGISTRY.get(fits.domain)
        if dom is not None:
            units = power_at(fits.units_seen, m, m_low, m_high, level)
            out["units_processed"] = units.to_dict()
            out["train_flops"] = {
                "value": dom.train_flops(size.value, units.value),
                "low": dom.train_flops(size.low, units.low) if math.isfinite(size.low) else None,
                "high": dom.train_flops(size.high, units.high) if math.isfinite(size.high) else None,
                "estimate": "domain.train_flops(best-fit parameters, units processed)",
            }
    return out


# ---------------------------------------------------------------------------------------------
# The whole analysis of a study
# ---------------------------------------------------------------------------------------------


def analyze_study(tracker: StudyTracker, parent_run_id: str, n_boot: int = DEFAULT_N_BOOT, out_dir: str | Path | None = None,
                  form: str = AUTO, holdout: int | None = None, target_error: float | None = None,
                  include_compute_limited: bool = False) -> dict[str, Any]:
    """Read, fit, plot, write the report, log it all to the parent run; return the summary (the
    fields of ``scal study --json``). The metric and best-guess error come from the run's params."""
    fits = fit_study(tracker.client, parent_run_id, form=form, holdout=holdout, n_boot=n_boot,
                     include_compute_limited=include_compute_limited)
    lc, ms, sel, pts = fits.curve, fits.model_size, fits.selection, fits.points
    m = pts["size"].to_numpy(float)
    eps = pts["val_error"].to_numpy(float)
    in_fit = pts["in_fit"].to_numpy(bool)
    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="scal-analysis-"))
    out.mkdir(parents=True, exist_ok=True)
    x_hi = m.max() * PLOT_EXTEND_FACTOR
    grid = np.geomspace(m.min() / 1.5, x_hi, 80)
    # The band is the predictive interval the planning and the decision summary quote.
    low, high = lc.interval(grid, DEFAULT_LEVEL)
    title = f"{fits.domain or ''} {fits.unit or ''}".strip()
    lc_png = plot_learning_curve(m, eps, lc, out / "learning_curve.png", fits.metric, best_guess=fits.best_guess,
                                 band=(grid, low, high), band_label=f"{DEFAULT_LEVEL:.0%} predictive interval",
                                 title=f"learning curve: {title} ({fits.metric})",
                                 regions=fits.regions, in_fit=in_fit, holdout=sel.holdout, extend_to=x_hi)
    ms_png = plot_model_size(m, pts["n_params"].to_numpy(float), ms, out / "model_size.png",
                             title=f"best-fit model size: {title}")
    res_png = plot_residuals(m, eps, lc, out / "residuals.png", in_fit=in_fit, holdout_fits=sel.holdout_fits,
                             holdout=sel.holdout, title="residuals in log space")
    table_pts = pts.drop(columns=["seed_errors"])
    table_pts.to_csv(out / "best_fit_points.csv", index=False)
    planning = plan(fits, sizes=[m.max() * 2, m.max() * 10], target_error=target_error)
    summary = _summary(fits, planning)
    summary.update(domain=fits.domain, unit=fits.unit)   # the report's title; a study sets the same
    from scal.surface import analyze_surface   # L(N, D) over every trial; {"error": ...} when they cannot carry one
    summary["surface"] = analyze_surface(tracker, parent_run_id, ms, out, n_boot=n_boot, trials=fits.trials)
    summary["backtest"] = study_backtest(fits, form=form, n_boot=n_boot)
    summary["decision"] = study_decision(fits, surface=summary["surface"], n_boot=n_boot)
    summary["artifacts_dir"] = str(out)
    summary["table"] = format_table(table_pts, fits.metric)
    report = write_report(out, summary, images={"Learning curve": lc_png.name, "Model size": ms_png.name,
                                                "Residuals": res_png.name})
    fits_doc = {k: v for k, v in summary.items() if k not in ("table", "artifacts_dir")}
    tracker.log_dict(fits_doc, "fits.json")
    for path in (lc_png, ms_png, res_png, out / "best_fit_points.csv", report):
        tracker.log_artifact(path, "analysis")
    _log_summary(tracker, fits, summary)
    tracker.set_note(story.study_note(summary))   # the study run's description in the UI, as of this analysis
    return summary


def study_backtest(fits: StudyFits, form: str = AUTO, n_boot: int = 200, level: float = DEFAULT_LEVEL) -> dict[str, Any]:
    """The backtests (`analysis.backtest`) of the study's fitted points, seeds and all."""
    pts = fits.points
    keep = pts["in_fit"].to_numpy(bool)
    seeds = [np.asarray(v, dtype=float) for v, k in zip(pts["seed_errors"], keep) if k]
    return backtest(pts["size"].to_numpy(float)[keep], pts["val_error"].to_numpy(float)[keep], form=form,
                    n_boot=n_boot, y_seeds=seeds, level=level)


def study_decision(fits: StudyFits, level: float = DEFAULT_LEVEL, surface: dict[str, Any] | None = None,
                   n_boot: int = 200) -> str:
    """The decision summary of a fitted study (with the surface's compute sentences when
    ``surface``, the record `scal.surface.analyze_surface` returned, is given)."""
    return decision.summarize(_facts(fits, surface, level, n_boot))


def _facts(fits: StudyFits, surface: dict[str, Any] | None, level: float, n_boot: int) -> decision.Facts:
    """The decision summary's numbers (`analysis.decision.facts`): the largest fitted subset now,
    the model-size curve at 10x its size, the surface's compute sentences for the error predicted
    there, and notes on the compute-limited subsets."""
    pts = fits.points
    fitted = pts[pts["in_fit"]]   # the largest fitted subset is "now": a compute-limited one is an upper bound
    last = fitted.iloc[-1]
    unit = f"{fits.unit or 'units'}"
    notes = []
    limited = pts[pts["compute_limited"] != ""]
    if len(limited):
        # Compute-limited points stay in the fit when fewer than 3 points would remain
        # (analysis.regions), so the note says which of them the fit used.
        used = limited["in_fit"].astype(bool)
        sizes = lambda rows: ", ".join(f"{int(v):,}" for v in rows["size"])   # noqa: E731
        if (~used).any():
            notes.append(f"{int((~used).sum())} subset(s) were compute-limited (m = {sizes(limited[~used])}) "
                         "and are not in the fit.")
        if used.any():
            notes.append(f"{int(used.sum())} compute-limited subset(s) (m = {sizes(limited[used])}) are in the fit, "
                         "because fewer than 3 points would remain without them: their errors are upper bounds.")
    f = decision.facts(fits.curve, fitted["size"].to_numpy(float), fitted["val_error"].to_numpy(float),
                       metric=fits.metric, unit=unit, level=level, region_now=str(last["region"]),
                       n_params_10x=power_at(fits.model_size, float(last["size"]) * 10, level=level),
                       notes=tuple(notes), n_boot=n_boot)
    target = f.at_10x.value
    compute = compute_sentence(surface, unit, level, target_loss=target if math.isfinite(target) else None,
                               target_reason="the error predicted at 10x the data")
    return dataclasses.replace(f, compute=compute)


def _summary(fits: StudyFits, planning: dict[str, Any]) -> dict[str, Any]:
    lc, ms, sel = fits.curve, fits.model_size, fits.selection
    pts = fits.points
    bg = lc.intervals.get("beta_g", (math.nan, math.nan))
    bp = ms.intervals["beta_p"]
    return {
        "subsets": [
            {"size": int(r["size"]), "val_error": float(r["val_error"]), "n_params": int(r["n_params"]),
             "n_seeds": int(r["n_seeds"]), "seed_errors": [float(v) for v in r["seed_errors"]],
             "region": r["region"], "in_fit": bool(r["in_fit"]), "lr": float(r["lr"]),
             "compute_limited": r["compute_limited"] or None,
             "trial_hash": r["trial_hash"],   # the seed that represents it (the registered model's)
             "wall_time_s": json_number(r["wall_time_s"]), "epochs": json_number(r["epochs"]),
             "size_knobs": {k.removeprefix(keys.P_SIZE_PREFIX): int(float(r[k])) for k in pts.columns
                            if k.startswith(keys.P_SIZE_PREFIX)}}
            for _, r in pts.iterrows()
        ],
        "metric": fits.metric, "best_guess_error": json_number(fits.best_guess),
        "form": sel.form, "form_requested": sel.requested, "holdout": sel.holdout,
        "holdout_rmse_log": sel.holdout_rmse_log,
        "holdout_rmse_log_by_form": dict(sel.scores), "skipped_forms": dict(sel.skipped),
        "learning_curve": lc.to_dict(),
        "alpha": lc.params.get("alpha"), "beta_g": lc.params.get("beta_g"), "beta_g_interval": list(bg),
        "gamma": lc.floor(), "gamma_interval": list(lc.floor_interval()),
        "fit_rmse_log": lc.rmse_log,
        "regions": fits.regions.to_dict(),
        "model_size": ms.to_dict(), "sigma": ms.params["sigma"], "beta_p": ms.params["beta_p"],
        "beta_p_interval": list(bp), "sublinear": sublinear(ms),
        "wall_time": fits.wall_time.to_dict() if fits.wall_time else None,
        "units_processed": fits.units_seen.to_dict() if fits.units_seen else None,
        "planning": planning,
    }


def _log_summary(tracker: StudyTracker, fits: StudyFits, s: dict[str, Any]) -> None:
    """Numbers as metrics (they may change on re-analysis); the fit's choices as params where
    unset (MLflow params are immutable) and always as tags, so the UI can compare studies."""
    bg_lo, bg_hi = s["beta_g_interval"]
    bp_lo, bp_hi = s["beta_p_interval"]
    metrics = {keys.M_BETA_G: s["beta_g"], "beta_g_low": bg_lo, "beta_g_high": bg_hi,
               keys.M_GAMMA: s["gamma"], keys.M_SIGMA: s["sigma"], keys.M_BETA_P: s["beta_p"],
               "beta_p_low": bp_lo, "beta_p_high": bp_hi, "fit_rmse_log": s["fit_rmse_log"],
               "sublinear": float(s["sublinear"])}
    if s["alpha"] is not None:
        metrics[keys.M_ALPHA] = s["alpha"]
    if s["holdout_rmse_log"] is not None:
        metrics["holdout_rmse_log"] = s["holdout_rmse_log"]
    for name, v in s["holdout_rmse_log_by_form"].items():
        metrics[f"holdout_rmse_log.{name}"] = v
    reg = s["regions"]
    for k in ("small_data_until", "power_law_from", "irreducible_from"):
        if reg[k] is not None:
            metrics[f"region.{k}"] = reg[k]
    metrics.update(backtest_metrics(s["backtest"]))
    metrics = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
    existing = tracker.client.get_run(tracker.parent_run_id).data.params
    params = {k: v for k, v in {"fit.form": s["form"], "fit.form_requested": s["form_requested"],
                                "fit.holdout": s["holdout"]}.items() if k not in existing}
    tracker.log_summary(metrics, params)
    for k, v in {"scal.fit.form": s["form"], "scal.fit.holdout": s["holdout"]}.items():
        tracker.client.set_tag(tracker.parent_run_id, k, str(v))


def format_table(points, metric: str) -> str:
    """The summary table printed at the end of a study."""
    knobs = [c for c in points.columns if c.startswith(keys.P_SIZE_PREFIX)]
    cols = ["size", "val_error", "val_error_min", "val_error_max", "n_seeds", "n_params", *knobs, "lr", "region"]
    shown = points[cols].rename(columns={"size": "m", "val_error": f"{metric} (median)", "val_error_min": "min",
                                         "val_error_max": "max", **{k: k.removeprefix(keys.P_SIZE_PREFIX) for k in knobs}})
    return shown.to_string(index=False, float_format=lambda v: f"{v:.4g}")

"""Curves from a table (a CSV exported from any tracker): read, fit each group, plan.

The record `curve_record` builds is the per-group object of ``scal fit --json`` (schema in the
README): form, params, intervals, beta_g with its interval, floor, held-out errors, predictions
with their ``level`` predictive intervals and the data needed for a target error.

`fit_table` fits the groups in ``jobs`` worker processes (default: one per usable core). Only
the fitting runs there; records, regions and the one extrapolation warning per curve are made
back in the calling process, in group order, so the output and the log do not depend on jobs.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from analysis import decision
from analysis.backtest import backtest
from analysis.fit import DEFAULT_LEVEL, FitError, check_level
from analysis.jsonsafe import json_number
from analysis.plan import data_for_error, predict_errors
from analysis.regions import classify, fit_mask
from analysis.select import AUTO, Selection, fit_curve


def read_table(path: str | Path, columns: Sequence[str | None]) -> pd.DataFrame:
    """The CSV at ``path``, with one-line errors for a missing or unreadable file and for any of
    ``columns`` (None entries ignored) it lacks."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such CSV file: {path}")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FitError(f"cannot read {path} as CSV: {str(exc).splitlines()[0]}") from None
    missing = [c for c in dict.fromkeys(columns) if c is not None and c not in df.columns]
    if missing:
        raise FitError(f"{path} has no column(s) {', '.join(map(repr, missing))}; it has {', '.join(map(repr, df.columns))}")
    return df


def read_curves(path: str | Path, x: str, y: str, group: str | None = None) -> dict[str | None, tuple[np.ndarray, np.ndarray]]:
    """{group value (None without --group): (x, y)} from a CSV, with one-line errors for a missing
    or unreadable file, missing columns and non-numeric values."""
    df = read_table(path, (x, y, group))
    for c in (x, y):
        vals = pd.to_numeric(df[c], errors="coerce")
        bad = vals.isna() & df[c].notna()
        if bad.any():
            raise FitError(f"column {c!r} has non-numeric values, e.g. {df[c][bad].iloc[0]!r} on row {int(bad.idxmax()) + 2}")
        df[c] = vals
    if group is None:
        return {None: (df[x].to_numpy(float), df[y].to_numpy(float))}
    return {str(k): (g[x].to_numpy(float), g[y].to_numpy(float)) for k, g in df.groupby(group, sort=True)}


def default_jobs() -> int:
    """The cores this process may use (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:   # macOS, Windows
        return max(1, os.cpu_count() or 1)


def curve_record(sel: Selection, predict_at: Sequence[float] = (), target_error: float | None = None,
                 group: str | None = None, regions: dict | None = None, level: float = DEFAULT_LEVEL) -> dict[str, Any]:
    """The JSON record of one fitted curve (see the README's ``scal fit --json`` schema);
    ``predictions[].low/high`` are the ``level`` predictive interval for a new measurement."""
    fit = sel.fit
    exp_name = fit.exponent
    rec: dict[str, Any] = {
        "group": group, "n_points": fit.n_points, "form": sel.form, "form_requested": sel.requested,
        "params": {k: json_number(v) for k, v in fit.params.items()},
        "intervals": {k: [json_number(a), json_number(b)] for k, (a, b) in fit.intervals.items()},
        "beta_g": json_number(fit.params[exp_name]),
        "beta_g_interval": [json_number(v) for v in fit.intervals[exp_name]],
        "floor": json_number(fit.floor()), "floor_interval": [json_number(v) for v in fit.floor_interval()],
        "rmse_log": json_number(fit.rmse_log), "n_boot": fit.n_boot,
        "x_range": list(fit.x_range), "level": float(level),
    }
    if sel.holdout:
        rec["holdout"] = sel.holdout
        rec["holdout_rmse_log"] = json_number(sel.holdout_rmse_log)
        rec["holdout_rmse_log_by_form"] = {k: json_number(v) for k, v in sel.scores.items()}
        rec["skipped_forms"] = dict(sel.skipped)
    rec["predictions"] = []
    for xv, e in zip(predict_at, predict_errors(fit, predict_at, level, name=group)):
        rec["predictions"].append({"x": float(xv), "y": json_number(e.value), "low": json_number(e.low),
                                   "high": json_number(e.high)})
    if target_error is not None:
        d = data_for_error(fit, target_error, level)
        rec["data_for_target"] = {"target_error": target_error, "x": d.to_dict()["m"], "low": d.to_dict()["low"],
                                  "high": d.to_dict()["high"], "reachable": d.reachable, "floor": json_number(d.floor),
                                  "note": d.note}
    if regions is not None:
        rec["regions"] = regions
    return rec


def fit_table(path: str | Path, x: str, y: str, group: str | None = None, form: str = AUTO,
              holdout: int | None = None, predict_at: Sequence[float] = (), target_error: float | None = None,
              best_guess: float | None = None, n_boot: int = 200, seed: int = 0, level: float = DEFAULT_LEVEL,
              jobs: int | None = None, compute_limited: str | None = None,
              with_backtest: bool = False) -> list[dict[str, Any]]:
    """Fit every group of the CSV; a group that cannot be fitted fails the whole call with its name.
    ``jobs`` worker processes fit the groups (None: `default_jobs`; 1: no pool).

    ``compute_limited`` names a column of flags (1/0, true/false) marking compute-limited points:
    they are labelled and left out of the fit like small-data ones. ``with_backtest`` adds each
    curve's backtests (`analysis.backtest`). Every record gets its decision summary
    (`analysis.decision`; a CSV has no model sizes or compute, so it says less than a study's)."""
    check_level(level)
    if jobs is not None and jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    curves = read_curves(path, x, y, group)
    flags = read_flags(path, compute_limited, group) if compute_limited else {k: None for k in curves}
    tasks = [(xs, ys, best_guess, form, holdout, n_boot, seed, flags[k], with_backtest, level)
             for k, (xs, ys) in curves.items()]
    jobs = min(jobs or default_jobs(), len(tasks))
    out = []
    pool = ProcessPoolExecutor(jobs) if jobs > 1 else None
    try:
        pending = [pool.submit(_fit_group, *t) for t in tasks] if pool else None
        for i, (name, (xs, ys)) in enumerate(curves.items()):
            try:
                sel, bt = pending[i].result() if pool else _fit_group(*tasks[i])
                order = np.argsort(xs)
                limited = flags[name][order] if flags[name] is not None else None
                regions = None
                if best_guess is not None or limited is not None:
                    regions = classify(xs[order], ys[order], sel.fit, best_guess, compute_limited=limited).to_dict()
                    regions["x"] = xs[order].tolist()
                rec = curve_record(sel, predict_at, target_error, group=name, regions=regions, level=level)
                keep = fit_mask(ys[order], best_guess, exclude=limited)   # the points _fit_group fitted
                rec["decision"] = decision.summarize(_facts(sel, xs[order], ys[order], keep, regions, x, y, level, n_boot,
                                                            seed))
                if bt is not None:
                    rec["backtest"] = bt
                out.append(rec)
            except FitError as exc:
                raise FitError(f"group {name!r}: {exc}" if name is not None else str(exc)) from None
    finally:
        if pool:
            pool.shutdown(wait=True, cancel_futures=True)
    return out


def _fit_group(xs: np.ndarray, ys: np.ndarray, best_guess: float | None, form: str, holdout: int | None,
               n_boot: int, seed: int, limited: np.ndarray | None = None, with_backtest: bool = False,
               level: float = DEFAULT_LEVEL) -> tuple[Selection, dict[str, Any] | None]:
    """One group's fit (run in a worker process): the small-data and compute-limited points left
    out, then `fit_curve`; and the backtests of the same points when asked."""
    keep = fit_mask(ys, best_guess, exclude=limited)   # all points without a best guess or flags
    sel = fit_curve(xs[keep], ys[keep], form=form, holdout=holdout, n_boot=n_boot, seed=seed)
    bt = backtest(xs[keep], ys[keep], form=form, n_boot=n_boot, seed=seed, level=level) if with_backtest else None
    return sel, bt


def read_flags(path: str | Path, col: str, group: str | None = None) -> dict[str | None, np.ndarray]:
    """{group: bool array} of a flag column, in `read_curves`' order: 1/0, true/false, yes/no."""
    df = read_table(path, (col, group))
    words = {"1": True, "0": False, "true": True, "false": False, "yes": True, "no": False,
             "1.0": True, "0.0": False}
    text = df[col].astype(str).str.strip().str.lower()
    bad = ~text.isin(list(words))
    if bad.any():
        raise FitError(f"column {col!r} must hold 1/0, true/false or yes/no; row {int(bad.idxmax()) + 2} has "
                       f"{str(df[col][bad].iloc[0])!r}")
    df[col] = text.map(words).astype(bool)
    if group is None:
        return {None: df[col].to_numpy(bool)}
    return {str(k): g[col].to_numpy(bool) for k, g in df.groupby(group, sort=True)}


def _facts(sel: Selection, xs: np.ndarray, ys: np.ndarray, keep: np.ndarray, regions: dict | None, x_name: str,
           y_name: str, level: float, n_boot: int, seed: int) -> decision.Facts:
    """A CSV curve's decision summary (`analysis.decision.facts` over its fitted points); larger
    points left out of the fit (compute-limited) are named in a note."""
    i = int(np.flatnonzero(keep)[-1])
    region = regions["labels"][i] if regions else None
    notes = tuple(f"x = {decision.fmt(x)} ({regions['labels'][j] if regions else 'not fitted'}) is not in the fit: "
                  f"its {decision.fmt(y)} is not a point of the curve." for j, (x, y) in enumerate(zip(xs, ys)) if j > i)
    return decision.facts(sel.fit, xs[keep], ys[keep], metric=y_name, unit=x_name, level=level, region_now=region,
                          notes=notes, what="error", n_boot=n_boot, seed=seed)

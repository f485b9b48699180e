"""Curves from a table (a CSV exported from any tracker): read, fit each group, plan.

The record `curve_record` builds is the per-group object of ``scal fit --json`` (schema in the
README): form, params, intervals, beta_g with its interval, floor, held-out errors, predictions
and the data needed for a target error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from analysis.fit import FitError, json_float
from analysis.plan import data_for_error, predict_error
from analysis.regions import classify, fit_mask
from analysis.select import AUTO, Selection, fit_curve


def read_curves(path: str | Path, x: str, y: str, group: str | None = None) -> dict[str | None, tuple[np.ndarray, np.ndarray]]:
    """{group value (None without --group): (x, y)} from a CSV, with one-line errors for a missing
    or unreadable file, missing columns and non-numeric values."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such CSV file: {path}")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise FitError(f"cannot read {path} as CSV: {str(exc).splitlines()[0]}") from None
    missing = [c for c in (x, y, group) if c is not None and c not in df.columns]
    if missing:
        raise FitError(f"{path} has no column(s) {', '.join(map(repr, missing))}; it has {', '.join(map(repr, df.columns))}")
    for c in (x, y):
        vals = pd.to_numeric(df[c], errors="coerce")
        bad = vals.isna() & df[c].notna()
        if bad.any():
            raise FitError(f"column {c!r} has non-numeric values, e.g. {df[c][bad].iloc[0]!r} on row {int(bad.idxmax()) + 2}")
        df[c] = vals
    if group is None:
        return {None: (df[x].to_numpy(float), df[y].to_numpy(float))}
    return {str(k): (g[x].to_numpy(float), g[y].to_numpy(float)) for k, g in df.groupby(group, sort=True)}


def curve_record(sel: Selection, predict_at: Sequence[float] = (), target_error: float | None = None,
                 group: str | None = None, regions: dict | None = None) -> dict[str, Any]:
    """The JSON record of one fitted curve (see the README's ``scal fit --json`` schema)."""
    fit = sel.fit
    exp_name = fit.exponent
    rec: dict[str, Any] = {
        "group": group, "n_points": fit.n_points, "form": sel.form, "form_requested": sel.requested,
        "params": {k: json_float(v) for k, v in fit.params.items()},
        "intervals": {k: [json_float(a), json_float(b)] for k, (a, b) in fit.intervals.items()},
        "beta_g": json_float(fit.params[exp_name]),
        "beta_g_interval": [json_float(v) for v in fit.intervals[exp_name]],
        "floor": json_float(fit.floor()), "rmse_log": json_float(fit.rmse_log), "n_boot": fit.n_boot,
        "x_range": list(fit.x_range),
    }
    if sel.holdout:
        rec["holdout"] = sel.holdout
        rec["holdout_rmse_log"] = json_float(sel.holdout_rmse_log) if sel.holdout_rmse_log is not None else None
        rec["holdout_rmse_log_by_form"] = {k: json_float(v) for k, v in sel.scores.items()}
        rec["skipped_forms"] = dict(sel.skipped)
    rec["predictions"] = []
    for xv in predict_at:
        e = predict_error(fit, xv)
        rec["predictions"].append({"x": float(xv), "y": json_float(e.value), "low": json_float(e.low),
                                   "high": json_float(e.high)})
    if target_error is not None:
        d = data_for_error(fit, target_error)
        rec["data_for_target"] = {"target_error": target_error, "x": d.to_dict()["m"], "low": d.to_dict()["low"],
                                  "high": d.to_dict()["high"], "reachable": d.reachable, "floor": json_float(d.floor),
                                  "note": d.note}
    if regions is not None:
        rec["regions"] = regions
    return rec


def fit_table(path: str | Path, x: str, y: str, group: str | None = None, form: str = AUTO,
              holdout: int | None = None, predict_at: Sequence[float] = (), target_error: float | None = None,
              best_guess: float | None = None, n_boot: int = 200, seed: int = 0) -> list[dict[str, Any]]:
    """Fit every group of the CSV; a group that cannot be fitted fails the whole call with its name."""
    out = []
    for name, (xs, ys) in read_curves(path, x, y, group).items():
        try:
            keep = fit_mask(ys, best_guess)   # all points without a best guess
            sel = fit_curve(xs[keep], ys[keep], form=form, holdout=holdout, n_boot=n_boot, seed=seed)
            regions = None
            if best_guess is not None:
                order = np.argsort(xs)
                regions = classify(xs[order], ys[order], sel.fit, best_guess).to_dict()
                regions["x"] = xs[order].tolist()
            out.append(curve_record(sel, predict_at, target_error, group=name, regions=regions))
        except FitError as exc:
            raise FitError(f"group {name!r}: {exc}" if name is not None else str(exc)) from None
    return out

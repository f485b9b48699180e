"""The loss surface L(N, D) of a study or of a CSV: the one code path behind ``scal surface`` and the
surface part of a study's analysis (`analyze_surface`, called from `scal.analyze.analyze_study`).

The fit itself, its plot and the comparison with the model-size curve are pure numerics in
`analysis.surface`, `analysis.surface_plot` and `analysis.surface_compare`; this module chooses the
points, the FLOPs factor k and the budgets, and logs the result to MLflow.

A study's points are its trials, read back from MLflow: every trial whose value counts under the
best-fit rule (`search.bestfit.COUNTED_STATUSES`, finite ``min_val_error``) gives one row
(N = its parameter count, D = its subset size in the domain's unit, L = its minimum validation
error); a reference run (tag ``scal.reused_from``) repeats a trial logged elsewhere in the study
and is left out, so no trial counts twice. k is the domain's ``train_flops(1, 1)``.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from analysis.fit import CurveFit, FitError
from analysis.forms import fit_model_size
from analysis.surface import FLOPS_PER_PARAM_UNIT, SurfaceFit, fit_surface, validate_points
from analysis.surface_compare import ModelSizeComparison, compare_model_size
from analysis.table import read_table
from scal import keys
from search.bestfit import COUNTED_STATUSES

if TYPE_CHECKING:   # mlflow is imported only when a study is read (a CSV's surface starts faster)
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

PLOT_NAME = "loss_surface.png"
# Budgets reported when none are asked for: the smallest and the largest k N D among the points,
# and this many times the largest (the first step of extrapolation anyone would plan).
DEFAULT_BUDGET_STRETCH = 10.0


@dataclass(frozen=True)
class Surface:
    """A fitted surface with the rows it was fitted to and where they came from."""

    fit: SurfaceFit
    points: pd.DataFrame                 # columns n_params, data, loss
    source: dict[str, Any]               # {"csv": path} or {"tracking_uri", "parent_run_id", "domain", "unit"}
    comparison: ModelSizeComparison | None = None
    comparison_note: str | None = None   # why there is no comparison

    def record(self) -> dict[str, Any]:
        """``scal surface --json``: the fit's `to_dict` (README schema), the source, the comparison."""
        rec = {**self.source, **self.fit.to_dict()}
        if self.comparison is not None:
            rec["model_size_comparison"] = self.comparison.to_dict()
        elif self.comparison_note:
            rec["model_size_comparison"] = {"error": self.comparison_note}
        return rec

    def plot(self, out_dir: str | Path, metric_label: str = "loss") -> Path:
        from analysis.surface_plot import plot_surface   # matplotlib: only when a plot is asked for

        unit = self.source.get("unit")
        return plot_surface(self.points["n_params"], self.points["data"], self.points["loss"], self.fit,
                            Path(out_dir) / PLOT_NAME, metric_label=metric_label,
                            data_label=f"data D ({unit})" if unit else "data D")


# ---------------------------------------------------------------------------------------------
# Points
# ---------------------------------------------------------------------------------------------


def trial_points(trials: pd.DataFrame) -> pd.DataFrame:
    """One row (n_params, data, loss) per counting trial of a study (see the module docstring)."""
    cols = {"n_params": f"params.{keys.P_N_PARAMS}", "data": f"params.{keys.P_SUBSET_SIZE}",
            "loss": f"metrics.{keys.M_MIN_VAL_ERROR}"}
    status, reused = f"tags.{keys.STATUS}", f"tags.{keys.REUSED_FROM}"
    if trials.empty or any(c not in trials for c in (*cols.values(), status)):
        return pd.DataFrame(columns=list(cols))
    keep = trials[status].isin(COUNTED_STATUSES)
    if reused in trials:
        keep &= trials[reused].isna() | (trials[reused].astype(str) == "")
    rows = pd.DataFrame({k: pd.to_numeric(trials.loc[keep, c], errors="coerce") for k, c in cols.items()})
    finite = np.isfinite(rows.to_numpy(float)).all(axis=1)
    return rows[finite].reset_index(drop=True)


def csv_points(path: str | Path, n_col: str, d_col: str, y_col: str) -> pd.DataFrame:
    """(n_params, data, loss) from three columns of a CSV, with one-line errors for a missing file,
    missing columns, non-numeric values and empty cells."""
    df = read_table(path, (n_col, d_col, y_col))
    out = {}
    for name, c in (("n_params", n_col), ("data", d_col), ("loss", y_col)):
        vals = pd.to_numeric(df[c], errors="coerce")
        bad = vals.isna()
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2   # header is line 1
            raise FitError(f"column {c!r} has a non-numeric or empty value {df[c][bad].iloc[0]!r} on line {line}")
        out[name] = vals.astype(float)
    return pd.DataFrame(out)


def default_budgets(points: pd.DataFrame, k: float) -> list[float]:
    """The smallest and largest k N D of the points and DEFAULT_BUDGET_STRETCH times the largest."""
    c = k * points["n_params"].to_numpy(float) * points["data"].to_numpy(float)
    c = c[np.isfinite(c) & (c > 0)]
    if c.size == 0:
        return []
    return sorted({float(c.min()), float(c.max()), float(c.max() * DEFAULT_BUDGET_STRETCH)})


def study_compute(points: pd.DataFrame, k: float) -> float:
    """The study's compute in the surface's units: sum over its trials of k N D, each trial counted
    as one pass over its subset, as the surface's C = k N D counts it (trials take many passes,
    so the FLOPs actually spent are larger by their epochs)."""
    return float(k * np.sum(points["n_params"].to_numpy(float) * points["data"].to_numpy(float)))


def flops_per_param_unit(domain_name: str | None) -> float:
    """k of the domain: its ``train_flops(n_params=1, units=1)`` (every domain's estimate is k N D)."""
    if not domain_name:
        raise ValueError("the study run has no param study.domain, so its FLOPs per parameter and unit are unknown")
    import domains

    return float(domains.get(domain_name).train_flops(1.0, 1.0))


# ---------------------------------------------------------------------------------------------
# Fits
# ---------------------------------------------------------------------------------------------


def csv_surface(path: str | Path, n_col: str, d_col: str, y_col: str, computes: Sequence[float] = (),
                k: float = FLOPS_PER_PARAM_UNIT, n_boot: int = 200, seed: int = 0) -> Surface:
    """The surface of a CSV's rows; budgets default to `default_budgets`."""
    points = csv_points(path, n_col, d_col, y_col)
    budgets = list(computes) or default_budgets(points, k)
    fit = fit_surface(points["n_params"], points["data"], points["loss"], budgets, k, n_boot=n_boot, seed=seed)
    return Surface(fit, points, {"csv": str(path), "columns": {"n": n_col, "d": d_col, "y": y_col}})


def study_surface(client: MlflowClient, run_id: str, computes: Sequence[float] = (), n_boot: int = 200, seed: int = 0,
                  model_size: CurveFit | None = None, trials: pd.DataFrame | None = None) -> Surface:
    """The surface of study ``run_id``'s trials, and its frontier against the model-size curve:
    ``model_size`` when the caller has fitted it (the study's analysis), else fitted here from the
    best-fit points the same way `scal.analyze.fit_study` does. ``trials``: the study's runs when
    the caller has read them already (`scal.reader.read_trials`). ``client``: the `MlflowClient` of
    the study's store."""
    from scal.reader import best_fit_points, read_trials, study_params   # mlflow: not for a CSV's surface

    params = study_params(client, run_id)
    trials = read_trials(client, run_id) if trials is None else trials
    points = trial_points(trials)
    if len(points) == 0:
        raise FitError(f"study {run_id} has no trials with a finite {keys.M_MIN_VAL_ERROR} to fit a surface to")
    validate_points(points["n_params"], points["data"], points["loss"])   # before the domains' imports (torch)
    k = flops_per_param_unit(params.get("study.domain"))
    spent = study_compute(points, k)
    # The decision summary asks for the optimum at 10x the study's own compute.
    budgets = list(computes) or sorted(set(default_budgets(points, k)) | {DEFAULT_BUDGET_STRETCH * spent})
    fit = fit_surface(points["n_params"], points["data"], points["loss"], budgets, k, n_boot=n_boot, seed=seed)
    source = {"tracking_uri": client.tracking_uri, "parent_run_id": run_id, "domain": params.get("study.domain"),
              "unit": params.get("study.unit"), "metric": params.get("study.metric"), "study_compute": spent}
    note = None
    if model_size is None:
        best = best_fit_points(trials)
        if len(best) >= 3:
            model_size = fit_model_size(best["size"].to_numpy(float), best["n_params"].to_numpy(float),
                                        n_boot=n_boot, seed=seed)
        else:
            note = f"the model-size curve needs best-fit models at 3 subsets or more, the study has {len(best)}"
    comparison = compare_model_size(fit, model_size, points["data"].unique()) if model_size is not None else None
    return Surface(fit, points, source, comparison, note)


def analyze_surface(tracker, parent_run_id: str, model_size: CurveFit | None, out_dir: str | Path | None = None,
                    n_boot: int = 200, seed: int = 0, trials: pd.DataFrame | None = None) -> dict[str, Any]:
    """The study's surface for its summary: fit, plot, log the plot (``analysis/loss_surface.png``)
    and the record (``analysis/surface.json``) to the parent run, and return the record; or
    ``{"error": reason}`` when the trials cannot carry a surface (too few, too alike), so a study
    never fails for want of one."""
    try:
        surface = study_surface(tracker.client, parent_run_id, n_boot=n_boot, seed=seed, model_size=model_size,
                                trials=trials)
    except ValueError as exc:   # FitError among them: too few points, one N or one D
        log.warning("no loss surface for study %s: %s", parent_run_id, exc)
        return {"error": str(exc).splitlines()[0]}
    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="scal-surface-"))
    png = surface.plot(out, metric_label=surface.source.get("metric") or "loss")
    tracker.log_artifact(png, "analysis")
    rec = {**surface.record(), "plot": f"analysis/{png.name}"}
    tracker.log_dict(rec, "analysis/surface.json")
    return rec


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------


def describe(rec: dict[str, Any]) -> str:
    """A few readable lines of a `Surface.record` (what ``scal surface`` prints without --json)."""
    p, iv = rec["params"], rec["intervals"]
    lines = [f"L(N, D) = E + A / N^alpha + B / D^beta   fitted on {rec['n_points']} points, "
             f"RMSE(log) {_f(rec['rmse_log'])}, k = {_f(rec['flops_per_param_unit'])} FLOPs per parameter per unit"]
    lines.append("  " + "   ".join(f"{k} {_f(p[k])} {_iv(iv[k])}" for k in ("E", "A", "B", "alpha", "beta")))
    lines.append(f"compute-optimal: N_opt ~ C^a, a = {_f(rec['a'])} {_iv(rec['a_interval'])};  "
                 f"D_opt ~ C^b, b = {_f(rec['b'])} {_iv(rec['b_interval'])}")
    for o in rec["optimal"]:
        lines.append(f"  C = {_f(o['compute'])} FLOPs: N_opt {_f(o['n_params'])} {_iv(o['n_params_interval'])}, "
                     f"D_opt {_f(o['data'])} {_iv(o['data_interval'])}, loss {_f(o['loss'])} {_iv(o['loss_interval'])}")
    cmp = rec.get("model_size_comparison")
    if cmp:
        lines.append(cmp.get("sentence") or f"no comparison with the model-size curve: {cmp.get('error')}")
    if rec.get("plot"):
        lines.append(f"plot: {rec['plot']}")
    return "\n".join(lines)


def _f(v) -> str:
    """A number of a record: None is "-", an infinite one ("inf", `analysis.jsonsafe`) as it is."""
    return "-" if v is None else (v if isinstance(v, str) else f"{v:.4g}")


def _iv(iv) -> str:
    return "[-]" if iv is None or iv[0] is None or iv[1] is None else f"[{_f(iv[0])}, {_f(iv[1])}]"


def summary_lines(rec: dict[str, Any] | None) -> str:
    """The surface's lines in ``scal study``'s closing summary (empty without a surface)."""
    if not rec:
        return ""
    if "error" in rec:
        return f"loss surface    not fitted: {rec['error']}\n"
    p, iv = rec["params"], rec["intervals"]
    text = (f"loss surface    L(N, D): alpha {_f(p['alpha'])} {_iv(iv['alpha'])}, beta {_f(p['beta'])} {_iv(iv['beta'])}; "
            f"N_opt ~ C^{_f(rec['a'])} {_iv(rec['a_interval'])}, D_opt ~ C^{_f(rec['b'])} {_iv(rec['b_interval'])}\n")
    cmp = rec.get("model_size_comparison") or {}
    if cmp.get("sentence"):
        text += f"                {cmp['sentence']}\n"
    return text

"""The loss surface L(N, D) of a study or of a CSV: the one code path behind ``scal surface`` and the
surface part of a study's analysis (`analyze_surface`, called from `scal.analyze.analyze_study`).

The fit itself, its plot, its predictions and backtest, the comparison with the model-size curve
and the compute sentence are pure numerics in `analysis.surface`, `analysis.surface_plot`,
`analysis.surface_backtest`, `analysis.surface_compare` and `analysis.surface_cost`; this module
chooses the points, the FLOPs factor k and the budgets, and logs the result to MLflow.

**A study's points are its tuned cells** (`tuned_cells`), not its trials. A cell is one subset
size and one model size (parameter count); its configurations differ in learning rate (and in
knobs that keep N). Fitting every trial (every learning rate and seed of the grid, and
ASHA-stopped upper bounds) made the Huber fit, median-like at delta 1e-3, describe the *typical*
trial: on a study with a learning-rate grid its loss came out 9-16% high. So each cell gives one
point, its best configuration under the one best-fit rule (`search.bestfit`), with L = that
configuration's score (median over its counting seeds):

- only grid trials are scored; a reference run (tag ``scal.reused_from``) is the grid's trial
  trained elsewhere (an overfitting probe reused as the grid's centre) and counts as that grid
  trial, once. Overfitting probes (role ``overfit_probe``) never add a point of their own: they
  enter only where the grid reused one, i.e. where they are that grid configuration;
- racing's full-seed rule is the subset's, as in `bestfit.choose`: a configuration raced out
  after its first seed does not compete in its cell (`bestfit.contenders` over the subset);
- a stopped (ASHA) seed counts in its configuration's median as the rule says, as an upper
  bound. A cell whose best configuration has no full (``ok``) seed, so whose value is only an
  upper bound, is left out, unless that configuration is the subset's best fit: then it is the
  learning curve's point too ("unless it is the best"), and the surface keeps it as the curve does.

**A CSV's rows** that share (N, D) are reduced to the cell's best row (`best_rows`: each row one
configuration of one seed under the same rule, so the lowest loss); ``all_rows`` keeps every row.

k is the domain's ``train_flops(1, 1)``. A study's record also carries what the decision
summary's compute sentence needs (`analysis.surface_cost.compute_record`): the FLOPs each tuned
cell's runs trained (the logged ``train_flops``, `scal.reader.trial_flops`) and the study's total.
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from analysis.fit import DEFAULT_LEVEL, CurveFit, FitError
from analysis.forms import fit_model_size
from analysis.jsonsafe import json_number
from analysis.surface import FLOPS_PER_PARAM_UNIT, SurfaceFit, fit_surface, validate_points
from analysis.surface_backtest import backtest_lines, backtest_surface, check_backtest, predictions
from analysis.surface_compare import ModelSizeComparison, compare_model_size
from analysis.surface_cost import compute_record, compute_sentence
from analysis.table import read_table
from scal import keys
from search import bestfit
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
    """A fitted surface with the points it was fitted to, where they came from and how they were
    chosen (``points_from``: rows read, points kept, what was reduced or left out)."""

    fit: SurfaceFit
    points: pd.DataFrame                 # columns n_params, data, loss (a study's: also subset_size, lr, n_seeds, train_flops)
    source: dict[str, Any]               # {"csv": path} or {"tracking_uri", "parent_run_id", "domain", "unit"}
    comparison: ModelSizeComparison | None = None
    comparison_note: str | None = None   # why there is no comparison
    points_from: dict[str, Any] | None = None
    n_boot: int = 200                    # as asked for: a backtest refits with the same
    seed: int = 0
    compute: dict[str, Any] | None = None   # a study's `analysis.surface_cost.compute_record`

    def record(self) -> dict[str, Any]:
        """``scal surface --json``: the fit's `to_dict` (docs/cli.md schema), the source, how the
        points were chosen, the comparison, and a study's compute record."""
        rec = {**self.source, **self.fit.to_dict()}
        # how far each budget lies past the points: an optimum at 1e300 FLOPs is arithmetic, not a measurement
        c = points_compute(self.points, self.fit.flops_per_param_unit)
        largest = float(c.max()) if c.size else math.nan
        rec["points_max_compute"] = json_number(largest)
        for o in rec["optimal"]:
            o["times_points_max_compute"] = json_number(o["compute"] / largest)
        if self.points_from is not None:
            rec["points_from"] = self.points_from
        if self.comparison is not None:
            rec["model_size_comparison"] = self.comparison.to_dict()
        elif self.comparison_note:
            rec["model_size_comparison"] = {"error": self.comparison_note}
        if self.compute is not None:
            rec["compute"] = self.compute
        return rec

    def predict(self, pairs: Sequence[tuple[float, float]], level: float = DEFAULT_LEVEL) -> list[dict]:
        """``[{n, d, loss, low, high}]`` at each (N, D), with ``level`` predictive intervals."""
        return predictions(self.fit, pairs, level)

    def backtest(self, level: float = DEFAULT_LEVEL) -> dict[str, Any]:
        """Refit without the largest-compute eighth of the points and predict it (`analysis.surface_backtest`)."""
        p = self.points
        return backtest_surface(p["n_params"], p["data"], p["loss"], self.fit.flops_per_param_unit, self.n_boot,
                                self.seed, level)

    def plot(self, out_dir: str | Path, metric_label: str = "loss") -> Path:
        from analysis.surface_plot import plot_surface   # matplotlib: only when a plot is asked for

        unit = self.source.get("unit")
        kind = (self.points_from or {}).get("kind", "points")
        return plot_surface(self.points["n_params"], self.points["data"], self.points["loss"], self.fit,
                            Path(out_dir) / PLOT_NAME, metric_label=metric_label,
                            data_label=f"data D ({unit})" if unit else "data D", points_label=kind)


# ---------------------------------------------------------------------------------------------
# Points
# ---------------------------------------------------------------------------------------------


def trial_points(trials: pd.DataFrame) -> pd.DataFrame:
    """One row (n_params, data, loss) per counting trial of a study (status ok or stopped, a finite
    value; a reference run repeats its trial and is left out): what `study_compute` sums. The
    surface's own points are the tuned cells (`tuned_cells`)."""
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


def tuned_cells(trials: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One point per tuned cell of a study (the module docstring's rule): columns n_params, data,
    loss, subset_size, lr, n_seeds, n_configs (configurations that competed in the cell) and
    train_flops (median over the best configuration's full seeds; nan without one); and the
    counts behind them (``points_from``)."""
    from scal.reader import trial_flops, trial_records   # the rule's records, as the learning curve reads them

    cols = ["n_params", "data", "loss", "subset_size", "lr", "n_seeds", "n_configs", "train_flops"]
    role, subset = f"tags.{keys.ROLE}", f"params.{keys.P_SUBSET_SIZE}"
    counts = {"kind": "tuned cells", "grid_trials": 0, "points": 0, "raced_out_configurations": 0,
              "upper_bound_cells_left_out": 0}
    if trials.empty or role not in trials or subset not in trials:
        return pd.DataFrame(columns=cols), counts
    grid = trials[trials[role] == keys.ROLE_GRID]
    counts["grid_trials"] = int(len(grid))
    if grid.empty:
        return pd.DataFrame(columns=cols), counts
    flops, _ = trial_flops(grid)
    size_cols = sorted(c for c in grid.columns if c.startswith(f"params.{keys.P_SIZE_PREFIX}"))
    rows = []
    for size, sub in grid.groupby(subset):
        records = trial_records(sub, size_cols)
        summaries = bestfit.summarize(records)
        compete = bestfit.contenders(summaries)
        counts["raced_out_configurations"] += len(summaries) - len(compete)
        subset_best = bestfit.choose(records)
        cells: dict[int, list[bestfit.ConfigSummary]] = {}
        for summary in compete:
            cells.setdefault(summary.n_params, []).append(summary)
        for n_params, configs in sorted(cells.items()):
            best = bestfit.choose([r for c in configs for r in c.records]) if n_params > 0 else None
            if best is None:   # no finite score (every seed failed), or a parameter count nobody reported
                continue
            full = [r for r in best.counted if r.status == "ok"]
            if not full and not (subset_best is not None and best.config == subset_best.config):
                counts["upper_bound_cells_left_out"] += 1
                continue
            cell_flops = [float(flops[r.ref.name]) for r in full if np.isfinite(flops[r.ref.name])]
            rows.append({"n_params": float(n_params), "data": float(size), "loss": best.score,
                         "subset_size": int(size), "lr": float(best.config[2]),   # `bestfit.config_key`'s lr
                         "n_seeds": len(best.counted),
                         "n_configs": len(configs),
                         "train_flops": float(np.median(cell_flops)) if cell_flops else np.nan})
    points = pd.DataFrame(rows, columns=cols)
    points = points[np.isfinite(points[["n_params", "data", "loss"]].to_numpy(float)).all(axis=1)]
    counts["points"] = int(len(points))
    return points.reset_index(drop=True), counts


def best_rows(points: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The CSV's rows reduced to one per cell (N, D): the cell's best by the one best-fit rule
    (`search.bestfit.choose`, each row a configuration of one seed, so the lowest loss; ties to
    the earlier row); and how many rows that removed. Rows keep their order, so a CSV without
    duplicate cells is fitted exactly as before."""
    if not points.duplicated(["n_params", "data"]).any():
        return points, 0
    keep = []
    for _, cell in points.groupby(["n_params", "data"], sort=False):
        # The row number as the configuration's key, zero-padded: the rule breaks ties by the key's text.
        best = bestfit.choose(bestfit.TrialRecord(config=f"{int(i):012d}", seed=0, status="ok", value=float(v))
                              for i, v in cell["loss"].items())
        keep.append(int(best.config))
    kept = points.loc[sorted(keep)].reset_index(drop=True)
    return kept, int(len(points) - len(kept))


def study_flops(trials: pd.DataFrame) -> tuple[float, int]:
    """The FLOPs a study trained, over every step of every trial (probes, grid, any status; a
    reference run repeats its trial and is left out), and how many of them were estimated from
    epochs (a store written before ``train_flops`` was logged, `scal.reader.trial_flops`)."""
    from scal.reader import trial_flops

    reused = f"tags.{keys.REUSED_FROM}"
    own = trials
    if reused in trials:
        own = trials[trials[reused].isna() | (trials[reused].astype(str) == "")]
    if own.empty:
        return 0.0, 0
    flops, estimated = trial_flops(own)
    finite = np.isfinite(flops.to_numpy(float))
    return float(np.sum(flops.to_numpy(float)[finite])), int(estimated[finite].sum())


def parse_point(text: str, option: str = "--predict") -> tuple[float, float]:
    """``"1e9,2e10"`` -> (N, D); a one-line ValueError for anything but two positive finite numbers."""
    parts = [t.strip() for t in str(text).split(",")]
    try:
        n, d = (float(t) for t in parts)
    except ValueError:
        raise ValueError(f"{option} takes N,D: two numbers separated by a comma (e.g. 1e6,2e8), got {text!r}") from None
    if not all(math.isfinite(v) and v > 0 for v in (n, d)):
        raise ValueError(f"{option} needs a positive, finite N and D, got {text!r}")
    return n, d


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


def points_compute(points: pd.DataFrame, k: float) -> np.ndarray:
    """Each point's one-pass compute k N D (the finite, positive ones)."""
    c = k * points["n_params"].to_numpy(float) * points["data"].to_numpy(float)
    return c[np.isfinite(c) & (c > 0)]


def default_budgets(points: pd.DataFrame, k: float) -> list[float]:
    """The smallest and largest k N D of the points and DEFAULT_BUDGET_STRETCH times the largest."""
    c = points_compute(points, k)
    if c.size == 0:
        return []
    return sorted({float(c.min()), float(c.max()), float(c.max() * DEFAULT_BUDGET_STRETCH)})


def study_compute(points: pd.DataFrame, k: float) -> float:
    """The study's compute in the one-pass units of C = k N D: sum over its counting trials
    (`trial_points`) of k N D, each as one pass over its subset. Trials take many passes, so
    this is not what they trained (`study_flops` is); kept for the budgets of the surface's
    one-pass optima."""
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
                k: float = FLOPS_PER_PARAM_UNIT, n_boot: int = 200, seed: int = 0, all_rows: bool = False,
                backtest: bool = False) -> Surface:
    """The surface of a CSV's rows, each cell (N, D) reduced to its best row unless ``all_rows``;
    budgets default to `default_budgets`. ``backtest``: check before fitting that the points can
    carry one (`analysis.surface_backtest.check_backtest`)."""
    rows = csv_points(path, n_col, d_col, y_col)
    points, reduced = (rows, 0) if all_rows else best_rows(rows)
    validate_points(points["n_params"], points["data"], points["loss"])
    if backtest:
        check_backtest(points["n_params"], points["data"], points["loss"])
    budgets = list(computes) or default_budgets(points, k)
    fit = fit_surface(points["n_params"], points["data"], points["loss"], budgets, k, n_boot=n_boot, seed=seed)
    points_from = {"kind": "every row" if all_rows else "best row per cell", "rows": int(len(rows)),
                   "points": int(len(points)), "reduced": reduced}
    return Surface(fit, points, {"csv": str(path), "columns": {"n": n_col, "d": d_col, "y": y_col}},
                   points_from=points_from, n_boot=n_boot, seed=seed)


def study_surface(client: MlflowClient, run_id: str, computes: Sequence[float] = (), n_boot: int = 200, seed: int = 0,
                  model_size: CurveFit | None = None, trials: pd.DataFrame | None = None,
                  backtest: bool = False) -> Surface:
    """The surface of study ``run_id``'s tuned cells (`tuned_cells`), its compute record, and its
    frontier against the model-size curve: ``model_size`` when the caller has fitted it (the
    study's analysis), else fitted here from the best-fit points the same way
    `scal.analyze.fit_study` does. ``trials``: the study's runs when the caller has read them
    already (`scal.reader.read_trials`). ``client``: the `MlflowClient` of the study's store.
    ``backtest``: check before fitting that the cells can carry one."""
    from scal.reader import best_fit_points, read_trials, study_params   # mlflow: not for a CSV's surface

    params = study_params(client, run_id)
    trials = read_trials(client, run_id) if trials is None else trials
    points, points_from = tuned_cells(trials)
    if len(points) == 0:
        raise FitError(f"study {run_id} has no tuned cells (grid trials with a finite {keys.M_MIN_VAL_ERROR}) "
                       "to fit a surface to")
    validate_points(points["n_params"], points["data"], points["loss"])   # before the domains' imports (torch)
    if backtest:
        check_backtest(points["n_params"], points["data"], points["loss"])
    k = flops_per_param_unit(params.get("study.domain"))
    spent = study_compute(trial_points(trials), k)
    # The decision summary asks for the optimum at 10x the study's own (one-pass) compute.
    budgets = list(computes) or sorted(set(default_budgets(points, k)) | {DEFAULT_BUDGET_STRETCH * spent})
    fit = fit_surface(points["n_params"], points["data"], points["loss"], budgets, k, n_boot=n_boot, seed=seed)
    flops, n_estimated = study_flops(trials)
    compute = compute_record(fit, points["n_params"], points["data"], points["loss"], points["train_flops"], flops,
                             n_estimated, k)
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
    return Surface(fit, points, source, comparison, note, points_from, n_boot, seed, compute)


def analyze_surface(tracker, parent_run_id: str, model_size: CurveFit | None, out_dir: str | Path | None = None,
                    n_boot: int = 200, seed: int = 0, trials: pd.DataFrame | None = None) -> dict[str, Any]:
    """The study's surface for its summary: fit its tuned cells, plot, log the plot
    (``analysis/loss_surface.png``) and the record (``analysis/surface.json``) to the parent run,
    and return the record, with the ``compute`` part that
    `analysis.surface_cost.compute_sentence` turns into the decision summary's compute sentence;
    or ``{"error": reason}`` when the cells cannot carry a surface (too few, too alike), so a study
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
    origin = points_line(rec.get("points_from"))
    if origin:
        lines.append(origin)
    lines.append("  " + "   ".join(f"{k} {_f(p[k])} {_iv(iv[k])}" for k in ("E", "A", "B", "alpha", "beta")))
    lines.append(f"compute-optimal: N_opt ~ C^a, a = {_f(rec['a'])} {_iv(rec['a_interval'])};  "
                 f"D_opt ~ C^b, b = {_f(rec['b'])} {_iv(rec['b_interval'])}")
    if rec.get("compute"):   # a study: the one-pass budgets are not what it trained
        lines.append("  (one pass per unit of data, C = k N D; the study's own training cost is below)")
    for o in rec["optimal"]:
        times = o.get("times_points_max_compute")
        past = f" ({_f(times)}x the points' largest k N D: extrapolated)" if times and times > 1.0 + 1e-9 else ""
        lines.append(f"  C = {_f(o['compute'])} FLOPs{past}: N_opt {_f(o['n_params'])} {_iv(o['n_params_interval'])}, "
                     f"D_opt {_f(o['data'])} {_iv(o['data_interval'])}, loss {_f(o['loss'])} {_iv(o['loss_interval'])}")
    sentence = compute_sentence(rec, rec.get("unit") or "units", rec.get("level", DEFAULT_LEVEL))
    if sentence:
        lines.append(f"compute: {sentence}")
    cmp = rec.get("model_size_comparison")
    if cmp:
        lines.append(cmp.get("sentence") or f"no comparison with the model-size curve: {cmp.get('error')}")
    level = rec.get("level", DEFAULT_LEVEL)
    for q in rec.get("predictions", []):
        lines.append(f"predicted at N {_f(q['n'])}, D {_f(q['d'])}: {_f(q['loss'])} {_iv((q['low'], q['high']))} "
                     f"({100 * level:.0f}% predictive interval)")
    if rec.get("backtest"):
        lines.extend(backtest_lines(rec["backtest"], rec.get("unit")))
    if rec.get("plot"):
        lines.append(f"plot: {rec['plot']}")
    return "\n".join(lines)


def points_line(points_from: dict[str, Any] | None) -> str | None:
    """How the points were chosen, when there is anything to say (a CSV without duplicate cells
    reads as it always did)."""
    if not points_from:
        return None
    kind = points_from.get("kind")
    if kind == "tuned cells":
        text = (f"points: {points_from['points']} tuned cells (each model size and subset: its best configuration by "
                f"the best-fit rule, median over seeds) from {points_from['grid_trials']} grid trials")
        left = [f"{points_from[k]} {what}" for k, what in (
            ("raced_out_configurations", "raced-out configuration(s)"),
            ("upper_bound_cells_left_out", "cell(s) with only stopped (upper-bound) seeds")) if points_from.get(k)]
        return text + (f"; left out: {', '.join(left)}" if left else "")
    if kind == "best row per cell" and points_from.get("reduced"):
        return (f"points: {points_from['rows']} rows, {points_from['reduced']} reduced to their cell's best: one per "
                f"(N, D), {points_from['points']} points (--all-rows keeps every row)")
    return None


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
    text = (f"loss surface    L(N, D) on {rec['n_points']} tuned cells: alpha {_f(p['alpha'])} {_iv(iv['alpha'])}, beta {_f(p['beta'])} {_iv(iv['beta'])}; "
            f"N_opt ~ C^{_f(rec['a'])} {_iv(rec['a_interval'])}, D_opt ~ C^{_f(rec['b'])} {_iv(rec['b_interval'])}\n")
    cmp = rec.get("model_size_comparison") or {}
    if cmp.get("sentence"):
        text += f"                {cmp['sentence']}\n"
    return text

"""The texts the MLflow UI shows about a study (Markdown, the `keys.NOTE` tag): pure functions.

- `experiment_description`: what an experiment holds and how to read it (its description);
- `running_note`: a study run's description while its trials train;
- `study_note`: a study run's description once analysed: the decision summary (the first thing
  ``scal study`` prints), the fitted curves, and the best-fit points as a Markdown table.
"""

from __future__ import annotations

from typing import Any, Sequence

from analysis.decision import fmt
from analysis.report import interval, limited_lines, num


def experiment_description(domain: str, unit: str, metric: str, metric_about: str, lower_is_better: bool,
                           registered_model: str | None) -> str:
    """The experiment's description: what its runs are and where the learning curve is."""
    better = "lower is better" if lower_is_better else "higher is better"
    lines = [
        f"**scal scaling studies of the `{domain}` domain**, training data measured in **{unit}**.",
        "",
        f"Metric: **{metric}**, {metric_about} ({better}). A trial's value is the minimum over its "
        f"validation rounds (`min_val_error`).",
        "",
        "How to read it:",
        "",
        "- Each **study run** (tag `scal.role = study`) is one study; its description is the decision summary "
        "and the fitted curve. Its children are the trials.",
        "- In a study run's charts, **`best_val_error`** is the learning curve: its step is the subset size m "
        f"in {unit}; set both axes to log and a power law is a straight line of slope beta_g. "
        "**`best_n_params`** is the best-fit model size at each m.",
        "- Each **trial run** trains one model size and learning rate on one nested subset (Datasets column: "
        f"`{domain}-{unit}-<m>`, its digest names the exact subset); `val_error` is logged every round, live "
        "while it trains. Tag `scal.role` is `grid` (the Monte Carlo grid) or `overfit_probe` (the model-size "
        "search); a failed trial keeps its traceback in `error/traceback.txt`.",
    ]
    if registered_model:
        lines.append(f"- The registered model **`{registered_model}`** holds each subset's best fit; alias "
                     "`@largest` is the largest subset's.")
    return "\n".join(lines)


def running_note(study: str, sizes: Sequence[int], unit: str, budget: str) -> str:
    """A study run's description until its analysis replaces it."""
    return (f"**Study `{study}` is training** ({budget} budget): subsets of "
            f"{', '.join(fmt(float(m)) for m in sizes)} {unit}. The trials are this run's children; "
            "the decision summary and the fitted curve appear here when the analysis finishes.")


def study_note(s: dict[str, Any]) -> str:
    """A study run's description from its analysis summary (`scal.analyze.analyze_study`)."""
    unit, metric = s.get("unit") or "units", s["metric"]
    lines = ["### Decision", "", s.get("decision") or "(no decision summary)", "", "### Fit", ""]
    lines.append(f"Learning curve, form **{s['form']}**: beta_g = {num(s.get('beta_g'))} "
                 f"{interval(s.get('beta_g_interval'))}, floor {num(s.get('gamma'))}"
                 + (f", held-out RMSE (log) {num(s['holdout_rmse_log'])}" if s.get("holdout_rmse_log") is not None else "")
                 + ".  ")
    lines.append(f"Best-fit model size s(m) = {num(s.get('sigma'))} m^{num(s.get('beta_p'))} "
                 f"{interval(s.get('beta_p_interval'))}" + (" (sublinear)." if s.get("sublinear") else "."))
    lines += ["", "### Best-fit points", "", _points_table(s.get("subsets", []), unit, metric)]
    limited = limited_lines(s.get("subsets", []))
    if limited:
        lines += [""] + limited
    return "\n".join(lines)


def _points_table(points: list[dict[str, Any]], unit: str, metric: str) -> str:
    """One row per subset: its best fit's median error over seeds, model size, learning rate, region."""
    knobs = sorted({k for p in points for k in p.get("size_knobs", {})})
    head = [f"m ({unit})", f"{metric} (median)", "seeds", "parameters", *knobs, "lr", "region", "in fit"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in points:
        cells = [fmt(float(p["size"])), num(p["val_error"]), str(p.get("n_seeds", "")), fmt(float(p["n_params"])),
                 *[str(p.get("size_knobs", {}).get(k, "")) for k in knobs], num(p.get("lr")),
                 str(p.get("region", "")), "yes" if p.get("in_fit") else "no"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


"""A study's analysis as a Markdown report next to its plots (``scal report``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from analysis.decision import fmt


def num(v, fmt: str = ".4g") -> str:
    """An estimate for a Markdown table: 4 figures, \"-\" where there is none, \"inf\" unbounded."""
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    v = float(v)
    if math.isnan(v):
        return "-"
    if math.isinf(v):
        return "inf"
    return format(v, fmt)


def interval(iv) -> str:
    if not iv or iv[0] is None or (isinstance(iv[0], float) and math.isnan(iv[0])):
        return "(no interval)"
    return f"[{num(iv[0])}, {num(iv[1])}]"


def limited_lines(subsets: list[dict[str, Any]]) -> list[str]:
    """One Markdown bullet per compute-limited subset: why, and whether the fit used it (it does
    when fewer than 3 points would remain without it, `analysis.regions`)."""
    return [f"- m = {fmt(float(p['size']))}: compute-limited ({p['compute_limited']})"
            + ("" if p.get("in_fit") else ", not in the fit") for p in subsets if p.get("compute_limited")]


def write_report(out_dir: Path, s: dict[str, Any], images: dict[str, str]) -> Path:
    """Write ``report.md`` in ``out_dir`` from an analysis summary; return its path."""
    lc = s["learning_curve"]
    lines = [f"# Scaling study report: {s.get('domain') or ''} {s.get('unit') or ''}".rstrip(), ""]
    if s.get("parent_run_id"):
        lines += [f"MLflow parent run `{s['parent_run_id']}` in `{s.get('tracking_uri', '')}`.", ""]
    if s.get("decision"):
        lines += ["## Decision summary", "", s["decision"], ""]
    lines += ["## Learning curve", "",
              f"Metric: **{s['metric']}**; best-guess error {num(s['best_guess_error'])}. "
              f"Form: **{s['form']}** (requested {s['form_requested']}), fitted on "
              f"{lc['n_points']} points, log-space RMSE {num(s['fit_rmse_log'])}.", "",
              "| parameter | value | 95% interval |", "|---|---|---|"]
    for k, v in lc["params"].items():
        lines.append(f"| {k} | {num(v)} | {interval(lc['intervals'].get(k))} |")
    lines += ["", f"Floor (error as m -> infinity): {num(lc['floor'])}, 95% interval "
              f"{interval(s.get('gamma_interval'))}" + (" (form m1 has no floor term)." if s["form"] == "m1" else "."), ""]
    if s["holdout"]:
        lines += [f"Held-out check: each form fitted without the {s['holdout']} largest fitted subset(s), "
                  "scored by RMSE of log error on them (lower is better).", "",
                  "| form | held-out RMSE (log) |", "|---|---|"]
        for k, v in s["holdout_rmse_log_by_form"].items():
            mark = " (chosen)" if k == s["form"] else ""
            lines.append(f"| {k}{mark} | {num(v)} |")
        for k, why in s["skipped_forms"].items():
            lines.append(f"| {k} | not a candidate: {why} |")
        lines.append("")
    reg = s["regions"]
    lines += ["## Regions", "",
              f"- small-data region up to m = {num(reg['small_data_until'])} (error within 5% of the best guess)",
              f"- power law from m = {num(reg['power_law_from'])}",
              f"- irreducible region from m = {num(reg['irreducible_from'])} {interval(reg['irreducible_interval'])}"
              " (where the floor is at least 90% of the fitted error)", ""]
    lines += ["## Model size", "",
              f"s(m) = {num(s['sigma'])} * m^{num(s['beta_p'], '.3f')}, beta_p 95% {interval(s['beta_p_interval'])}: "
              + ("**sublinear** (the whole interval is below 1)." if s["sublinear"] else
                 "not shown to be sublinear (the interval reaches 1 or more)."), ""]
    plan = s.get("planning", {})
    if plan.get("predictions"):
        lines += ["## Predictions", "", "| m | predicted error | 90% predictive interval |", "|---|---|---|"]
        for p in plan["predictions"]:
            lines.append(f"| {num(p['m'])} | {num(p['value'])} | [{num(p['low'])}, {num(p['high'])}] |")
        lines.append("")
    if plan.get("target"):
        d = plan["target"]["data"]
        lines += [f"Data for error {num(d['target_error'])}: " +
                  (f"m = {num(d['m'])} [{num(d['low'])}, {num(d['high'])}]" if d["reachable"] else d["note"]), ""]
    if s.get("backtest"):
        lines += _backtest_lines(s["backtest"])
    lines += ["## Best-fit points", "", "```", s.get("table", ""), "```", ""]
    limited = limited_lines(s.get("subsets", []))
    if limited:
        lines += ["Compute-limited subsets (their error is an upper bound):", ""] + limited + [""]
    lines += ["## Plots", ""] + [f"### {title}\n\n![{title}]({name})\n" for title, name in images.items()]
    path = Path(out_dir) / "report.md"
    path.write_text("\n".join(lines))
    return path


def _backtest_lines(bt: dict[str, Any]) -> list[str]:
    """The backtests as a table: each refit on a prefix of the sizes, and the points it predicts."""
    lines = ["## Backtests", "",
             "Refit on a prefix of the sizes, predict the sizes left out (intervals are predictive).", "",
             "| refit on | m | observed | predicted | interval | rel. error | inside |", "|---|---|---|---|---|---|---|"]
    for name, rec in (("m <= m_max/8", bt), ("all but the largest two", bt.get("leave_two_out") or {})):
        if rec.get("error"):
            lines.append(f"| {name} | - | - | - | - | - | {rec['error']} |")
            continue
        for p in rec.get("points", []):
            rel = "-" if p["rel_error"] is None else f"{100 * p['rel_error']:+.1f}%"
            lines.append(f"| {name} | {num(p['x'])} | {num(p['observed'])} | {num(p['predicted'])} | "
                         f"[{num(p['low'])}, {num(p['high'])}] | {rel} | {'yes' if p['inside'] else 'no'} |")
    return lines + [""]

"""What a study's loss surface says about compute, in the FLOPs its trials actually trained.

Why not the Chinchilla sentence. A study's trial trains many passes over its subset, to its
minimum validation error (early stopping, `domains.loop`), so a tuned cell's loss L(N, D) is the
*converged* loss of N parameters on D units of data, whatever the passes cost. The budget
question "for C = k N D FLOPs, which N and D?" assumes one pass (each unit seen once), so its C
is not what the study spent (in the default lm study, that split for 10x the study's one-pass
compute was 257x the largest subset on a model smaller than the one in use). Asking the same budget question in FLOPs actually trained
would need the loss of runs stopped part-way (fewer passes for the same FLOPs), which the
converged surface never measured. So the sentence answers the question the converged surface
does answer (option b of the issue):

    for a target loss L_t, which (N, D) reaches it at the least training cost,

under the study's own cost model, fitted to the FLOPs its tuned cells trained (each cell: the
median over its best configuration's full seeds of the logged ``train_flops``, every step; see
`scal.surface.tuned_cells`):

    F(N, D) = K N**u D**v,   log F = log K + u log N + v log D   (least squares in logs).

u = v = 1 would be one pass each; a study whose small subsets take more passes than its large
ones has v < 1. Minimise log F on the surface's level set A N**-alpha + B D**-beta = L_t - E =: R.
With x = A N**-alpha and y = B D**-beta, log F = const - p log x - q log y, p = u / alpha,
q = v / beta, and x + y = R; the Lagrange condition p / x = q / y gives

    x = R p / (p + q),  y = R q / (p + q),  N* = (A / x)**(1 / alpha),  D* = (B / y)**(1 / beta),
    F* = K N***u D***v.

There is no such (N, D) when L_t <= E (the floor: unreachable, given as inf) and no finite
cheapest one when u <= 0 or v <= 0 (a cost that does not grow with N or with D: nan).

Intervals: each bootstrap refit of the surface (`SurfaceFit.boot_params`) is paired with the cost
model refitted on the same resampled cells (`SurfaceFit.boot_rows`), and (N*, D*, F*) is solved
for each pair; nearest-rank percentiles at ``level`` (an unreachable draw stays inf, so the
interval says "unbounded" rather than hiding it).

The surface is **not determined yet** when the 95% interval of its frontier exponent beta / alpha
(`SurfaceFit.frontier_exponent`) is wider than UNDETERMINED_WIDTH. Which sizes would pin it: the
exponent whose 95% interval is wider in log terms, log(high / low). alpha is measured by varying
N where the data term is smallest, so a loose alpha asks for larger models at the largest
subset; beta by varying D where the model term is smallest, so a loose beta asks for larger
subsets (with the largest models).

`compute_sentence` is the one function the decision summary calls; it reads only the surface's
record (`scal.surface.analyze_surface`), so it is pure and works on a ``surface.json`` read back.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from analysis.decision import fmt
from analysis.fit import DEFAULT_LEVEL, check_level, rank_interval
from analysis.jsonsafe import json_number
from analysis.surface import PARAMS, SurfaceFit, percentile_interval

UNDETERMINED_WIDTH = 0.25     # a frontier exponent known no better than +-0.125 does not say how to grow
DEFAULT_TARGET_CUT = 0.10     # the default target: 10% below the lowest loss a tuned cell reached
MIN_COST_CELLS = 4            # three coefficients and at least one degree of freedom
COST_FORM = "F = K N^u D^v"


# ---------------------------------------------------------------------------------------------
# The cost model and the cheapest (N, D) for a loss
# ---------------------------------------------------------------------------------------------


def fit_cost(n_params, data, flops) -> tuple[float, float, float]:
    """(log K, u, v) of F = K N**u D**v by least squares in logs over the points with a finite,
    positive F; nan when fewer than MIN_COST_CELLS or log N, log D and 1 are not independent."""
    n, d, f = (np.asarray(v, dtype=float) for v in (n_params, data, flops))
    with np.errstate(all="ignore"):
        ok = np.isfinite(f) & (f > 0) & np.isfinite(n) & (n > 0) & np.isfinite(d) & (d > 0)
    if ok.sum() < MIN_COST_CELLS:
        return (math.nan,) * 3
    X = np.column_stack([np.ones(ok.sum()), np.log(n[ok]), np.log(d[ok])])
    if np.linalg.matrix_rank(X) < 3:
        return (math.nan,) * 3
    coef, *_ = np.linalg.lstsq(X, np.log(f[ok]), rcond=None)
    return float(coef[0]), float(coef[1]), float(coef[2])


def cheapest(params: dict[str, float], cost: Sequence[float], target: float) -> tuple[float, float, float]:
    """(N*, D*, F*) that reach ``target`` at the least cost F = K N**u D**v (module docstring):
    inf when the target is at or below the floor E, nan when there is no finite cheapest point."""
    E, A, B, alpha, beta = (float(params[k]) for k in PARAMS)
    log_k, u, v = (float(c) for c in cost)
    if not all(math.isfinite(x) for x in (E, alpha, beta, log_k, u, v)) or not math.isfinite(target):
        return (math.nan,) * 3
    rest = target - E
    if rest <= 0:
        return (math.inf,) * 3
    if not (alpha > 0 and beta > 0 and A > 0 and B > 0 and u > 0 and v > 0):
        return (math.nan,) * 3
    p, q = u / alpha, v / beta
    x, y = rest * p / (p + q), rest * q / (p + q)
    log_n = (math.log(A) - math.log(x)) / alpha     # A may be inf (a useless fit): N* is then inf too
    log_d = (math.log(B) - math.log(y)) / beta
    return _exp(log_n), _exp(log_d), _exp(log_k + u * log_n + v * log_d)


# ---------------------------------------------------------------------------------------------
# The record a study's surface carries for the sentence
# ---------------------------------------------------------------------------------------------


def compute_record(fit: SurfaceFit, n_params, data, loss, flops, study_flops: float, n_flops_estimated: int,
                   flops_per_param_unit: float) -> dict[str, Any]:
    """What `compute_sentence` needs besides the surface's own record, as plain JSON: the cost model
    and its refits paired with the surface's (``cost_boot[i]`` on ``boot_rows[i]``), the surface's
    refits (``boot_params``, rows of E, A, B, alpha, beta), the study's FLOPs, the lowest loss
    trained and the default target. ``flops``: each point's (cell's) training FLOPs, nan if unknown."""
    n, d, y, f = (np.asarray(v, dtype=float) for v in (n_params, data, loss, flops))
    coef = fit_cost(n, d, f)
    boots = [fit_cost(n[idx], d[idx], f[idx]) for idx in fit.boot_rows]
    best = int(np.argmin(y))
    with np.errstate(all="ignore"):
        passes = f / (flops_per_param_unit * n * d)
    passes = passes[np.isfinite(passes) & (passes > 0)]
    return {
        "question": "the cheapest (N, D) that reaches a target loss, under the study's measured training cost",
        "study_flops": json_number(study_flops), "n_flops_estimated": int(n_flops_estimated),
        "cost_model": {"form": COST_FORM, "log_k": json_number(coef[0]), "u": json_number(coef[1]),
                       "v": json_number(coef[2]),
                       "u_interval": _pair(percentile_interval([b[1] for b in boots], fit.ci)),
                       "v_interval": _pair(percentile_interval([b[2] for b in boots], fit.ci)),
                       "n_cells": int(np.sum(np.isfinite(f) & (f > 0)))},
        "median_passes": json_number(float(np.median(passes)) if passes.size else math.nan),
        "best_loss": float(y[best]), "best_n_params": float(n[best]), "best_data": float(d[best]),
        "default_target": {"loss": float(y[best] * (1.0 - DEFAULT_TARGET_CUT)),
                           "rule": f"{100 * DEFAULT_TARGET_CUT:.0f}% below the lowest loss trained"},
        "boot_params": [[json_number(q[k]) for k in PARAMS] for q in fit.boot_params],
        "cost_boot": [[json_number(c) for c in b] for b in boots],
    }


def answer(record: dict[str, Any], target: float, level: float) -> dict[str, Any]:
    """(N*, D*, F*) at ``target`` from a surface record, with nearest-rank ``level`` intervals over
    the paired refits: ``{n_params, data, flops, *_interval, reachable}``."""
    comp = record["compute"]
    params = {k: _num(record["params"][k]) for k in PARAMS}
    cost = [_num(comp["cost_model"][k]) for k in ("log_k", "u", "v")]
    point = cheapest(params, cost, target)
    draws = [cheapest(dict(zip(PARAMS, (_num(v) for v in q))), [_num(c) for c in b], target)
             for q, b in zip(comp.get("boot_params", []), comp.get("cost_boot", []))]
    out: dict[str, Any] = {"target": target, "reachable": not math.isinf(point[0])}
    for i, name in enumerate(("n_params", "data", "flops")):
        out[name] = point[i]
        vals = [t[i] for t in draws if not math.isnan(t[i])]
        out[f"{name}_interval"] = rank_interval(vals, level) if vals and len(vals) >= len(draws) / 2 else (math.nan, math.nan)
    return out


def frontier_exponent(record: dict[str, Any]) -> tuple[float, tuple[float, float]]:
    """beta / alpha and its interval at the record's ``ci`` over its surface refits (what
    `SurfaceFit.frontier_exponent` gives, from the record alone)."""
    p = record["params"]
    value = _ratio(_num(p["beta"]), _num(p["alpha"]))
    boots = [_ratio(_num(q[4]), _num(q[3])) for q in record.get("compute", {}).get("boot_params", [])]
    return value, percentile_interval(boots, float(record.get("ci", 0.95)))


def pinning_sizes(record: dict[str, Any], unit: str) -> str:
    """Which measurements would pin the frontier exponent: the exponent whose 95% interval is
    wider in log terms (module docstring) names them."""
    iv = record["intervals"]
    widths = {k: _log_width(iv.get(k)) for k in ("alpha", "beta")}
    n_max, d_max = (_num(record[k][1]) for k in ("n_range", "d_range"))
    if widths["alpha"] >= widths["beta"]:
        return f"models larger than {_fmt(n_max)} parameters at the largest subset ({_fmt(d_max)} {unit}) would pin it"
    return f"subsets larger than {_fmt(d_max)} {unit}, with models of {_fmt(n_max)} parameters or more, would pin it"


# ---------------------------------------------------------------------------------------------
# The sentence
# ---------------------------------------------------------------------------------------------


def compute_sentence(surface: dict[str, Any] | None, unit: str, level: float = DEFAULT_LEVEL,
                     target_loss: float | None = None, target_reason: str = "") -> str | None:
    """The decision summary's compute sentences, from a study's surface record (``summary
    ["surface"]``, or ``analysis/surface.json`` read back); None when there is no surface (none
    fitted, ``{"error": ...}``, or a CSV's, which has no trained FLOPs). ``unit``: the data's
    unit; ``level``: the coverage of the intervals; ``target_loss``: the loss to reach (default
    DEFAULT_TARGET_CUT below the lowest loss a tuned cell reached; the caller may pass, e.g.,
    the learning curve's prediction at 10x the data, named by ``target_reason``). Every number carries its interval, the
    answer says how many times beyond the largest N and D trained it lies. A surface whose
    frontier exponent interval is wider than UNDETERMINED_WIDTH is said to be not determined yet,
    with the sizes that would pin it, and then no cheapest (N, D) is printed (its interval would
    span orders of magnitude; ``answer`` still gives it)."""
    if not surface or "error" in surface or "compute" not in surface:
        return None
    check_level(level)
    comp = surface["compute"]
    metric = surface.get("metric") or ""
    pct = f"{round(100 * level)}%"
    s = [_trained(comp, unit)]
    default = target_loss is None
    target = float(comp["default_target"]["loss"]) if default else float(target_loss)
    why = (f" ({comp['default_target']['rule']}, {_fmt(comp['best_loss'])})" if default
           else f" ({target_reason})" if target_reason else "")
    cm = comp["cost_model"]
    u, v = _num(cm["u"]), _num(cm["v"])
    boots = comp.get("cost_boot", [])
    u_iv, v_iv = (percentile_interval([_num(b[i]) for b in boots], level) for i in (1, 2))   # at ``level``, as the rest
    cost = f"FLOPs ~ N^{_fmt(u)} {_iv(u_iv)} D^{_fmt(v)} {_iv(v_iv)}, fitted to its {cm['n_cells']} tuned cells' runs"
    exp, exp_iv = frontier_exponent(surface)
    loose = not (math.isfinite(exp_iv[0]) and math.isfinite(exp_iv[1])) or exp_iv[1] - exp_iv[0] > UNDETERMINED_WIDTH
    undetermined = (f"The surface is not determined yet: its frontier exponent beta/alpha is {_fmt(exp)}, "
                    f"{round(100 * float(surface.get('ci', 0.95)))}% interval {_iv(exp_iv)}"
                    + (f", wider than {UNDETERMINED_WIDTH:g}" if math.isfinite(exp_iv[0]) else ""))
    if not (math.isfinite(u) and math.isfinite(v)):
        s.append(f"Too few tuned cells with their FLOPs ({cm['n_cells']}, {MIN_COST_CELLS} needed) to fit its cost, "
                 f"so it cannot say which model and data reach {_fmt(target)} {metric} most cheaply.")
    else:
        a = answer(surface, target, level)
        if not a["reachable"]:
            e_iv = surface["intervals"]["E"]
            s.append(f"No model or data reaches {_fmt(target)} {metric}{why}: it lies at or below the surface's floor "
                     f"E = {_fmt(_num(surface['params']['E']))} {_iv(e_iv)} (95%).")
        elif not math.isfinite(a["n_params"]):
            grows = "N" if not u > 0 else "D"
            s.append(f"Its measured cost ({cost}) does not grow with {grows}, so no finite model and data reach "
                     f"{_fmt(target)} {metric}{why} most cheaply: the cost model, not the surface, is the limit.")
        elif loose:
            # A cheapest (N, D) read off a surface whose trade-off between N and D is unknown would
            # be a number with an interval over many orders of magnitude: say what is missing
            # instead (the JSON record keeps the answer and its intervals).
            s.append(f"Its measured cost is {cost}. {undetermined}, so it cannot yet say which model and data "
                     f"reach {_fmt(target)} {metric}{why} most cheaply; {pinning_sizes(surface, unit)}.")
            return " ".join(s)
        else:
            n_max, d_max = (_num(surface[k][1]) for k in ("n_range", "d_range"))
            s.append(f"Under its own cost ({cost}), the cheapest way to {_fmt(target)} {metric}{why} is "
                     f"{_fmt(a['n_params'])} parameters {_iv(a['n_params_interval'])} on {_fmt(a['data'])} {unit} "
                     f"{_iv(a['data_interval'])}, {_fmt(a['flops'])} FLOPs {_iv(a['flops_interval'])} of training "
                     f"({pct} bootstrap intervals): {_beyond(a['n_params'], n_max, 'model')}, and "
                     f"{_beyond(a['data'], d_max, 'subset')}.")
    if loose:
        s.append(f"{undetermined}; {pinning_sizes(surface, unit)}.")
    return " ".join(s)


def _trained(comp: dict[str, Any], unit: str) -> str:
    """What the study trained: its FLOPs over every step, and why C = k N D does not count them."""
    passes = comp.get("median_passes")
    how = (f"; a tuned cell's run took a median of {_fmt(_num(passes))} passes over its subset, which C = k N D "
           "(one pass) does not count") if passes is not None else ""
    est = comp.get("n_flops_estimated", 0)
    note = (f" {est} trials' FLOPs were estimated from their epochs x subset size: the store predates the logged "
            "train_flops." if est else "")
    return (f"The study trained {_fmt(_num(comp['study_flops']))} FLOPs (every step of every trial, k N per unit "
            f"of data{how}).{note}")


def _beyond(value: float, largest: float, what: str) -> str:
    """How far an answer lies beyond the largest trained size: "3.2x the largest model trained (321)"."""
    if not (math.isfinite(value) and math.isfinite(largest) and largest > 0):
        return f"an unknown multiple of the largest {what} trained"
    ratio = value / largest
    if ratio <= 1.0:
        return f"within the {what}s trained (the largest: {_fmt(largest)})"
    return f"{ratio:.3g}x the largest {what} trained ({_fmt(largest)})"


def _fmt(v) -> str:
    """A record's number as the decision summary writes one (`analysis.decision.fmt`); an
    unreachable answer (inf) reads "unbounded"."""
    v = _num(v)
    if math.isinf(v):
        return "unbounded" if v > 0 else "-unbounded"
    return fmt(v)


def _iv(iv) -> str:
    if iv is None:
        return "(no interval)"
    lo, hi = (_num(x) for x in iv)
    if math.isnan(lo) or math.isnan(hi):
        return "(no interval)"
    return f"[{_fmt(lo)}, {_fmt(hi)}]"


def _num(v) -> float:
    """A record's number back as a float: null is nan, "inf" is inf (`analysis.jsonsafe`)."""
    return math.nan if v is None else float(v)


def _ratio(num: float, den: float) -> float:
    return num / den if den != 0 and math.isfinite(den) else math.nan


def _log_width(iv) -> float:
    lo, hi = (_num(x) for x in (iv or (None, None)))
    if not (lo > 0 and math.isfinite(hi)):
        return math.inf
    return math.log(hi / lo)


def _exp(v: float) -> float:
    return math.exp(v) if v < 709.0 else math.inf


def _pair(iv) -> list:
    return [json_number(iv[0]), json_number(iv[1])]

"""Comparing learning curves: is architecture B better than A, and from what size on?

Hestness et al. (2017, section 5) find that a better model family lowers the learning curve
eps(m) = alpha * m**beta_g + gamma by its offset alpha and leaves the exponent beta_g alone. Two
such curves never cross; curves whose exponents differ cross, and which one is better then
depends on how much data there is. So the comparison tests before it extrapolates: the curves
are fitted jointly in one form under nested constraints (`analysis.joint`: one exponent and one
floor, one exponent and own floors, ..., every curve on its own), each constraint is F-tested
against the unconstrained model at 5%, and the simplest model the data do not reject is the one
compared in (`analysis.joint_select`). Different exponents are claimed only when every
shared-exponent model is rejected.
For named curves {name: (x, y)} it reports:

- ``joint``: every joint model's RSS, AICc and Akaike weight, each test (F, df, p), the choice;
- per curve: the chosen model's beta_g with its 95% interval (the joint residual bootstrap's
  percentiles) and its floor;
- per comparison size m (default: the largest size every curve reaches, m_c = min_k max x_k,
  and 10 m_c): each curve's predicted error in the chosen model with its `LEVEL` predictive
  interval (for a new measurement there, `analysis.plan.predict_error`; its bootstrap part mixes
  the joint models' refits by their weights, `as_curve_fits`), the best curve (lowest predicted
  error) and the probability that it is best,

      p_best(m) = sum_j w_j * (1/B) * #{i : argmin_k f_k^(j,i)(m) = best},

  w_j the Akaike weight of joint model j and f_k^(j,i) curve k in its i-th bootstrap refit (all
  curves from one refit, so a shared exponent moves them together). It holds the uncertainty
  within each model and the uncertainty about the model: one exponent or several, a floor or
  none (forms m2 and m1);
- per pair (a, b), from the pair's own joint fit and test (the one above for two curves):
  whether the exponents differ, with the test's F and p; the crossover, the first m where

      h(m) = log f_a(m) - log f_b(m)

  changes sign in the chosen model (`analysis.crossover.crossovers`), searched from the pair's
  smallest common m to `HORIZON_FACTOR` times its largest m (a shared exponent and floor never
  cross, so no crossover is claimed unless the data reject them); its `LEVEL` interval, the
  profile-likelihood interval of `analysis.crossover` (the union of the chosen model's and the
  unconstrained model's, so that a constraint not rejected does not narrow it); how many of the
  chosen model's bootstrap refits cross; by how much the lower curve is lower at each comparison
  size; and whether the exponents' 95% intervals overlap in the unconstrained model.

`compare_fits` compares curves fitted elsewhere (only their `CurveFit`, not their points): no
joint fit and no test is possible, so its crossovers are those of the given fits, marked
untested (``crossover_claimed`` null), with bootstrap percentile intervals, and p_best pairs
their bootstrap draws.

Run it from the command line with ``scal compare`` (`scal.cli`); `analysis.compare_plot` draws it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from analysis.crossover import GRID_PER_DECADE, crossovers, joint_crossover_interval
from analysis.fit import CurveFit, percentiles, rank_interval
from analysis.forms import make_form
from analysis.joint import AUTO, BY_NAME, models_for
from analysis.joint_select import JointSelection, select_joint
from analysis.jsonsafe import json_number
from analysis.plan import predict_error

LEVEL = 0.9                  # nominal coverage of the per-size predictive intervals and the crossover interval
EXPONENT_CI = 0.95           # coverage of the exponents' and floors' bootstrap intervals
DEFAULT_AT_FACTORS = (1.0, 10.0)   # default comparison sizes, as multiples of the largest common size
HORIZON_FACTOR = 1000.0      # crossovers are searched up to this factor beyond the pair's largest size

Curves = Mapping[str, tuple[Sequence[float], Sequence[float]]]


@dataclass(frozen=True)
class JointComparison:
    """What a comparison of curves with points is computed from: the joint fits of all curves
    (``selection``), the chosen model's curves as `CurveFit`s (``fits``: predictions, plot), and
    each pair's own joint fits (``pairs``; the same ``selection`` when there are two curves)."""

    selection: JointSelection
    fits: dict[str, CurveFit]
    pairs: dict[tuple[str, str], JointSelection]


def joint_comparison(curves: Curves, form: str = AUTO, n_boot: int = 200, seed: int = 0) -> JointComparison:
    """Fit the named curves {name: (x, y)} jointly (`analysis.joint_select.select_joint`), each pair
    too when there are more than two, and express the chosen model's curves as `CurveFit`s."""
    _check_names(curves)
    models_for(form)   # an unknown common form fails before any fitting
    selection = select_joint(curves, form=form, n_boot=n_boot, seed=seed)
    pairs = {}
    for i, (a, b) in enumerate(itertools.combinations(curves, 2)):
        pairs[(a, b)] = selection if len(curves) == 2 else select_joint(
            {a: curves[a], b: curves[b]}, form=form, n_boot=n_boot, seed=seed + 1 + i, boot_all=False)
    return JointComparison(selection, as_curve_fits(selection), pairs)


def as_curve_fits(sel: JointSelection) -> dict[str, CurveFit]:
    """Each curve of the chosen joint model as a `CurveFit`, so that predictions, predictive
    intervals (`CurveFit.interval`) and plots treat it like any fitted curve.

    Its form is m2 (m1 when only m1 models were fitted: an m1 model is m2 with gamma = 0); its
    parameters, residuals and 95% parameter intervals are the chosen model's; its bootstrap refits
    are every joint model's refits in proportion to the models' Akaike weights (`mixed_draws`), so
    that its predictive intervals hold the same uncertainty about the model as p_best.
    """
    chosen = sel.fit
    form = "m1" if all(f.model.form == "m1" for f in sel.fits.values()) else "m2"
    est = make_form(form, n_boot=0)
    draws = mixed_draws(sel)
    out = {}
    for k, name in enumerate(chosen.names):
        x = sel.stack.x(k)
        resid = np.asarray(chosen.residuals_log[name], dtype=float)
        own = [_in_form(p, form) for p in chosen.boot_params.get(name, ())]
        out[name] = CurveFit(
            form=form, params=_in_form(chosen.params[name], form),
            intervals={p: _interval([b[p] for b in own], EXPONENT_CI) for p in est.param_names},
            x_range=(float(x[0]), float(x[-1])), n_points=int(x.size), rmse_log=float(np.sqrt(np.mean(resid**2))),
            n_boot=len(draws[name]), estimator=est, ci=EXPONENT_CI,
            boot_params=tuple(_in_form(p, form) for p in draws[name]),
            residuals_log=tuple(float(v) for v in resid))
    return out


def mixed_draws(sel: JointSelection) -> dict[str, list[dict[str, float]]]:
    """Bootstrap refits of every curve drawn from the joint models in proportion to their Akaike
    weights: n_j = round(w_j B) of model j's refits (its first ones; B the chosen model's number,
    the rounding's remainder going to the chosen model). Refit i of every curve comes from one
    refit of one model, as in each model's own bootstrap."""
    booted = {m: f for m, f in sel.fits.items() if f.n_boot}
    out: dict[str, list[dict[str, float]]] = {n: [] for n in sel.names}
    if sel.chosen not in booted:
        return out
    weights = {m: sel.weights.get(m, 0.0) for m in booted}
    if sum(weights.values()) <= 0:   # no AICc anywhere (too few points): the chosen model alone
        weights = {sel.chosen: 1.0}
    total = booted[sel.chosen].n_boot
    counts = {m: min(int(round(w * total)), booted[m].n_boot) for m, w in weights.items()}
    counts[sel.chosen] = min(counts.get(sel.chosen, 0) + total - sum(counts.values()), booted[sel.chosen].n_boot)
    for m, f in booted.items():
        for n in sel.names:
            out[n] += list(f.boot_params[n][:counts.get(m, 0)])
    return out


def _in_form(params: Mapping[str, float], form: str) -> dict[str, float]:
    """An m1 model's parameters as m2's (gamma = 0) when the curves are shown in m2."""
    return {**params, "gamma": params.get("gamma", 0.0)} if form == "m2" else dict(params)


def _interval(values: Sequence[float], ci: float) -> tuple[float, float]:
    """Percentile interval of bootstrap values; (nan, nan) without any."""
    if len(values) == 0:
        return math.nan, math.nan
    lo, hi = np.percentile(np.asarray(values, dtype=float), percentiles(ci))
    return float(lo), float(hi)


def compare_curves(curves: Curves, at: Sequence[float] | None = None, form: str = AUTO, n_boot: int = 200,
                   seed: int = 0, level: float = LEVEL) -> dict[str, Any]:
    """Fit the named curves {name: (x, y)} jointly and compare them (module docstring)."""
    return fit_and_compare(curves, at=at, form=form, n_boot=n_boot, seed=seed, level=level)[0]


def fit_and_compare(curves: Curves, at: Sequence[float] | None = None, form: str = AUTO, n_boot: int = 200,
                    seed: int = 0, level: float = LEVEL) -> tuple[dict[str, Any], dict[str, CurveFit]]:
    """`compare_curves`, and the chosen model's curves it compared (to plot them)."""
    _check_level(level)
    _check_sizes(at)
    joint = joint_comparison(curves, form=form, n_boot=n_boot, seed=seed)
    return compare_joint(joint, at=at, level=level), joint.fits


def compare_table(path, x: str, y: str, group: str | None, at: Sequence[float] | None = None, form: str = AUTO,
                  n_boot: int = 200, seed: int = 0, level: float = LEVEL
                  ) -> tuple[dict[str, Any], dict[str, tuple], dict[str, CurveFit]]:
    """Compare the groups of a CSV (`analysis.table.read_curves`); returns the comparison, the
    points {group: (x, y)} and the fits it was computed from (for the plot)."""
    from analysis.table import read_curves

    if not group:
        raise ValueError("comparing curves from a CSV needs --group COL, the column that names them")
    curves = read_curves(path, x, y, group)
    if len(curves) < 2:
        raise ValueError(f"{path}: column {group!r} holds {len(curves)} group(s) "
                         f"({', '.join(map(str, curves))}); a comparison needs at least 2")
    result, fits = fit_and_compare(curves, at=at, form=form, n_boot=n_boot, seed=seed, level=level)
    return result, curves, fits


def compare_joint(joint: JointComparison, at: Sequence[float] | None = None, level: float = LEVEL) -> dict[str, Any]:
    """The comparison as a JSON-ready dict (module docstring; docs/cli.md has the schema):

    {"joint": {...}, "curves": [{"name", "form", "joint_model", "beta_g", "beta_g_interval", "floor", ...}],
     "at": [{"x", "errors": {name: {"y", "low", "high"}}, "best", "p_best", "p_best_by_model", ...}],
     "pairs": [{"a", "b", "joint_model", "exponents_differ", "exponent_test", "crossover_claimed",
                "crossover_x", "crossover_interval", "gap", ...}],
     "level", "exponent_level", "n_boot", "crossover_interval_method"}
    """
    _check_level(level)
    fits = joint.fits
    sizes = _sizes(fits, at)
    sel = joint.selection
    return {
        "joint": sel.to_dict(),
        "curves": [{**_curve_record(name, f), "joint_model": sel.chosen} for name, f in fits.items()],
        "at": [_joint_size_record(fits, sel, m, level) for m in sizes],
        "pairs": [_joint_pair_record(a, b, p, sizes, level) for (a, b), p in joint.pairs.items()],
        "level": level,   # of the per-size intervals and the crossover intervals
        "exponent_level": EXPONENT_CI,
        "n_boot": sel.fit.n_boot,
        "crossover_interval_method": "profile likelihood, F(1, N - p), of the chosen and the reference joint "
                                     "model, united",
    }


def compare_fits(fits: Mapping[str, CurveFit], at: Sequence[float] | None = None,
                 level: float = LEVEL) -> dict[str, Any]:
    """Curves fitted elsewhere, compared without their points (module docstring): the same record
    as `compare_joint` less ``joint``, with the pairs' test fields null and crossovers untested."""
    _check_names(fits)
    _check_level(level)
    sizes = _sizes(fits, at)
    n_draws = min(len(f.boot_params) for f in fits.values())
    return {
        "curves": [_curve_record(name, f) for name, f in fits.items()],
        "at": [_size_record(fits, m, level, _p_best_fits(fits, m, n_draws)) for m in sizes],
        "pairs": [_fits_pair_record(a, fits[a], b, fits[b], level, n_draws, sizes)
                  for a, b in itertools.combinations(fits, 2)],
        "level": level,
        "exponent_level": min(f.ci for f in fits.values()),
        "n_boot": n_draws,
        "crossover_interval_method": "bootstrap percentiles of the fits' crossing refits (untested)",
    }


def default_sizes(fits: Mapping[str, CurveFit]) -> list[float]:
    """m_c and 10 m_c, m_c = the largest size common to all curves (the smallest of their largest x):
    one size that every curve has data at, and one an order of magnitude beyond it."""
    m_common = min(f.x_range[1] for f in fits.values())
    return [m_common * k for k in DEFAULT_AT_FACTORS]


def exponents_overlap(a: CurveFit, b: CurveFit) -> bool | None:
    """The closed exponent intervals share a point; None when either has no interval (no bootstrap)."""
    return _overlap(a.intervals[a.exponent], b.intervals[b.exponent])


def _overlap(ia: tuple[float, float], ib: tuple[float, float]) -> bool | None:
    (a0, a1), (b0, b1) = ia, ib
    if not all(math.isfinite(v) for v in (a0, a1, b0, b1)):
        return None
    return max(a0, b0) <= min(a1, b1)


def curve_function(fit: CurveFit, params: Mapping[str, float] | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """x -> f(x) for the fit (or for one of its bootstrap refits' ``params``), without the
    extrapolation warning of `CurveFit.predict`: a crossover search looks far past the data on
    purpose, and says how far in its result."""
    est = fit.estimator   # the form that made the fit, as CurveFit.predict uses it
    p = dict(fit.params if params is None else params)
    return lambda x: est.curve(p, np.asarray(x, dtype=float))


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


def _curve_record(name: str, fit: CurveFit) -> dict[str, Any]:
    exp = fit.exponent
    return {"name": name, "form": fit.form, "beta_g": json_number(fit.params[exp]),
            "beta_g_interval": [json_number(v) for v in fit.intervals[exp]], "floor": json_number(fit.floor()),
            # the chosen joint model's own interval, as the exponent's (gamma is m2's floor; m1 has none)
            "floor_interval": [json_number(v) for v in fit.intervals.get("gamma", (math.nan, math.nan))],
            "x_range": [float(v) for v in fit.x_range], "n_points": int(fit.n_points), "n_boot": int(fit.n_boot)}


def _size_record(fits: Mapping[str, CurveFit], m: float, level: float, p_best: Callable[[str], float | None]
                 ) -> dict[str, Any]:
    errors = {}
    for name, fit in fits.items():
        est = predict_error(fit, m, level=level)
        errors[name] = {"y": json_number(est.value), "low": json_number(est.low), "high": json_number(est.high)}
    finite = {n: e["y"] for n, e in errors.items() if e["y"] is not None}
    best = min(finite, key=finite.get) if finite else None
    return {"x": float(m), "errors": errors, "best": best, "p_best": p_best(best) if best is not None else None,
            "extrapolated": [n for n, f in fits.items() if m > f.x_range[1]]}


def _joint_size_record(fits: Mapping[str, CurveFit], sel: JointSelection, m: float, level: float) -> dict[str, Any]:
    by_model: dict[str, float] = {}

    def p_best(best: str) -> float | None:
        """sum_j w_j p_j over the models with a bootstrap and a weight (module docstring)."""
        total = weight = 0.0
        weights = sel.weights or {sel.chosen: 1.0}   # no AICc anywhere (too few points): the chosen model
        for name, jf in sel.fits.items():
            w = weights.get(name, 0.0)
            if jf.n_boot == 0:
                continue
            preds = np.stack([_boot_predictions(lambda x, p, n=n: jf.curve(n, x, p), jf.boot_params[n][:jf.n_boot], m)
                              for n in jf.names])
            by_model[name] = _share_lowest(preds, list(jf.names), best)
            total += w * by_model[name]
            weight += w
        return total / weight if weight > 0 else None

    rec = _size_record(fits, m, level, p_best)
    rec["p_best_by_model"] = {k: json_number(v) for k, v in by_model.items()}
    return rec


def _p_best_fits(fits: Mapping[str, CurveFit], m: float, n_draws: int) -> Callable[[str], float | None]:
    """Fraction of paired draws i in which ``best``'s refit i is lowest at m."""
    def p_best(best: str) -> float | None:
        if n_draws == 0:
            return None
        preds = np.stack([_boot_predictions(lambda x, p, f=f: curve_function(f, p)(x), f.boot_params[:n_draws], m)
                          for f in fits.values()])
        return _share_lowest(preds, list(fits), best)
    return p_best


def _boot_predictions(curve: Callable[[np.ndarray, Mapping[str, float]], np.ndarray], draws, m: float) -> np.ndarray:
    """Each draw's prediction at m; a refit with no finite positive error there is never lowest."""
    x = np.array([float(m)])
    out = np.empty(len(draws))
    for i, p in enumerate(draws):
        with np.errstate(all="ignore"):
            v = float(curve(x, p)[0])
        out[i] = v if math.isfinite(v) and v > 0 else math.inf
    return out


def _share_lowest(preds: np.ndarray, names: list[str], best: str) -> float:
    """Share of the columns (draws) of ``preds`` (curves x draws) in which ``best`` is lowest."""
    return float(np.mean(np.argmin(preds, axis=0) == names.index(best)))


def _joint_pair_record(a: str, b: str, sel: JointSelection, sizes: Sequence[float], level: float) -> dict[str, Any]:
    jf = sel.fit
    st = sel.stack
    xa, xb = st.x(st.names.index(a)), st.x(st.names.index(b))
    lo, hi = max(xa[0], xb[0]), HORIZON_FACTOR * max(xa[-1], xb[-1])
    fa, fb = (lambda x: jf.curve(a, x)), (lambda x: jf.curve(b, x))
    found = crossovers(fa, fb, lo, hi)
    n_draws = jf.n_boot
    draws = zip(jf.boot_params.get(a, ())[:n_draws], jf.boot_params.get(b, ())[:n_draws])
    boot = _boot_crossings([(lambda x, p=pa: jf.curve(a, x, p), lambda x, p=pb: jf.curve(b, x, p)) for pa, pb in draws],
                           lo, hi)
    interval = joint_crossover_interval(sel, a, b, found[0], lo, hi, level) if found else (math.nan, math.nan)
    ref = sel.fits.get(sel.reference) if sel.reference else None
    overlap = None
    if ref is not None and ref.n_boot:
        beta = {n: _interval([p["beta_g"] for p in ref.boot_params[n]], EXPONENT_CI) for n in (a, b)}
        overlap = _overlap(beta[a], beta[b])
    test = sel.exponent_test
    return {
        "a": a, "b": b,
        "joint_model": sel.chosen, "joint_model_means": BY_NAME[sel.chosen].words,
        "exponents_differ": sel.exponents_differ,
        "exponent_test": test.to_dict(sel.level) if test else None,
        "crossover_claimed": bool(found),
        **_crossing_fields(a, fa, b, fb, found, interval, boot, n_draws, lo, hi),
        "gap": _gaps(a, fa, b, fb, sizes),
        "exponents_overlap": overlap,
        "exponent_form": jf.model.form,
    }


def _fits_pair_record(a: str, fa: CurveFit, b: str, fb: CurveFit, level: float, n_draws: int,
                      sizes: Sequence[float]) -> dict[str, Any]:
    lo = max(fa.x_range[0], fb.x_range[0])
    hi = HORIZON_FACTOR * max(fa.x_range[1], fb.x_range[1])
    ca, cb = curve_function(fa), curve_function(fb)
    found = crossovers(ca, cb, lo, hi)
    boot = _boot_crossings([(curve_function(fa, pa), curve_function(fb, pb))
                            for pa, pb in zip(fa.boot_params[:n_draws], fb.boot_params[:n_draws])], lo, hi)
    interval = rank_interval(boot, level) if boot else (math.nan, math.nan)
    # Exponents of different forms do not mean the same thing: no verdict then.
    comparable = fa.form == fb.form
    return {
        "a": a, "b": b,
        "joint_model": None, "joint_model_means": None, "exponents_differ": None, "exponent_test": None,
        "crossover_claimed": None,
        **_crossing_fields(a, ca, b, cb, found, interval, boot, n_draws, lo, hi),
        "gap": _gaps(a, ca, b, cb, sizes),
        "exponents_overlap": exponents_overlap(fa, fb) if comparable else None,
        "exponent_form": fa.form if comparable else None,
    }


def _boot_crossings(pairs: Sequence[tuple[Callable, Callable]], lo: float, hi: float) -> list[float]:
    """The first crossover of every bootstrap pair of curves that crosses in [lo, hi]."""
    out = []
    for ca, cb in pairs:
        c = crossovers(ca, cb, lo, hi)
        if c:
            out.append(c[0])
    return out


def _crossing_fields(a: str, fa: Callable, b: str, fb: Callable, found: list[float], interval: tuple[float, float],
                     boot: list[float], n_draws: int, lo: float, hi: float) -> dict[str, Any]:
    first = found[0] if found else None
    return {
        "crossover_x": first, "crossover_interval": [json_number(v) for v in interval],
        "n_boot_crossing": len(boot), "n_boot": n_draws, "crossovers": found,
        "lower_before": _lower(a, fa, b, fb, lo if first is None else first / _step()),
        "lower_after": _lower(a, fa, b, fb, first * _step()) if first is not None else None,
        "search_range": [float(lo), float(hi)],
    }


def _gaps(a: str, fa: Callable, b: str, fb: Callable, sizes: Sequence[float]) -> list[dict[str, Any]]:
    """At each comparison size: the lower curve and by how much, 100 (1 - f_lower / f_higher) %."""
    out = []
    for m in sizes:
        with np.errstate(all="ignore"):
            ya, yb = float(fa(np.array([m]))[0]), float(fb(np.array([m]))[0])
        ok = math.isfinite(ya) and math.isfinite(yb) and max(ya, yb) > 0
        out.append({"x": float(m), "lower": (a if ya < yb else b if yb < ya else None) if ok else None,
                    "percent": json_number(100.0 * (1.0 - min(ya, yb) / max(ya, yb))) if ok else None})
    return out


def _step() -> float:
    """One grid step of the crossover search, as a factor in m."""
    return 10.0 ** (1.0 / GRID_PER_DECADE)


def _lower(a: str, fa: Callable, b: str, fb: Callable, m: float) -> str | None:
    with np.errstate(all="ignore"):
        ya, yb = float(fa(np.array([m]))[0]), float(fb(np.array([m]))[0])
    if not (math.isfinite(ya) and math.isfinite(yb)) or ya == yb:
        return None
    return a if ya < yb else b


def _sizes(fits: Mapping[str, CurveFit], at: Sequence[float] | None) -> list[float]:
    _check_sizes(at)
    _check_overlap(fits)
    return list(default_sizes(fits) if at is None else at)


def _check_overlap(fits: Mapping[str, CurveFit]) -> None:
    """Curves are compared where they were all measured: some size must lie within every curve's
    sizes. Otherwise each is extrapolated to the others' sizes (before: one curve 125x below its
    smallest point, with p_best 1.00)."""
    low = max(fits.items(), key=lambda kv: kv[1].x_range[0])
    high = min(fits.items(), key=lambda kv: kv[1].x_range[1])
    if low[1].x_range[0] > high[1].x_range[1]:
        raise ValueError(f"the curves' sizes do not overlap: {high[0]} ends at {high[1].x_range[1]:.4g}, before "
                         f"{low[0]} starts at {low[1].x_range[0]:.4g}; a comparison needs a size both were measured at")


def _check_sizes(at: Sequence[float] | None) -> None:
    for m in at or ():
        if not (math.isfinite(m) and m > 0):
            raise ValueError(f"comparison sizes must be positive and finite, got {m}")


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")


def _check_names(curves: Mapping) -> None:
    if len(curves) < 2:
        raise ValueError(f"a comparison needs at least 2 curves, got {len(curves)}"
                         + (f" ({', '.join(map(str, curves))})" if curves else ""))


# ---------------------------------------------------------------------------------------------
# Human-readable summary
# ---------------------------------------------------------------------------------------------


def _floor(c: Mapping[str, Any]) -> str:
    """A curve's floor with its interval at the exponents' level; m1 has no floor term."""
    lo, hi = c.get("floor_interval") or (None, None)
    if c["form"] == "m1":
        return f"{_g(c['floor'])} (no floor term)"
    return f"{_g(c['floor'])} [{_g(lo)}, {_g(hi)}]" if lo is not None else _g(c["floor"])


def comparison_text(result: Mapping[str, Any]) -> str:
    """A few lines for the joint fit, per curve, per comparison size and per pair, for the terminal."""
    lines = _joint_lines(result["joint"]) if result.get("joint") else []
    exp_pct = f"{result['exponent_level']:.0%}"
    lines.append("curves:")
    for c in result["curves"]:
        lo, hi = c["beta_g_interval"]
        model = f" (joint model {c['joint_model']})" if c.get("joint_model") else ""
        lines.append(f"  {c['name']}: form {c['form']}{model}, beta_g {_g(c['beta_g'])} {exp_pct} "
                     f"[{_g(lo)}, {_g(hi)}], floor {_floor(c)}, "
                     f"{c['n_points']} points up to m = {_g(c['x_range'][1])}")
    over = " over the joint models and their bootstrap refits" if result.get("joint") else ""
    lines.append(f"predicted error ({result['level']:.0%} predictive intervals; p_best{over}):")
    for a in result["at"]:
        errs = "   ".join(f"{n} {_g(e['y'])} [{_g(e['low'])}, {_g(e['high'])}]" for n, e in a["errors"].items())
        far = " (extrapolated)" if a.get("extrapolated") else ""
        p = f", p_best {a['p_best']:.2f}" if a["p_best"] is not None else ""
        lines.append(f"  at m = {_g(a['x'])}{far}: {errs}")
        lines.append(f"    best: {a['best']}{p}")
    lines.append("pairs:")
    for p in result["pairs"]:
        lines += _pair_lines(p, result["level"], exp_pct)
    return "\n".join(lines)


def _joint_lines(j: Mapping[str, Any]) -> list[str]:
    forms = " and ".join(sorted({m["form"] for m in j["models"]}))
    how = (f"F-test of each model against {j['reference']}, rejected at p < {j['test_level']:g}" if j["reference"]
           else "too few points for any F-test: the simplest model is used")
    lines = [f"joint fits in {forms} (least squares on log error; {how}):"]
    tests = {t["model"]: t for t in j["tests"]}
    for m in j["models"]:
        t = tests.get(m["name"])
        test = (f"F = {_g(t['statistic'])} on ({t['df'][0]}, {t['df'][1]}) df, p = {_p(t['p_value'])}"
                + (", rejected" if t["rejected"] else "")) if t else (
            "reference" if m["name"] == j["reference"] else "not tested: too few points")
        mark = "   <- chosen" if m["name"] == j["chosen"] else ""
        lines.append(f"  {m['name']:<9} {m['means']:<27} {test}; weight {m['weight']:.2f}{mark}")
    return lines


def _pair_lines(p: Mapping[str, Any], level: float, exp_pct: str) -> list[str]:
    a, b = p["a"], p["b"]
    draws = f"{p['n_boot_crossing']}/{p['n_boot']} bootstrap draws cross"
    cross = None
    if p["crossover_x"] is not None:
        lo, hi = p["crossover_interval"]
        cross = (f"cross at m = {_g(p['crossover_x'])} [{level:.0%} {_g(lo)}, {_g(hi)}]; "
                 f"{p['lower_before']} lower before, {p['lower_after']} after")
        if len(p["crossovers"]) > 1:
            cross += f"; they cross again at m = {', '.join(_g(v) for v in p['crossovers'][1:])}"
    gaps = " and ".join(f"{g['percent']:.3g}% at m = {_g(g['x'])}" for g in p["gap"] if g["percent"] is not None)
    lower = p["lower_before"]
    if p["joint_model"] is None:   # curves fitted elsewhere: nothing tested
        head = f"  {a} vs {b} (untested: no joint fit): " + (
            cross or f"no crossover up to m = {_g(p['search_range'][1])}; {lower or 'no order'} lower throughout")
        ov = p["exponents_overlap"]
        return [head + f" ({draws})", "    exponents: " + (
            "not compared (different forms, or no bootstrap)" if ov is None else
            f"{exp_pct} intervals {'overlap' if ov else 'are disjoint'} ({p['exponent_form']})")]
    t = p["exponent_test"]
    if p["exponents_differ"] is None:
        verdict = "too few points to test a shared exponent"
    elif p["exponents_differ"]:
        verdict = f"exponents differ (p = {_p(t['p_value'])})"
    else:
        verdict = f"shared exponent not rejected (p = {_p(t['p_value'])})"
    if cross:
        body = cross
    elif BY_NAME[p["joint_model"]].shared_exponent and BY_NAME[p["joint_model"]].floor != "free":
        body = f"{lower} is lower at every size" + (f", by {gaps}" if gaps else "")
    else:
        body = f"no crossover up to m = {_g(p['search_range'][1])}; {lower} is lower throughout" + (
            f", by {gaps}" if gaps else "")
    shown = p["n_boot"] and (cross or p["n_boot_crossing"])   # "0/200 draws cross" says nothing new
    tail = f"    joint model {p['joint_model']} ({p['joint_model_means']})" + (f"; {draws}" if shown else "")
    return [f"  {a} vs {b}: {verdict}: {body}", tail]


def _g(v) -> str:
    """A number of a record: None is "-", an infinite one ("inf", `analysis.jsonsafe`) as it is."""
    return "-" if v is None else (v if isinstance(v, str) else f"{v:.4g}")


def _p(v) -> str:
    """A p-value: two significant digits, small ones in e-notation."""
    return "-" if v is None else (f"{v:.2g}" if v >= 1e-3 else f"{v:.1e}")

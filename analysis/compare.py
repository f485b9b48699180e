"""Comparing learning curves: is architecture B better than A, and from what size on?

Hestness et al. (2017, section 5) find that a better model family lowers the learning curve
eps(m) = alpha * m**beta_g (+ gamma) by its offset alpha and leaves the exponent beta_g alone. Two
power laws with one exponent never cross; two whose exponents differ cross once, and which one
is better then depends on how much data there is (floors add a crossing or take one away). For named curves this module reports:

- per curve: the form, the exponent beta_g with its interval (the fits' ci, 95%) and the floor;
- per comparison size m (default: the largest size every curve reaches, m_c = min_k max x_k, and
  10 m_c): each curve's predicted error with its `LEVEL` predictive interval (for a new
  measurement there, `analysis.plan.predict_error`),
  the best curve (lowest predicted error) and the probability that it is best,

      p_best(m) = (1/B) * #{i : argmin_k f_k^(i)(m) = best},

  over B paired bootstrap draws, f_k^(i) being curve k's i-th bootstrap refit. The curves are
  fitted to separate data with separately seeded bootstraps, so draw i of one curve and draw i of
  another are independent, and pairing them samples the joint distribution;
- per pair (a, b): the crossover, the first m where the sign of

      h(m) = log f_a(m) - log f_b(m)

  changes, searched on a log grid from the pair's smallest common m to `HORIZON_FACTOR` times
  its largest m and refined with `scipy.optimize.brentq`; null when h keeps its sign that far. Its
  interval: nearest-rank percentiles of the crossovers of the bootstrap pairs that cross (how
  many do is reported, the rest do not cross within the horizon). And whether the exponents'
  intervals overlap: the paper's claim predicts they do. Forms mean different things by beta_g
  (m3's saturates, bnsl's is the slope after a break), so when ``auto`` picks different forms
  for the curves, the exponents are compared in one form, `EXPONENT_FORM`, refitted to each.

Run it from the command line with ``scal compare`` (`scal.cli`); `analysis.compare_plot` draws it.
"""

from __future__ import annotations

import itertools
import logging
import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy.optimize import brentq

from analysis.fit import CurveFit, FitError, rank_interval
from analysis.jsonsafe import json_number
from analysis.plan import predict_error
from analysis.select import AUTO, Selection, fit_curve

log = logging.getLogger(__name__)

LEVEL = 0.9                  # nominal coverage of the per-size predictive intervals and the crossover interval
DEFAULT_AT_FACTORS = (1.0, 10.0)   # default comparison sizes, as multiples of the largest common size
HORIZON_FACTOR = 1000.0      # crossovers are searched up to this factor beyond the pair's largest size
GRID_PER_DECADE = 40         # log-grid density of the sign-change search (a bracket is 6% wide)
BRENTQ_XTOL_LOG = 1e-8       # brentq's tolerance in log m
# The form exponents are compared in when the curves' own forms differ: the paper's, whose floor
# keeps an approaching irreducible error out of the exponent (m1 would mix it in).
EXPONENT_FORM = "m2"


def fit_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], form: str = AUTO,
               n_boot: int = 200, seed: int = 0, holdout: int | None = None) -> dict[str, Selection]:
    """Fit every named curve (x, y) with `analysis.select.fit_curve`. Curve k's bootstrap gets
    seed + k, so the curves' resamples are independent (the pairing in `p_best` relies on it)."""
    out = {}
    for k, (name, (x, y)) in enumerate(curves.items()):
        try:
            out[name] = fit_curve(x, y, form=form, holdout=holdout, n_boot=n_boot, seed=seed + k)
        except FitError as exc:
            raise FitError(f"curve {name!r}: {exc}") from None
    return out


def compare_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], at: Sequence[float] | None = None,
                   form: str = AUTO, n_boot: int = 200, seed: int = 0, holdout: int | None = None,
                   level: float = LEVEL) -> dict[str, Any]:
    """Fit the named curves {name: (x, y)} and compare them (`compare_fits`)."""
    return fit_and_compare(curves, at=at, form=form, n_boot=n_boot, seed=seed, holdout=holdout, level=level)[0]


def fit_and_compare(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], at: Sequence[float] | None = None,
                    form: str = AUTO, n_boot: int = 200, seed: int = 0, holdout: int | None = None,
                    level: float = LEVEL) -> tuple[dict[str, Any], dict[str, CurveFit]]:
    """`compare_curves`, and the fits it compared (to plot them)."""
    _check_names(curves)
    fits = {name: s.fit for name, s in fit_curves(curves, form=form, n_boot=n_boot, seed=seed, holdout=holdout).items()}
    seeds = {name: seed + k for k, name in enumerate(curves)}

    def refit(name: str) -> CurveFit:
        return fit_curve(*curves[name], form=EXPONENT_FORM, n_boot=n_boot, seed=seeds[name]).fit

    return compare_fits(fits, at=at, level=level, exponent_fits=exponent_refits(fits, refit)), fits


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


def exponent_refits(fits: Mapping[str, CurveFit], refit: Callable[[str], CurveFit]) -> dict[str, CurveFit] | None:
    """The fits to compare exponents with: None (the fits themselves) when they share one form;
    else every curve in `EXPONENT_FORM`, ``refit(name)`` for those fitted in another form. A
    curve that cannot be refitted (too few points) is left out, and its comparisons say None."""
    if same_form(fits):
        return None
    out = {}
    for name, fit in fits.items():
        if fit.form == EXPONENT_FORM:
            out[name] = fit
            continue
        try:
            out[name] = refit(name)
        except FitError as exc:
            log.warning("curve %s: no %s fit to compare its exponent (%s)", name, EXPONENT_FORM, exc)
    return out


def same_form(fits: Mapping[str, CurveFit]) -> bool:
    return len({f.form for f in fits.values()}) == 1


def compare_fits(fits: Mapping[str, CurveFit], at: Sequence[float] | None = None, level: float = LEVEL,
                 exponent_fits: Mapping[str, CurveFit] | None = None) -> dict[str, Any]:
    """The comparison of fitted curves as a JSON-ready dict (module docstring):

    {"curves": [{"name", "form", "beta_g", "beta_g_interval", "floor", ...}],
     "at": [{"x", "errors": {name: {"y", "low", "high"}}, "best", "p_best", ...}],
     "pairs": [{"a", "b", "crossover_x", "crossover_interval", "exponents_overlap", ...}],
     "level", "exponent_level", "n_boot"}

    Non-finite numbers are None. ``at`` defaults to `default_sizes`. ``exponent_fits``: the
    same curves fitted in one form (`EXPONENT_FORM`), for comparing exponents when the curves'
    forms differ; a curve missing from it has no exponent comparison (None). Without it the
    curves' own fits are compared, where two curves share a form (None where they do not).
    """
    _check_names(fits)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    sizes = list(default_sizes(fits) if at is None else at)
    for m in sizes:
        if not (math.isfinite(m) and m > 0):
            raise ValueError(f"comparison sizes must be positive and finite, got {m}")
    n_draws = min(len(f.boot_params) for f in fits.values())
    exps = dict(fits if exponent_fits is None else exponent_fits)
    return {
        "curves": [_curve_record(name, f, exps.get(name)) for name, f in fits.items()],
        "at": [_size_record(fits, m, level, n_draws) for m in sizes],
        "pairs": [_pair_record(a, fits[a], b, fits[b], level, n_draws, exps.get(a), exps.get(b))
                  for a, b in itertools.combinations(fits, 2)],
        "level": level,   # of the per-size intervals and the crossover intervals
        "exponent_level": min(f.ci for f in fits.values()),
        "n_boot": n_draws,
    }


def default_sizes(fits: Mapping[str, CurveFit]) -> list[float]:
    """m_c and 10 m_c, m_c = the largest size common to all curves (the smallest of their largest x):
    one size that every curve has data at, and one an order of magnitude beyond it."""
    m_common = min(f.x_range[1] for f in fits.values())
    return [m_common * k for k in DEFAULT_AT_FACTORS]


def exponents_overlap(a: CurveFit, b: CurveFit) -> bool | None:
    """The closed exponent intervals share a point; None when either has no interval (no bootstrap)."""
    (a0, a1), (b0, b1) = a.intervals[a.exponent], b.intervals[b.exponent]
    if not all(math.isfinite(v) for v in (a0, a1, b0, b1)):
        return None
    return max(a0, b0) <= min(a1, b1)


def crossovers(curve_a: Callable[[np.ndarray], np.ndarray], curve_b: Callable[[np.ndarray], np.ndarray],
               lo: float, hi: float) -> list[float]:
    """Every m in [lo, hi] where log f_a - log f_b changes sign, ascending.

    The sign is read on a log grid of `GRID_PER_DECADE` points per decade; each bracket with
    opposite signs at its ends is refined with brentq in log m. Points where either curve is not
    positive and finite, and exact ties, carry no sign and are skipped, so two identical curves
    never cross. Two crossings closer than one grid step are missed (both, not one).
    """
    n = max(2, int(math.ceil(GRID_PER_DECADE * math.log10(hi / lo))) + 1)
    log_grid = np.linspace(math.log(lo), math.log(hi), n)

    def gap(log_m):
        x = np.exp(np.atleast_1d(log_m))
        with np.errstate(all="ignore"):
            return np.log(curve_a(x)) - np.log(curve_b(x))

    h = gap(log_grid)
    signed = np.flatnonzero(np.isfinite(h) & (h != 0))
    out = []
    for i, j in zip(signed[:-1], signed[1:]):
        if np.sign(h[i]) != np.sign(h[j]):
            root = brentq(lambda t: float(gap(t)[0]), log_grid[i], log_grid[j], xtol=BRENTQ_XTOL_LOG)
            out.append(math.exp(root))
    return out


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


def _curve_record(name: str, fit: CurveFit, exponent_fit: CurveFit | None) -> dict[str, Any]:
    rec = {"name": name, "form": fit.form, **_exponent(fit), "floor": json_number(fit.floor()),
           "x_range": [float(v) for v in fit.x_range], "n_points": int(fit.n_points), "n_boot": int(fit.n_boot)}
    if exponent_fit is not fit:   # the common-form refit the exponents are compared in (or None)
        rec["exponent_fit"] = {"form": exponent_fit.form, **_exponent(exponent_fit)} if exponent_fit else None
    return rec


def _exponent(fit: CurveFit) -> dict[str, Any]:
    exp = fit.exponent
    return {"beta_g": json_number(fit.params[exp]), "beta_g_interval": [json_number(v) for v in fit.intervals[exp]]}


def _size_record(fits: Mapping[str, CurveFit], m: float, level: float, n_draws: int) -> dict[str, Any]:
    errors = {}
    for name, fit in fits.items():
        est = predict_error(fit, m, level=level)
        errors[name] = {"y": json_number(est.value), "low": json_number(est.low), "high": json_number(est.high)}
    finite = {n: e["y"] for n, e in errors.items() if e["y"] is not None}
    best = min(finite, key=finite.get) if finite else None
    return {"x": float(m), "errors": errors, "best": best,
            "p_best": _p_best(fits, m, best, n_draws) if best is not None else None,
            "extrapolated": [n for n, f in fits.items() if m > f.x_range[1]]}


def _p_best(fits: Mapping[str, CurveFit], m: float, best: str, n_draws: int) -> float | None:
    """Fraction of paired draws i in which ``best``'s refit i is lowest at m (module docstring).
    A refit that predicts no finite positive error there is never lowest."""
    if n_draws == 0:
        return None
    x = np.array([float(m)])
    names = list(fits)
    preds = np.empty((len(names), n_draws))
    for k, name in enumerate(names):
        fit = fits[name]
        for i, p in enumerate(fit.boot_params[:n_draws]):
            with np.errstate(all="ignore"):
                v = float(curve_function(fit, p)(x)[0])
            preds[k, i] = v if math.isfinite(v) and v > 0 else math.inf
    winners = np.argmin(preds, axis=0)
    return float(np.mean(winners == names.index(best)))


def _pair_record(a: str, fa: CurveFit, b: str, fb: CurveFit, level: float, n_draws: int,
                 ea: CurveFit | None, eb: CurveFit | None) -> dict[str, Any]:
    lo = max(fa.x_range[0], fb.x_range[0])
    hi = HORIZON_FACTOR * max(fa.x_range[1], fb.x_range[1])
    found = crossovers(curve_function(fa), curve_function(fb), lo, hi)
    first = found[0] if found else None
    boot = []
    for pa, pb in zip(fa.boot_params[:n_draws], fb.boot_params[:n_draws]):
        c = crossovers(curve_function(fa, pa), curve_function(fb, pb), lo, hi)
        if c:
            boot.append(c[0])
    interval = rank_interval(boot, level) if boot else (math.nan, math.nan)
    comparable = ea is not None and eb is not None and ea.form == eb.form
    return {
        "a": a, "b": b,
        "crossover_x": first, "crossover_interval": [json_number(v) for v in interval],
        "n_boot_crossing": len(boot), "n_boot": n_draws, "crossovers": found,
        "lower_before": _lower(a, fa, b, fb, lo if first is None else first / _step()),
        "lower_after": _lower(a, fa, b, fb, first * _step()) if first is not None else None,
        "search_range": [float(lo), float(hi)],
        # Exponents of different forms do not mean the same thing: no verdict then.
        "exponents_overlap": exponents_overlap(ea, eb) if comparable else None,
        "exponent_form": ea.form if comparable else None,
    }


def _step() -> float:
    """One grid step of the crossover search, as a factor in m."""
    return 10.0 ** (1.0 / GRID_PER_DECADE)


def _lower(a: str, fa: CurveFit, b: str, fb: CurveFit, m: float) -> str | None:
    with np.errstate(all="ignore"):
        ya, yb = float(curve_function(fa)([m])[0]), float(curve_function(fb)([m])[0])
    if not (math.isfinite(ya) and math.isfinite(yb)) or ya == yb:
        return None
    return a if ya < yb else b


def _check_names(curves: Mapping) -> None:
    if len(curves) < 2:
        raise ValueError(f"a comparison needs at least 2 curves, got {len(curves)}"
                         + (f" ({', '.join(map(str, curves))})" if curves else ""))


# ---------------------------------------------------------------------------------------------
# Human-readable summary
# ---------------------------------------------------------------------------------------------


def comparison_text(result: Mapping[str, Any]) -> str:
    """A few lines per curve, per comparison size and per pair, for the terminal."""
    exp_pct = f"{result['exponent_level']:.0%}"
    lines = ["curves:"]
    for c in result["curves"]:
        lo, hi = c["beta_g_interval"]
        lines.append(f"  {c['name']}: form {c['form']}, beta_g {_g(c['beta_g'])} {exp_pct} [{_g(lo)}, {_g(hi)}], "
                     f"floor {_g(c['floor'])}, {c['n_points']} points up to m = {_g(c['x_range'][1])}")
        e = c.get("exponent_fit", "absent")
        if e is None:
            lines.append(f"    (no {EXPONENT_FORM} refit to compare its exponent with the others)")
        elif e != "absent":
            lines.append(f"    in {e['form']} (for comparing exponents): beta_g {_g(e['beta_g'])} "
                         f"[{_g(e['beta_g_interval'][0])}, {_g(e['beta_g_interval'][1])}]")
    lines.append(f"predicted error ({result['level']:.0%} predictive intervals):")
    for a in result["at"]:
        errs = "   ".join(f"{n} {_g(e['y'])} [{_g(e['low'])}, {_g(e['high'])}]" for n, e in a["errors"].items())
        far = " (extrapolated)" if a.get("extrapolated") else ""
        p = f", p_best {a['p_best']:.2f}" if a["p_best"] is not None else ""
        lines.append(f"  at m = {_g(a['x'])}{far}: {errs}")
        lines.append(f"    best: {a['best']}{p}")
    lines.append("pairs:")
    for p in result["pairs"]:
        a, b = p["a"], p["b"]
        draws = f"{p['n_boot_crossing']}/{p['n_boot']} bootstrap draws cross"
        if p["crossover_x"] is None:
            lower = f"{p['lower_before']} lower throughout" if p["lower_before"] else "no order"
            head = (f"  {a} vs {b}: no crossover up to m = {_g(p['search_range'][1])}; {lower} ({draws})")
        else:
            lo, hi = p["crossover_interval"]
            head = (f"  {a} vs {b}: cross at m = {_g(p['crossover_x'])} {result['level']:.0%} "
                    f"[{_g(lo)}, {_g(hi)}] ({draws}); {p['lower_before']} lower before, {p['lower_after']} after")
            if len(p["crossovers"]) > 1:
                head += f"; they cross again at m = {', '.join(_g(v) for v in p['crossovers'][1:])}"
        lines.append(head)
        ov = p["exponents_overlap"]
        lines.append("    exponents: " + ("not compared (different forms, or no bootstrap)" if ov is None else
                                          f"{exp_pct} intervals {'overlap' if ov else 'are disjoint'} ({p['exponent_form']})"))
    return "\n".join(lines)


def _g(v) -> str:
    """A number of a record: None is "-", an infinite one ("inf", `analysis.jsonsafe`) as it is."""
    return "-" if v is None else (v if isinstance(v, str) else f"{v:.4g}")

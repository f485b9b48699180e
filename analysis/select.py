"""Choosing a curve form by how well it extrapolates, and fitting with a held-out check.

``form=auto`` fits every candidate form on all but the largest k points and scores it by the RMSE
of log error on those k held-out points,

    rmse_k = sqrt(mean over held-out i of (log f(x_i) - log y_i)**2).

Without an explicit ``holdout`` it does this for several horizons, k in {n//5, n//4, n//3}
(distinct values, each at least 1 and leaving at least 4 points) plus n//2 when the other half
still holds enough points for every candidate form, and scores each form by the geometric mean of
its rmse_k: one split is a noisy judge of extrapolation. On the published curves of Alabdulmohsin
et al. (benchmarks/extrapolation.py) the mean over horizons picked better forms than any single
horizon, and adding the longest one (half the points) helped most on long curves, whose test
points lie far beyond the training range. Those curves were also used to choose this rule, so
the benchmark flatters it somewhat. The lowest score wins (ties, within a relative 1e-6: fewer
parameters) and the winner is refitted on all points. A form that needs more points than a split
leaves is not a candidate. With a named form and ``holdout`` = k the held-out score is reported
for that form alone.

Every form is fitted only where it leaves a degree of freedom for the scatter: on at least one
point more than it has parameters (m1 on 3, m2 and m3 on 4, m4 on 6, bnsl on 7). With fewer than
4 points nothing can be held out, and auto takes the simplest form that fits (m1) and says so.

The held-out scores also weigh the candidate forms for the predictive interval: every form with
a finite score is fitted to all points too, with weight w_k proportional to 1 / score_k**2
(inverse held-out mean squared log error), and the forms' disagreement, weighted so, is part of
the interval (`analysis.fit.CurveFit.interval`). A named form gets the same weights (the
candidates are scored at the default horizons for it), because naming a form does not make the
others wrong.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from analysis.fit import CurveFit, FitError, validate
from analysis.forms import LEARNING_FORMS, make_form
from analysis.jsonsafe import json_number

log = logging.getLogger(__name__)

AUTO = "auto"
FALLBACK = "m1"   # auto's choice when there are too few points to hold any out: the simplest form


# Held-out scores this close (relative) are a tie, won by the form with fewer parameters.
TIE_RTOL = 1e-6
HOLDOUT_DIVISORS = (5, 4, 3)
LONGEST_DIVISOR = 2


def default_holdouts(n_points: int, min_fit: int = 4) -> tuple[int, ...]:
    """The horizons ``auto`` scores when none is asked for: n//5, n//4, n//3 points, each at
    least 1 and never so many that fewer than 4 remain to fit on; and n//2 when the other half
    holds at least ``min_fit`` points (the most any candidate form needs), so the longest
    horizon never removes a form from the choice."""
    ks = {max(1, min(n_points // d, n_points - 4)) for d in HOLDOUT_DIVISORS}
    half = n_points // LONGEST_DIVISOR
    if half >= 1 and n_points - half >= max(min_fit, 4):
        ks.add(half)
    return tuple(sorted(ks))


@dataclass(frozen=True)
class Selection:
    """The fit on all points, the form it uses, and every candidate's held-out score.

    ``holdout`` is the shortest k (0 = no held-out check) and ``splits`` every k scored.
    ``scores`` maps form -> holdout_rmse_log, the geometric mean of its rmse_k over the splits
    (inf when the form could not be fitted or predicted a non-positive error); ``skipped`` maps
    form -> why it was not a candidate.
    """

    fit: CurveFit
    form: str
    requested: str
    holdout: int
    scores: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    holdout_fits: dict[str, CurveFit] = field(default_factory=dict, repr=False, compare=False)
    splits: tuple[int, ...] = ()

    @property
    def holdout_rmse_log(self) -> float | None:
        return self.scores.get(self.form) if self.holdout else None

    def to_dict(self) -> dict:
        return {"form": self.form, "requested": self.requested, "holdout": self.holdout, "splits": list(self.splits),
                "holdout_rmse_log": json_number(self.holdout_rmse_log),
                "holdout_rmse_log_by_form": {k: json_number(v) for k, v in self.scores.items()},
                "skipped_forms": dict(self.skipped), "fit": self.fit.to_dict()}


def holdout_errors(form: str, x: np.ndarray, y: np.ndarray, k: int, **settings) -> tuple[np.ndarray, CurveFit]:
    """Fit ``form`` on all but the largest k points (no bootstrap); the log errors at the k held
    out, log f(x_j) - log y_j (inf where the prediction is not positive), and the fit."""
    est = make_form(form, **{**settings, "n_boot": 0})
    fit = est.fit(x[:-k], y[:-k])
    with np.errstate(all="ignore"):
        pred = fit.predict(x[-k:], warn=False)
    ok = np.isfinite(pred) & (pred > 0)
    return np.where(ok, np.log(np.where(ok, pred, 1.0)) - np.log(y[-k:]), np.inf), fit


def fit_curve(x, y, form: str = AUTO, holdout: int | None = None, y_seeds: Sequence[Sequence[float]] | None = None,
              candidates: Sequence[str] = tuple(LEARNING_FORMS), **settings) -> Selection:
    """Fit a learning curve with ``form`` (a name from `analysis.forms.FORMS`, or ``auto``).

    ``holdout`` k: auto chooses on the largest k points (default: several horizons,
    `default_holdouts`); a named form reports its held-out score when k is given. ``settings``
    go to every form's constructor (loss, f_scale, n_boot, seed, ci). The fit carries the
    candidate forms and their weights for its predictive interval (module docstring).
    """
    xa, ya = validate(x, y)
    if y_seeds is not None:
        order = np.argsort(np.asarray(x, dtype=float).ravel())
        y_seeds = [y_seeds[i] for i in order]
    n = xa.size
    if form != AUTO:
        make_form(form).check_points(n)   # unknown names and too few points fail here, before any fitting
    if holdout is not None and holdout < 0:
        raise FitError(f"--holdout must be >= 0, got {holdout}")
    if form == AUTO and holdout == 0:
        raise FitError("form auto chooses by held-out error: --holdout must be at least 1")
    usable = [c for c in candidates if make_form(c).min_points <= n]
    min_fit = max(make_form(c).min_points for c in candidates)
    defaults = default_holdouts(n, min_fit) if n - 1 >= make_form(FALLBACK).min_points else ()
    if holdout:
        if n - holdout < 3:
            raise FitError(f"holding out {holdout} of {n} points leaves {n - holdout}; a fit needs at least 3")
        ks: tuple[int, ...] = (holdout,)
    else:
        ks = defaults
    skipped: dict[str, str] = {c: f"needs {make_form(c).min_points} points to fit, got {n}"
                               for c in candidates if c not in usable}

    # Every usable candidate is scored: auto chooses by the scores, and they weigh the forms in
    # the predictive interval whatever the choice.
    weight_ks = ks if form == AUTO else defaults
    scores, held, score_skips = _score(usable, xa, ya, weight_ks, **settings)
    if form == AUTO:
        skipped.update(score_skips)
        finite = {f: v for f, v in scores.items() if math.isfinite(v)}
        if not ks:
            chosen = FALLBACK
            skipped["auto"] = f"{n} points leave none to hold out; used {FALLBACK}, the simplest form"
        elif not finite:
            raise FitError(f"no curve form could be fitted to {n - min(ks)} points and predict the {min(ks)} held out")
        else:
            # Candidates are in order of increasing complexity: the first within TIE_RTOL of the
            # best wins. Forms that collapse onto a simpler one (m2 with gamma = 0 is m1) score
            # the same up to the optimiser's last digits, which must not decide between them.
            best = min(finite.values())
            chosen = next(f for f, v in finite.items() if v <= best * (1.0 + TIE_RTOL))
        reported, k = scores, (min(ks) if ks else 0)
    else:
        chosen = form
        reported, k, held = {}, holdout or 0, {}   # the other forms' scores only weigh the interval
        if holdout:
            own, own_held, own_skip = _score([form], xa, ya, (holdout,), **settings)
            if own_skip:
                raise FitError(f"form {form} {own_skip[form]}")
            reported, held = own, own_held
    est = make_form(chosen, **settings)
    full = est.fit(xa, ya, y_seeds=y_seeds)
    full = dataclasses.replace(full, alternatives=_alternatives(chosen, full, scores, xa, ya, **settings))
    return Selection(fit=full, form=chosen, requested=form, holdout=k, scores=reported, skipped=skipped,
                     holdout_fits=held, splits=ks if form == AUTO else ((holdout,) if holdout else ()))


def _score(names: Sequence[str], x: np.ndarray, y: np.ndarray, ks: Sequence[int], **settings
           ) -> tuple[dict[str, float], dict[str, CurveFit], dict[str, str]]:
    """Each form's held-out score over the horizons ``ks`` (geometric mean of rmse_k; inf when a
    split cannot be fitted or predicts a non-positive error), its fit at the shortest horizon,
    and why a form was not scored (it needs more points than the longest split leaves)."""
    scores: dict[str, float] = {}
    held: dict[str, CurveFit] = {}
    skipped: dict[str, str] = {}
    if not ks:
        return scores, held, skipped
    k_min, k_max = min(ks), max(ks)
    for name in names:
        est = make_form(name)
        if x.size - k_max < est.min_points:
            skipped[name] = f"needs {est.min_points} points to fit, {x.size - k_max} before the held-out ones"
            continue
        rmses = []
        for kk in ks:
            try:
                err, f = holdout_errors(name, x, y, kk, **settings)
                r = float(np.sqrt(np.mean(err**2))) if np.all(np.isfinite(err)) else math.inf
            except FitError as exc:
                r, f = math.inf, None
                log.debug("form %s failed on the %d-point held-out split: %s", name, kk, exc)
            rmses.append(r)
            if kk == k_min and f is not None:
                held[name] = f
        # Geometric mean; a zero error (exact data) must not make the log blow up.
        scores[name] = (math.inf if not all(map(math.isfinite, rmses))
                        else float(np.exp(np.mean(np.log(np.maximum(rmses, 1e-300))))))
    return scores, held, skipped


def _alternatives(chosen: str, fit: CurveFit, scores: dict[str, float], x: np.ndarray, y: np.ndarray,
                  **settings) -> tuple:
    """(weight, form, params) of every form with a finite held-out score, fitted to all points,
    w_k ~ 1 / score_k**2 (the chosen form's entry is ``fit`` itself, weighted as the best form
    when it has no score of its own); just the chosen form when no form was scored."""
    finite = {f: v for f, v in scores.items() if math.isfinite(v)}
    if not finite:
        return ((1.0, fit.estimator, dict(fit.params)),)
    raw = {f: 1.0 / max(v, 1e-12) ** 2 for f, v in finite.items()}
    # A named form that could not be scored counts as much as the best-scored one.
    raw.setdefault(chosen, max(raw.values()))
    out = []
    for name, w in raw.items():
        if name == chosen:
            out.append((w, fit.estimator, dict(fit.params)))
            continue
        est = make_form(name, **{**settings, "n_boot": 0})
        try:
            other = est.fit(x, y)
        except FitError as exc:
            log.debug("form %s could not be fitted to all points for the interval: %s", name, exc)
            continue
        out.append((w, est, dict(other.params)))
    total = sum(w for w, _, _ in out)
    return tuple((w / total, e, p) for w, e, p in out)

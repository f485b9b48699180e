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

The held-out errors of the chosen form at the default horizons also set how fast its predictive
intervals widen beyond the data (`extrapolation_growth`, used by `analysis.fit.CurveFit.interval`);
with a named form, or an explicit ``holdout``, those few fits (no bootstrap) are made for it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from analysis.fit import CurveFit, FitError, extrapolation_distance, validate
from analysis.forms import LEARNING_FORMS, make_form
from analysis.jsonsafe import json_number

log = logging.getLogger(__name__)

AUTO = "auto"
FALLBACK = "m2"   # auto's choice when there are too few points to hold any out


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


def extrapolation_growth(x: np.ndarray, errors: dict[int, np.ndarray], sigma: float) -> tuple[float, int]:
    """(c, nu): how fast a prediction's log error grows beyond the fitted range, and from how
    many held-out horizons that was measured.

    Each held-out point j of horizon k (fitted on x[:-k]) has log error e_j at distance d_j =
    `analysis.fit.extrapolation_distance` from that fit's range. Its expected square is the noise
    plus the extrapolation error, taken to grow linearly in distance,

        E e_j**2 = sigma**2 + c**2 d_j,

    i.e. an error whose spread grows like sqrt(d): a true curve that drifts away from any fixed
    form as a random walk in log x would, and what the held-out errors of these forms show (on
    the 92 published training sets of benchmarks/extrapolation.py, |e| / d falls from 0.17 at
    d ~ 0.03 to 0.07 at d ~ 0.5, where a linear growth would keep it constant). c**2 is the
    least-squares slope through the origin of e_j**2 - sigma**2 on d_j, over every horizon at
    once, clipped at 0; non-finite errors are left out. The horizons are few and their errors
    share most points, so nu (the number of horizons) sets the Student-t widening that
    `analysis.fit.CurveFit.interval` applies to c. (0, 0) without held-out points.
    """
    d_all, e_all = [], []
    for k, err in errors.items():
        err = np.asarray(err, dtype=float)
        if not np.any(np.isfinite(err)):
            continue
        d_all.append(extrapolation_distance(x[-k:], (float(x[0]), float(x[-k - 1]))))
        e_all.append(err)
    if not d_all or not math.isfinite(sigma):
        return 0.0, 0
    d, e = np.concatenate(d_all), np.concatenate(e_all)
    ok = np.isfinite(e) & np.isfinite(d)
    d, e = d[ok], e[ok]
    den = float(np.sum(d**2))
    if den <= 0:
        return 0.0, 0
    return math.sqrt(max(0.0, float(np.sum(d * (e**2 - sigma**2))) / den)), len(d_all)


def fit_curve(x, y, form: str = AUTO, holdout: int | None = None, y_seeds: Sequence[Sequence[float]] | None = None,
              candidates: Sequence[str] = tuple(LEARNING_FORMS), **settings) -> Selection:
    """Fit a learning curve with ``form`` (a name from `analysis.forms.FORMS`, or ``auto``).

    ``holdout`` k: auto chooses on the largest k points (default: several horizons,
    `default_holdouts`); a named
    form reports its held-out score when k is given. ``settings`` go to every form's
    constructor (loss, f_scale, n_boot, seed, ci).
    """
    xa, ya = validate(x, y)
    if y_seeds is not None:
        order = np.argsort(np.asarray(x, dtype=float).ravel())
        y_seeds = [y_seeds[i] for i in order]
    n = xa.size
    if form != AUTO:
        make_form(form)   # unknown names fail here, before any fitting
    skipped: dict[str, str] = {}
    if form == AUTO and holdout is None and n < 4:
        # Nothing to hold out: the paper's form, and say why.
        sel = fit_curve(xa, ya, form=FALLBACK, y_seeds=y_seeds, candidates=candidates, **settings)
        return Selection(sel.fit, sel.form, AUTO, 0, {}, {"auto": f"{n} points leave none to hold out; used {FALLBACK}"})
    if holdout is not None:
        ks: tuple[int, ...] = (holdout,) if holdout else ()
    else:
        ks = default_holdouts(n, max(make_form(c).min_points for c in candidates)) if form == AUTO else ()
    if holdout is not None and holdout < 0:
        raise FitError(f"--holdout must be >= 0, got {holdout}")
    if ks and n - max(ks) < 3:
        raise FitError(f"holding out {max(ks)} of {n} points leaves {n - max(ks)}; a fit needs at least 3")
    if form == AUTO and not ks:
        raise FitError("form auto chooses by held-out error: --holdout must be at least 1")
    k = min(ks) if ks else 0

    names = list(candidates) if form == AUTO else [form]
    scores: dict[str, float] = {}
    held: dict[str, CurveFit] = {}
    errors: dict[str, dict[int, np.ndarray]] = {}   # form -> horizon -> held-out log errors
    for name in names:
        est = make_form(name)
        if ks and n - max(ks) < est.min_points:
            skipped[name] = f"needs {est.min_points} points to fit, {n - max(ks)} before the held-out ones"
            continue
        if not ks:
            continue
        rmses = []
        errors[name] = {}
        for kk in ks:
            try:
                err, f = holdout_errors(name, xa, ya, kk, **settings)
                r = float(np.sqrt(np.mean(err**2))) if np.all(np.isfinite(err)) else math.inf
                errors[name][kk] = err
            except FitError as exc:
                r, f = math.inf, None
                log.debug("form %s failed on the %d-point held-out split: %s", name, kk, exc)
            rmses.append(r)
            if kk == k and f is not None:
                held[name] = f
        # Geometric mean; a zero error (exact data) must not make the log blow up.
        scores[name] = (math.inf if not all(map(math.isfinite, rmses))
                        else float(np.exp(np.mean(np.log(np.maximum(rmses, 1e-300))))))
    if form == AUTO:
        finite = {f: s for f, s in scores.items() if math.isfinite(s)}
        if not finite:
            raise FitError(f"no curve form could be fitted to {n - k} points and predict the {k} held out")
        # Candidates are in order of increasing complexity: the first within TIE_RTOL of the
        # best wins. Forms that collapse onto a simpler one (m2 with gamma = 0 is m1) score the
        # same up to the optimiser's last digits, which must not decide between them.
        best = min(finite.values())
        chosen = next(f for f, s in finite.items() if s <= best * (1.0 + TIE_RTOL))
    else:
        chosen = form
        if form in skipped:
            raise FitError(f"form {form} {skipped[form]}")
    est = make_form(chosen, **settings)
    if n < est.min_points:
        raise FitError(f"form {chosen} needs at least {est.min_points} points, got {n}")
    full = est.fit(xa, ya, y_seeds=y_seeds)
    if not (form == AUTO and holdout is None and chosen in errors):
        # The growth is always measured at the default horizons, whatever was scored; auto
        # without an explicit holdout has just scored exactly those.
        errors[chosen] = _calibration_errors(chosen, xa, ya, est.min_points, **settings)
    growth, dof = extrapolation_growth(xa, errors[chosen], full.noise_log())
    full = dataclasses.replace(full, extrapolation_log=growth, extrapolation_dof=dof)
    return Selection(fit=full, form=chosen, requested=form, holdout=k, scores=scores, skipped=skipped,
                     holdout_fits=held, splits=ks)


def _calibration_errors(form: str, x: np.ndarray, y: np.ndarray, min_points: int, **settings) -> dict[int, np.ndarray]:
    """Held-out log errors of ``form`` at every default horizon that leaves it enough points."""
    out = {}
    for k in default_holdouts(x.size, min_points):
        if x.size - k < min_points:
            continue
        try:
            out[k] = holdout_errors(form, x, y, k, **settings)[0]
        except FitError as exc:
            log.debug("form %s failed on the %d-point calibration split: %s", form, k, exc)
    return out

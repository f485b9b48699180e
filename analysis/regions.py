"""The three regions of a learning curve (Hestness et al. 2017, sec. 2), per point, and the
points that measure none of them (``compute-limited``).

- ``small-data``: the model has learnt next to nothing; error within ``tol`` of the best-guess
  error (random, majority class, unigram): eps >= (1 - tol) * best_guess.
- ``irreducible``: the curve has flattened onto its floor: the floor is at least 90% of the fitted
  error, f(m) <= floor / 0.9. For M2 this is where the local log-log slope
  d log eps / d log m = beta_g * (eps - gamma) / eps has fallen below a tenth of beta_g, so a
  doubling of data removes less than |beta_g| * ln 2 / 10 of the error (1.4% at beta_g = -0.2).
  The rule used to be "half the error is the floor", which a language-model researcher would
  not accept: an LM's entropy floor is more than half its loss at every practical scale
  (Chinchilla: E = 1.69 nats under losses of 2-3), so every point of every LM curve was
  labelled irreducible while each doubling still cut the loss by several percent.
- ``power-law``: everything in between, where the straight line on log-log axes holds.

- ``compute-limited``: the best-fit model was limited by the study's compute, not by the data:
  its growth knob (width) sits at the search's cap (no width overfits the subset within the step
  budget, so the search used the cap), or most of its seeds were still improving when their step budget
  ran out (best round = last round). Such a point is an upper bound on the best-fit error and
  says nothing about the curve, so it is left out of the fit like a small-data point and shown
  apart.

Small-data and compute-limited points are classified from the data alone and left out of the fit
(when at least 3 points remain); the irreducible boundary comes from the fitted curve, so it can
lie beyond the data (the study has not reached it yet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.fit import CurveFit, rank_interval
from analysis.plan import data_for_error

SMALL_DATA = "small-data"
POWER_LAW = "power-law"
IRREDUCIBLE = "irreducible"
COMPUTE_LIMITED = "compute-limited"

SMALL_DATA_TOL = 0.05
# A point is irreducible once the floor is at least this fraction of its fitted error.
IRREDUCIBLE_FLOOR_SHARE = 0.9


def small_data_mask(eps, best_guess: float | None, tol: float = SMALL_DATA_TOL) -> np.ndarray:
    """True where eps >= (1 - tol) * best_guess (all False without a best guess)."""
    eps = np.asarray(eps, dtype=float)
    if best_guess is None or not math.isfinite(best_guess) or best_guess <= 0:
        return np.zeros(eps.shape, dtype=bool)
    return eps >= (1.0 - tol) * best_guess


def compute_limited_reasons(widths, cut_short, max_width: float | None) -> list[str]:
    """Why each best-fit point is compute-limited ("" where it is not).

    ``widths``: the best-fit model's growth knob; ``cut_short``: the share of its seeds still at
    their best when the step budget ran out (`scal.reader`); a point is compute-limited when
    its width is at ``max_width`` or most of its seeds (more than half) were cut short. One seed
    of two that early stopping ended shows the configuration reaches its minimum within the
    budget; the other's last rounds are then a plateau (on the default study: 0.1% per round),
    not compute it lacked.
    """
    out = []
    for w, cut in zip(np.asarray(widths, dtype=float), np.asarray(cut_short, dtype=float)):
        why = []
        if max_width is not None and math.isfinite(w) and w >= max_width:
            why.append(f"width {w:g} is the search's cap")
        if math.isfinite(cut) and cut > 0.5:
            why.append("still improving when its step budget ran out")
        out.append("; ".join(why))
    return out


def fit_mask(eps, best_guess: float | None, tol: float = SMALL_DATA_TOL, exclude=None) -> np.ndarray:
    """Points the curve is fitted on: all but the small-data ones and ``exclude`` (compute-limited
    points), unless fewer than 3 would remain; then all of them (the labels still say which)."""
    keep = ~small_data_mask(eps, best_guess, tol)
    if exclude is not None:
        keep &= ~np.asarray(exclude, dtype=bool)
    return keep if keep.sum() >= 3 else np.ones(keep.shape, dtype=bool)


@dataclass(frozen=True)
class Regions:
    """Each point's region and the boundaries between regions (in units of m).

    ``small_data_until``: the largest m still in the small-data region (None if none).
    ``power_law_from``: the smallest m in the power-law region (None if none).
    ``irreducible_from``: m where the fitted curve reaches (1 / IRREDUCIBLE_FLOOR_SHARE) * floor,
    with its bootstrap interval; None when the floor is 0 (a pure power law never flattens).
    """

    labels: list[str]
    small_data_until: float | None
    power_law_from: float | None
    irreducible_from: float | None
    irreducible_interval: tuple[float, float] | None

    def to_dict(self) -> dict:
        return {"labels": list(self.labels), "small_data_until": self.small_data_until,
                "power_law_from": self.power_law_from, "irreducible_from": self.irreducible_from,
                "irreducible_interval": list(self.irreducible_interval) if self.irreducible_interval else None}


def classify(m, eps, fit: CurveFit, best_guess: float | None, tol: float = SMALL_DATA_TOL,
             compute_limited=None) -> Regions:
    """Each point's label: small-data, then compute-limited (``compute_limited``, a mask), then
    irreducible or power-law by the fitted curve."""
    m = np.asarray(m, dtype=float)
    eps = np.asarray(eps, dtype=float)
    small = small_data_mask(eps, best_guess, tol)
    limited = np.zeros(m.shape, dtype=bool) if compute_limited is None else np.asarray(compute_limited, dtype=bool)
    floor = fit.floor()
    m_irr, interval = None, None
    if floor > 0:
        plan = data_for_error(fit, floor / IRREDUCIBLE_FLOOR_SHARE)
        m_irr = plan.m
        if fit.n_boot:
            m_irr_boot = []
            for b in fit.boot_curves():
                f_b = b.floor()
                m_irr_boot.append(data_for_error(b, f_b / IRREDUCIBLE_FLOOR_SHARE).m if f_b > 0 else math.inf)
            # inf: a resample that never flattens
            interval = rank_interval([v if v is not None else math.inf for v in m_irr_boot], fit.ci)
    labels = []
    for mi, is_small, is_limited in zip(m, small, limited):
        if is_small:
            labels.append(SMALL_DATA)
        elif is_limited:
            labels.append(COMPUTE_LIMITED)
        elif m_irr is not None and mi >= m_irr:
            labels.append(IRREDUCIBLE)
        else:
            labels.append(POWER_LAW)
    pl = [mi for mi, lab in zip(m, labels) if lab == POWER_LAW]
    return Regions(labels=labels, small_data_until=float(m[small].max()) if small.any() else None,
                   power_law_from=float(min(pl)) if pl else None, irreducible_from=m_irr,
                   irreducible_interval=interval)

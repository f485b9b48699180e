"""The three regions of a learning curve (Hestness et al. 2017, sec. 2), per point.

- ``small-data``: the model has learnt next to nothing; error within ``tol`` of the best-guess
  error (random, majority class, unigram): eps >= (1 - tol) * best_guess.
- ``irreducible``: the curve has flattened toward its floor: at least half of the fitted error is
  the floor, f(m) <= 2 * floor. For M2 this is where the local log-log slope
  d log eps / d log m = beta_g * (eps - gamma) / eps has fallen below half of beta_g.
- ``power-law``: everything in between, where the straight line on log-log axes holds.

Small-data points are classified from the data alone and left out of the fit (when at least 3
points remain); the irreducible boundary comes from the fitted curve, so it can lie beyond the
data (the study has not reached it yet).
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

SMALL_DATA_TOL = 0.05
# A point is irreducible once the floor is at least this fraction of its fitted error.
IRREDUCIBLE_FLOOR_SHARE = 0.5


def small_data_mask(eps, best_guess: float | None, tol: float = SMALL_DATA_TOL) -> np.ndarray:
    """True where eps >= (1 - tol) * best_guess (all False without a best guess)."""
    eps = np.asarray(eps, dtype=float)
    if best_guess is None or not math.isfinite(best_guess) or best_guess <= 0:
        return np.zeros(eps.shape, dtype=bool)
    return eps >= (1.0 - tol) * best_guess


def fit_mask(eps, best_guess: float | None, tol: float = SMALL_DATA_TOL) -> np.ndarray:
    """Points the power law is fitted on: all but the small-data ones, unless fewer than 3 remain."""
    small = small_data_mask(eps, best_guess, tol)
    return ~small if (~small).sum() >= 3 else np.ones(small.shape, dtype=bool)


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


def classify(m, eps, fit: CurveFit, best_guess: float | None, tol: float = SMALL_DATA_TOL) -> Regions:
    m = np.asarray(m, dtype=float)
    eps = np.asarray(eps, dtype=float)
    small = small_data_mask(eps, best_guess, tol)
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
    for mi, is_small in zip(m, small):
        if is_small:
            labels.append(SMALL_DATA)
        elif m_irr is not None and mi >= m_irr:
            labels.append(IRREDUCIBLE)
        else:
            labels.append(POWER_LAW)
    pl = [mi for mi, lab in zip(m, labels) if lab == POWER_LAW]
    return Regions(labels=labels, small_data_until=float(m[small].max()) if small.any() else None,
                   power_law_from=float(min(pl)) if pl else None, irreducible_from=m_irr,
                   irreducible_interval=interval)

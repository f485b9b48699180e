"""Where the two views of model size disagree: the loss surface's compute-optimal frontier against
the study's best-fit model-size curve s(m) = sigma * m**beta_p (Hestness et al.).

Both say how big a model should be for an amount of data, but they ask different questions:

- s(m) is the smallest model that fits a subset of size m best, trained to convergence on it;
- the frontier pairs each model size with the data a compute budget C = k N D spends best on it.
  On it alpha A N**-alpha = beta B D**-beta, so N_frontier(D) = (alpha A / (beta B))**(1/alpha) D**(beta/alpha):
  a power law in D with exponent beta / alpha (`analysis.surface.frontier_n_params`).

So the comparison is exponent against exponent (beta / alpha beside beta_p, each with its
bootstrap interval, and whether those overlap), and size against size at each studied subset:
where N_frontier(m) / s(m) lies outside [1/2, 2], the two views would buy different models.
log(N_frontier / s) is linear in log m, so the sizes where they differ by more than 2x form at most
two ranges at the ends of the studied span; ``differ_ranges`` gives them exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from analysis.fit import CurveFit
from analysis.jsonsafe import json_number
from analysis.surface import SurfaceFit

DIFFER_FACTOR = 2.0   # model sizes this many times apart are a different model, not noise


@dataclass(frozen=True)
class ModelSizeComparison:
    """The frontier's N(D) exponent beta/alpha and the model-size curve's beta_p, with intervals;
    both curves' model sizes at each studied data size and where they differ by > DIFFER_FACTOR."""

    frontier_exponent: float
    frontier_interval: tuple[float, float]
    beta_p: float
    beta_p_interval: tuple[float, float]
    overlap: bool | None                 # None when either interval is unknown
    sizes: tuple[float, ...]
    frontier_n_params: tuple[float, ...]
    model_size_n_params: tuple[float, ...]
    differ_at: tuple[float, ...]         # the studied sizes where the ratio is outside [1/2, 2]
    differ_ranges: tuple[tuple[float, float], ...]

    def sentence(self) -> str:
        """One line for the summary: the exponents, whether they agree, and where the sizes part."""
        lo, hi = self.sizes[0], self.sizes[-1]
        head = (f"compute-optimal frontier N ~ D^{_g(self.frontier_exponent)} {_iv(self.frontier_interval)} vs "
                f"best-fit model size s(m) ~ m^{_g(self.beta_p)} {_iv(self.beta_p_interval)}: ")
        head += {True: "the intervals overlap", False: "the intervals do not overlap",
                 None: "no intervals to compare"}[self.overlap]
        if not all(math.isfinite(v) for v in self.frontier_n_params):
            return head + "; the surface has no frontier (an exponent or amplitude is 0)"
        if self.differ_at:
            where = ", ".join(_g(v) for v in self.differ_at)
            return head + f"; the predicted model sizes differ by more than {DIFFER_FACTOR:g}x at m = {where} (of {_g(lo)}-{_g(hi)})"
        return head + f"; the predicted model sizes agree within {DIFFER_FACTOR:g}x at every studied size ({_g(lo)}-{_g(hi)})"

    def to_dict(self) -> dict:
        return {
            "frontier_exponent": json_number(self.frontier_exponent),
            "frontier_exponent_interval": [json_number(v) for v in self.frontier_interval],
            "beta_p": json_number(self.beta_p), "beta_p_interval": [json_number(v) for v in self.beta_p_interval],
            "intervals_overlap": self.overlap,
            "at_sizes": [{"data": float(m), "n_params_frontier": json_number(f), "n_params_model_size": json_number(s),
                          "ratio": json_number(f / s if s > 0 else math.nan)}
                         for m, f, s in zip(self.sizes, self.frontier_n_params, self.model_size_n_params)],
            "differ_factor": DIFFER_FACTOR,
            "differ_at": [float(v) for v in self.differ_at],
            "differ_ranges": [[float(a), float(b)] for a, b in self.differ_ranges],
            "sentence": self.sentence(),
        }


def compare_model_size(surface: SurfaceFit, model_size: CurveFit, sizes: Sequence[float]) -> ModelSizeComparison:
    """Compare ``surface``'s frontier with the model-size fit s(m) = sigma m**beta_p at ``sizes``
    (the studied subset sizes, in the unit the surface's D was fitted in)."""
    if "beta_p" not in model_size.params:
        raise ValueError(f"compare_model_size needs a model-size fit with beta_p, got form {model_size.form!r}")
    m = np.unique(np.asarray(sizes, dtype=float))
    if m.size == 0 or not np.all(np.isfinite(m) & (m > 0)):
        raise ValueError("compare_model_size needs at least one positive, finite data size")
    sigma, beta_p = model_size.params["sigma"], model_size.params["beta_p"]
    exponent, exponent_iv = surface.frontier_exponent()
    bp_iv = tuple(float(v) for v in model_size.intervals.get("beta_p", (math.nan, math.nan)))
    frontier = surface.frontier_n_params(m)
    curve = sigma * m ** beta_p
    with np.errstate(all="ignore"):
        far = np.abs(np.log(frontier / curve)) > math.log(DIFFER_FACTOR)
    return ModelSizeComparison(
        float(exponent), exponent_iv, float(beta_p), bp_iv, intervals_overlap(exponent_iv, bp_iv),
        tuple(m.tolist()), tuple(frontier.tolist()), tuple(curve.tolist()), tuple(m[far].tolist()),
        _differ_ranges(surface, sigma, beta_p, float(m[0]), float(m[-1])))


def intervals_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool | None:
    """max(lows) <= min(highs); None when an end is missing."""
    if not all(math.isfinite(v) for v in (*a, *b)):
        return None
    return max(a[0], b[0]) <= min(a[1], b[1])


def _differ_ranges(surface: SurfaceFit, sigma: float, beta_p: float, lo: float, hi: float
                   ) -> tuple[tuple[float, float], ...]:
    """The parts of [lo, hi] where |log(N_frontier(m) / s(m))| > log 2. With u = log m the log
    ratio is c0 + slope u (both power laws), so each side of the band is one half-line."""
    f_lo, f_hi = (float(v) for v in surface.frontier_n_params(np.array([lo, hi])))
    if not (math.isfinite(f_lo) and math.isfinite(f_hi) and sigma > 0):
        return ()
    u_lo, u_hi = math.log(lo), math.log(hi)
    r_lo = math.log(f_lo) - math.log(sigma) - beta_p * u_lo     # log ratio at each end
    r_hi = math.log(f_hi) - math.log(sigma) - beta_p * u_hi
    limit = math.log(DIFFER_FACTOR)
    out = []
    for sign in (1.0, -1.0):       # frontier above s by > 2x, then below by > 2x
        a, b = sign * r_lo - limit, sign * r_hi - limit          # > 0 where it differs
        if a <= 0 and b <= 0:
            continue
        if a > 0 and b > 0:
            out.append((lo, hi))
            continue
        u_cross = u_lo + (u_hi - u_lo) * a / (a - b)                # where the line meets the band
        out.append((lo, math.exp(u_cross)) if a > 0 else (math.exp(u_cross), hi))
    return tuple(sorted(out))


def _g(v: float) -> str:
    return f"{v:.3g}" if math.isfinite(v) else "nan"


def _iv(iv: tuple[float, float]) -> str:
    return f"[{_g(iv[0])}, {_g(iv[1])}]" if all(math.isfinite(v) for v in iv) else "(no interval)"

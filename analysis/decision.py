"""The decision summary: a few sentences with numbers that answer "more data, a bigger model,
or a better architecture?", first in ``scal study``'s output, the report and ``scal fit``.

It is built from `Facts`, plain numbers a study or a CSV curve both supply (a CSV has no model
sizes or compute, and says so), so one function writes it for both:

- the error now (the largest measured size) and its region;
- the error at 2x and 10x the data, with their predictive intervals, and what one more doubling
  of data buys now, 1 - f(2m) / f(m);
- the best-fit model size needed at 10x the data, s(10m) = sigma (10m)^beta_p;
- the compute-optimal split N_opt, D_opt for 10x the study's compute (`analysis.surface`);
- how far the error is from the fitted floor: (eps - floor) / eps is the share still reducible
  by data alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from analysis.plan import Estimate


@dataclass(frozen=True)
class Facts:
    """What the summary says, in the curve's own units (``metric``, sizes in ``unit``)."""

    metric: str
    unit: str
    x_now: float
    error_now: float
    region_now: str | None
    at_2x: Estimate
    at_10x: Estimate
    floor: float
    level: float
    n_params_10x: Estimate | None = None
    optimal_10x: dict | None = None    # {"compute", "n_params", "data", "loss"} at 10x the study's compute
    study_compute: float | None = None
    notes: tuple[str, ...] = field(default=())
    what: str = "best-fit error"       # a study's points are best fits; a CSV's are whatever was measured


def fmt(v: float | None) -> str:
    """A number as the summary writes it (also its callers' notes): measured sizes in full, estimates to 3-4 figures."""
    if v is None or not math.isfinite(v):
        return "?"
    if float(v).is_integer() and abs(v) < 1e7:   # measured sizes in full, with separators
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) >= 1e4 else f"{v:.4g}"


def _iv(e: Estimate) -> str:
    return f"[{fmt(e.low)}, {fmt(e.high)}]"


def summarize(f: Facts) -> str:
    """The summary as one Markdown paragraph of short sentences."""
    pct = f"{round(100 * f.level)}%"
    s = [f"At {fmt(f.x_now)} {f.unit} the {f.what} is {fmt(f.error_now)} {f.metric}"
         + (f" ({f.region_now} region)." if f.region_now else ".")]
    s.append(f"2x the data should give {fmt(f.at_2x.value)} {_iv(f.at_2x)} and 10x {fmt(f.at_10x.value)} "
             f"{_iv(f.at_10x)} ({pct} predictive intervals).")
    gain = 1.0 - f.at_2x.value / f.error_now if f.error_now > 0 and math.isfinite(f.at_2x.value) else math.nan
    if gain > 0:
        s.append(f"The next doubling of data cuts the error by {100 * gain:.1f}%.")
    elif math.isfinite(gain):
        s.append("The fitted curve lies above today's error, so it does not describe the largest size: "
                 "do not plan with it; measure more sizes in the power-law region.")
    if f.n_params_10x is not None:
        s.append(f"At 10x the data the best-fit model has about {fmt(f.n_params_10x.value)} parameters "
                 f"{_iv(f.n_params_10x)}.")
    if f.optimal_10x:
        o = f.optimal_10x
        s.append(f"For 10x this study's compute (C = k N D summed over its trials, one pass each: "
                 f"{fmt(o.get('compute'))} FLOPs) the loss surface's compute-optimal split is "
                 f"{fmt(o.get('n_params'))} parameters on {fmt(o.get('data'))} {f.unit}, for {fmt(o.get('loss'))}.")
    if f.floor > 0 and math.isfinite(f.floor) and f.floor >= f.error_now:
        s.append(f"Today's error is at or below the fitted floor {fmt(f.floor)}: the fit does not describe the "
                 "largest size.")
    elif f.floor > 0 and math.isfinite(f.floor):
        share = (f.error_now - f.floor) / f.error_now
        s.append(f"The fitted floor is {fmt(f.floor)}: {100 * share:.0f}% of today's error can still be removed "
                 "by data and model size; the rest needs a better architecture or is irreducible.")
    else:
        s.append("The fit has no floor within the data: error still falls as a pure power law, so more data "
                 "keeps paying at the same rate.")
    s.extend(f.notes)
    return " ".join(s)

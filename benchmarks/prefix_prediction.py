"""Explore small, predict large: per domain, a study that stops at m_max/8 predicts the error the
full study measures at m_max (issue 20, item 2).

For each domain the benchmark runs two studies through the library call `scal study` makes, each
into its own temporary sqlite store (`domain_quick.one`):

- the **full** study: the budget's subsets, m_min -> m_max;
- the **prefix** study: the same smallest subset and 3 fewer doublings (m_min -> m_max/8), with
  its own overfitting anchors, so nothing the large subsets taught reaches it (the in-study
  backtest cannot say that: there every subset's search centre is interpolated toward the
  largest subset's hyperparameters).

The prefix study's best-fit points are fitted as `scal fit --run-id PREFIX --size M_MAX` fits them
(`scal.analyze.fit_study`, then `analysis.plan.predict_errors` at the 90% level), and the
prediction is set against the full study's best-fit error at m_max (the median over its seeds,
the value the study reports). One line per domain:

    domain  m_max  prediction [90%]  half-width  measured  rel. error  inside  goal

Goal (issue 20): within 5%, inside the interval, and a half-width no more than 15% of the
prediction. A measured m_max that the full study labels compute-limited is an upper bound,
said in the last column.

    python benchmarks/prefix_prediction.py                      # every domain but toy
    python benchmarks/prefix_prediction.py --domains lm,image   # about 12 + 16 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import logging

import domains
from analysis.plan import predict_errors
from analysis.fit import DEFAULT_LEVEL
from domain_quick import one as quick_study   # benchmarks/ is on sys.path when a benchmark runs as a script
from scal.analyze import fit_study
from scal.tracking import open_client

PREFIX_DOUBLINGS = 3      # m_max/8
GOAL_REL_ERROR = 0.05
GOAL_HALF_WIDTH = 0.15


def one(domain: str, budget: str = "quick") -> dict:
    """The prefix prediction of m_max and what the full study measured there."""
    dom = domains.get(domain)
    n_full = dom.scale(budget, domains.default_unit(dom)).n_subsets
    full = quick_study(domain, None, budget, register=False)
    refit: list = []   # the prefix fitted as `scal fit --run-id` fits it, before its store goes
    prefix = quick_study(domain, None, budget, register=False, n_subsets=n_full - PREFIX_DOUBLINGS,
                         after=lambda uri, s: refit.append(fit_study(open_client(uri), s["parent_run_id"])))
    fits = refit[0]
    last = max(full["subsets"], key=lambda p: p["size"])
    m_max = float(last["size"])
    est = predict_errors(fits.selection.fit, [m_max], DEFAULT_LEVEL, name=f"{domain} prefix")[0]
    measured = float(last["val_error"])
    fitted = [p for p in prefix["subsets"] if p["in_fit"]]
    return {"domain": domain, "m_max": m_max, "prefix_max": float(max(p["size"] for p in prefix["subsets"])),
            "prefix_fitted": len(fitted), "form": fits.selection.form, "value": est.value, "low": est.low,
            "high": est.high, "half_width": (est.high - est.low) / 2 / est.value, "measured": measured,
            "rel_error": est.value / measured - 1, "inside": est.low <= measured <= est.high,
            "compute_limited": last.get("compute_limited") or "", "full_s": full["wall_s"], "prefix_s": prefix["wall_s"]}


def verdict(r: dict) -> str:
    misses = []
    if abs(r["rel_error"]) > GOAL_REL_ERROR:
        misses.append(f"off by more than {GOAL_REL_ERROR:.0%}")
    if not r["inside"]:
        misses.append("outside")
    if r["half_width"] > GOAL_HALF_WIDTH:
        misses.append(f"wider than +-{GOAL_HALF_WIDTH:.0%}")
    return "met" if not misses else "missed: " + ", ".join(misses)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domains", default=",".join(n for n in domains.REGISTRY if n != "toy"))
    ap.add_argument("--budget", default="quick")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"{'domain':<12} {'m_max':>8} {'prefix (fitted)':>16}  {'form':<4} {'prediction [90%]':<28} {'half':>6} "
          f"{'measured':>9} {'error':>7} {'inside':>6}  {'walls full / prefix':>20}  goal")
    for name in args.domains.split(","):
        r = one(name, args.budget)
        limited = f"  (measured is compute-limited: {r['compute_limited']})" if r["compute_limited"] else ""
        print(f"{name:<12} {r['m_max']:>8g} {r['prefix_max']:>11g} ({r['prefix_fitted']})  {r['form']:<4} "
              f"{r['value']:.4g} [{r['low']:.4g}, {r['high']:.4g}]".ljust(28 + 49) +
              f" {100 * r['half_width']:>5.1f}% {r['measured']:>9.4g} {100 * r['rel_error']:>+6.1f}% "
              f"{'yes' if r['inside'] else 'no':>6}  {r['full_s'] / 60:>8.1f} / {r['prefix_s'] / 60:.1f} min  "
              f"{verdict(r)}{limited}", flush=True)


if __name__ == "__main__":
    main()

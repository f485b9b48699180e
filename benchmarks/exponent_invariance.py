"""Does a different model family shift the learning curve but keep its exponent? (Hestness et al.
2017, section 5: better models and optimizers move eps(m) = alpha * m^beta_g down, beta_g stays.)

Runs the same study (same data, same subsets, same budget) with two model families, here the
speech domain's Deep Speech 2 style CTC model (`speech`) and its attention encoder-decoder
(`speech_attn`), and prints each family's beta_g with its 95% bootstrap interval, its error at the
largest subset, and whether the two intervals overlap. The exponents are compared in one form,
``m1`` (eps = alpha * m^beta_g over the points past the small-data region, the paper's fit): each
study's ``auto`` choice may pick different forms, whose beta_g do not mean the same thing. The
auto fits are printed too.

    python benchmarks/exponent_invariance.py                           # speech vs speech_attn, quick
    python benchmarks/exponent_invariance.py --families image,image --budget smoke

Each quick study takes up to 15 minutes on 2 cores. Overlapping intervals are what the paper's
claim predicts; disjoint ones are evidence against it for this data and budget (or of a budget
too small for one family to reach its power-law region: look at the plots in MLflow).
"""

from __future__ import annotations

import argparse
import logging

from domain_quick import one          # benchmarks/ is on sys.path when a benchmark runs as a script
from scal.analyze import fit_study

COMMON_FORM = "m1"


def study(domain: str, budget: str) -> dict:
    """The study's summary, plus ``common``: beta_g and its interval refitted in `COMMON_FORM`."""
    def refit(uri: str, s: dict) -> None:
        fit = fit_study(uri, s["parent_run_id"], form=COMMON_FORM).curve
        s["common"] = (fit.params["beta_g"], tuple(fit.intervals["beta_g"]))

    return one(domain, None, budget, after=refit)


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Closed intervals [a0, a1] and [b0, b1] share a point."""
    return max(a[0], b[0]) <= min(a[1], b[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default="speech,speech_attn", help="two domains trained on the same data")
    ap.add_argument("--budget", default="quick")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    names = args.families.split(",")
    if len(names) != 2:
        raise SystemExit("error: --families takes exactly two domain names")
    out = {}
    print(f"{'family':<12} {'wall':>7}  {'beta_g ' + COMMON_FORM + ' [95%]':<28} {'eps(largest m)':>14}  "
          f"auto form: beta_g [95%]", flush=True)
    for name in names:
        s = out[name] = study(name, args.budget)
        g, (glo, ghi) = s["common"]
        lo, hi = s["beta_g_interval"]
        print(f"{name:<12} {s['wall_s'] / 60:>5.1f} m  {g:>7.3f} [{glo:.3f}, {ghi:.3f}]{'':<6} "
              f"{s['subsets'][-1]['val_error']:>14.4g}  {s['form']}: {s['beta_g']:.3f} [{lo:.3f}, {hi:.3f}]", flush=True)
    (ga, a), (gb, b) = (out[n]["common"] for n in names)
    print(f"beta_g ({COMMON_FORM}) intervals overlap: {'yes' if overlap(a, b) else 'NO'} "
          f"(difference of point estimates {ga - gb:+.3f})")


if __name__ == "__main__":
    main()

"""Does a different model family shift the learning curve but keep its exponent? (Hestness et al.
2017, section 5: better models and optimizers move eps(m) = alpha * m^beta_g down, beta_g stays.)

Runs the same study (same data, same subsets, same budget) with two model families, here the
speech domain's Deep Speech 2 style CTC model (`speech`) and its attention encoder-decoder
(`speech_attn`), and prints each family's beta_g with its 95% bootstrap interval, its error at the
largest subset, and whether the two intervals overlap. The exponents are compared in one form,
``m1`` (eps = alpha * m^beta_g over the points past the small-data region, the paper's fit): each
study's ``auto`` choice may pick different forms, whose beta_g do not mean the same thing. They
are compared in ``m2`` (eps = alpha * m^beta_g + gamma) too: where one family reaches an
irreducible floor inside the subsets and the other does not, m1 mixes the floor into the exponent.
The auto fits and each family's best-fit error by subset are printed too, and, from
`analysis.compare` on the m2 fits, which family is lower at the largest subset and at 10x it
(with the bootstrap probability of being lowest) and where the two curves cross.

    python benchmarks/exponent_invariance.py                           # speech vs speech_attn, quick
    python benchmarks/exponent_invariance.py --families image,image --budget smoke
    python benchmarks/exponent_invariance.py --data synthetic:sentences   # the larger speech set

Each quick study takes up to 15 minutes on 2 cores. Overlapping intervals are what the paper's
claim predicts; disjoint ones are evidence against it for this data and budget (or of a budget
too small for one family to reach its power-law region: look at the plots in MLflow).
"""

from __future__ import annotations

import argparse
import logging
import math

from analysis.compare import comparison_text, compare_fits, exponents_overlap
from domain_quick import one          # benchmarks/ is on sys.path when a benchmark runs as a script
from scal.analyze import fit_study
from scal.tracking import open_client

COMMON_FORMS = ("m1", "m2")


def study(domain: str, budget: str, data: str | None = None, boot_seed: int = 0) -> dict:
    """The study's summary, plus ``common[form]``: beta_g and its interval refitted in each of
    `COMMON_FORMS`, and ``common_fits[form]``: those fits (None where a form could not be fitted).
    Each family gets its own ``boot_seed``: `analysis.compare` pairs the families' bootstrap draws
    as independent ones."""
    def refit(uri: str, s: dict) -> None:
        s["common"], s["common_fits"] = {}, {}
        client = open_client(uri)
        for form in COMMON_FORMS:
            try:
                fit = fit_study(client, s["parent_run_id"], form=form, seed=boot_seed).curve
                s["common"][form] = (fit.params["beta_g"], tuple(fit.intervals["beta_g"]))
                s["common_fits"][form] = fit
            except ValueError as exc:   # too few points for this form: say so, keep the other results
                print(f"{domain}: no {form} fit ({exc})", flush=True)
                s["common"][form] = (math.nan, (math.nan, math.nan))
                s["common_fits"][form] = None

    return one(domain, None, budget, after=refit, data=data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default="speech,speech_attn", help="two domains trained on the same data")
    ap.add_argument("--budget", default="quick")
    ap.add_argument("--data", default=None, help="the families' --data (default: the domain's embedded data)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    names = args.families.split(",")
    if len(names) != 2:
        raise SystemExit("error: --families takes exactly two domain names")
    out = {}
    print(f"{'family':<12} {'wall':>7}  " + "".join(f"{'beta_g ' + f + ' [95%]':<28}" for f in COMMON_FORMS)
          + f"{'eps(largest m)':>14}  auto form: beta_g [95%]        beta_p [95%]", flush=True)
    for k, name in enumerate(names):
        s = out[name] = study(name, args.budget, args.data, boot_seed=k)
        common = "".join(f"{g:>7.3f} [{lo:.3f}, {hi:.3f}]{'':<5}" for g, (lo, hi) in s["common"].values())
        (lo, hi), (plo, phi) = s["beta_g_interval"], s["beta_p_interval"]
        print(f"{name:<12} {s['wall_s'] / 60:>5.1f} m  {common}{s['subsets'][-1]['val_error']:>14.4g}  "
              f"{s['form']}: {s['beta_g']:.3f} [{lo:.3f}, {hi:.3f}]  {s['beta_p']:.3f} [{plo:.3f}, {phi:.3f}]", flush=True)
        print(f"{'':<12} best-fit error by subset: "
              + ", ".join(f"{p['size']}: {p['val_error']:.3g}" for p in s["subsets"]), flush=True)
    for form in COMMON_FORMS:
        (ga, _), (gb, _) = (out[n]["common"][form] for n in names)
        fa, fb = (out[n]["common_fits"][form] for n in names)
        same = exponents_overlap(fa, fb) if fa is not None and fb is not None else None
        print(f"beta_g ({form}) intervals overlap: {'-' if same is None else 'yes' if same else 'NO'} "
              f"(difference of point estimates {ga - gb:+.3f})")
    # Which family is lower, how surely, and from what size on (analysis.compare, as `scal compare`).
    m2 = {n: out[n]["common_fits"]["m2"] for n in names}
    if names[0] != names[1] and all(f is not None for f in m2.values()):
        print("\nm2 fits compared:\n" + comparison_text(compare_fits(m2)))


if __name__ == "__main__":
    main()

"""Coverage of the predictive intervals on published learning curves (Alabdulmohsin et al. 2022).

For every curve (Domain, Task, Model) of ../shared/benchmarks/alabdulmohsin2022/ (or --data DIR):
fit ``form=auto`` with the default bootstrap on the Training == 1 points, then ask whether each
Training == 0 point (all of them lie beyond the fitted range) falls inside the ``--level``
predictive interval (`analysis.fit.CurveFit.interval`, what ``scal fit --size`` reports).
Nothing here is tuned on those held-out points: every interval is built from its curve's
training points alone.

Printed per domain and overall:
- coverage (points): the share of all held-out points inside their interval (IC's 72 curves
  with hundreds of held-out points each dominate it);
- coverage (curves): the mean over curves of each curve's share, every curve weighted equally;
- median width: the median over held-out points of log(high / low);
- the same two coverages for the bootstrap band of the curve alone at the same level (what
  predictions reported before the predictive intervals), for comparison.

Target: coverage between 80% and 95% overall for --level 0.9.

    python benchmarks/coverage.py [--level 0.9] [--jobs 2] [--per-curve]
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.select import fit_curve
from extrapolation import DEFAULT_DATA, load_curves


def score_curve(item, level: float) -> dict:
    key, g = item
    train, test = g[g.Training == 1], g[g.Training == 0]
    x, y = train["Seen Examples"].to_numpy(float), train["Loss"].to_numpy(float)
    xt, yt = test["Seen Examples"].to_numpy(float), test["Loss"].to_numpy(float)
    fit = fit_curve(x, y, form="auto").fit
    low, high = fit.interval(xt, level)
    b_low, b_high = dataclasses.replace(fit, ci=level).band(xt, warn=False)
    return {"domain": key[0], "task": key[1], "model": key[2], "form": fit.form, "n_test": len(xt),
            "inside": int(np.sum((yt >= low) & (yt <= high))),
            "inside_band": int(np.sum((yt >= b_low) & (yt <= b_high))),
            "width": np.log(high / low).tolist(), "growth": fit.extrapolation_log, "noise": fit.noise_log()}


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Coverage by points and by curves, median width, and the curve-only band's coverages."""
    rows = rows.assign(cover=rows.inside / rows.n_test, cover_band=rows.inside_band / rows.n_test)

    def one(g: pd.DataFrame) -> pd.Series:
        return pd.Series({
            "curves": len(g), "points": int(g.n_test.sum()),
            "coverage (points)": g.inside.sum() / g.n_test.sum(), "coverage (curves)": g.cover.mean(),
            "median width log(high/low)": float(np.median(np.concatenate(g.width.to_list()))),
            "band only (points)": g.inside_band.sum() / g.n_test.sum(), "band only (curves)": g.cover_band.mean()})

    out = rows.groupby("domain").apply(one, include_groups=False)
    out.loc["all"] = one(rows)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--level", type=float, default=0.9)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--per-curve", action="store_true")
    args = ap.parse_args()
    if not 0.0 < args.level < 1.0:
        raise SystemExit(f"error: --level must lie strictly between 0 and 1, got {args.level}")
    logging.basicConfig(level=logging.ERROR)
    curves = load_curves(args.data)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = pd.DataFrame(list(pool.map(partial(score_curve, level=args.level), curves, chunksize=2)))
    wall = time.perf_counter() - t0
    table = summary(rows)
    print(f"{len(rows)} curves, {int(rows.n_test.sum())} held-out points, {wall:.0f} s on {args.jobs} processes; "
          f"level {args.level:g}")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    cov = float(table.loc["all", "coverage (points)"])
    print(f"target coverage in [0.80, 0.95] at level 0.9: {'yes' if 0.8 <= cov <= 0.95 else 'NO'} ({cov:.3f})")
    if args.per_curve:
        per = rows.assign(coverage=rows.inside / rows.n_test).drop(columns=["width"])
        print(per.to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()

"""Calibration of scal's predictive intervals out of sample: coverage and width per source,
split, distance band and level.

A predictive interval at level q for the error at a size m past the data should hold a new
measurement there with probability q. This benchmark checks it on three sources:

- ``public``: the published learning curves of Alabdulmohsin et al. 2022
  (../shared/benchmarks/alabdulmohsin2022/). Each curve is fitted on its own training points and
  predicts its held-out points (up to about 2x past the data); to reach further, the same curve
  is also cut at an eighth and at a 32nd of its largest training size, thinned to at most 8
  log-spaced points (as a study's subsets), and predicts every later point (up to about 64x past
  the cut). A cut fits only the points outside the small-data region (`analysis.regions`; the
  curve's largest loss stands in for the best-guess error the benchmark does not record), as
  ``scal fit --best-guess`` would: a cut that leaves fewer than 4 such points is not used;
- ``synthetic``: `curve_families` (8 families: pure power laws, floors, a break inside the data,
  a drifting slope, saturating curves, M4, heavy-tailed noise, medians of seeds; noise 1-5%;
  6-16 fitted sizes; predictions 2x to 256x past the data);
- ``quick``: the quick studies' best-fit points (benchmarks/data/quick_points.csv, written by
  ``benchmarks/domain_quick.py --points-csv``), backtested: every prefix of at least 3 fitted
  points (as a study's own backtest) predicts every later fitted point. Few studies, few points:
  its coverage has a wide binomial uncertainty, printed beside it.

The public curves and the synthetic families are split into a **development** set (what the
interval method and its constants were chosen on) and a **held-out** set (reported, never used
to choose): public curves alternate between the two within each domain; synthetic curves use
different seeds, and three families (m4, heavy, seeds) appear only in the held-out set. The quick
studies are held out entirely.

Coverage is the mean over curves of the share of a curve's points inside (every curve weighs
the same; IC's dense curves would dominate a pooled share), reported per distance band: up to
4x past the largest fitted size, 4x to 32x, beyond 32x. Width is the median over points of
(high - low) / prediction, the interval's width relative to the prediction (sharpness).

Target: at level 0.9, coverage between 80% and 95% in every source, split and band.

    python benchmarks/calibration.py                       # every source, both splits (~4 min on 2 cores)
    python benchmarks/calibration.py --per-family 10 --sources synthetic --jobs 2
    python benchmarks/calibration.py --markdown out.md     # the tables as Markdown too
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.backtest import MIN_PREFIX_POINTS
from analysis.fit import FitError
from analysis.regions import small_data_mask
from analysis.select import fit_curve
from curve_families import Task, tasks as synthetic_tasks
from extrapolation import DEFAULT_DATA, load_curves

LEVELS = (0.5, 0.8, 0.9, 0.95)
BANDS = (("<=4x", 0.0, 4.0), ("4-32x", 4.0, 32.0), (">32x", 32.0, math.inf))
CUTS = (8.0, 32.0)                 # public curves are also cut at max/8 and max/32 of their training sizes
THIN_POINTS = 8                    # a cut curve keeps at most this many fitted points, log-spaced
MIN_FIT_POINTS = 4                 # a cut or a backtest prefix needs this many fitted points
QUICK_POINTS = Path(__file__).resolve().parent / "data" / "quick_points.csv"
TARGET = (0.80, 0.95)


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------


def thin(x: np.ndarray, y: np.ndarray, n: int = THIN_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n`` points spread evenly in log x, as a study's subsets are (the smallest and
    the largest always among them): the point nearest each of n log-spaced sizes."""
    if x.size <= n:
        return x, y
    grid = np.geomspace(x.min(), x.max(), n)
    idx = np.unique([int(np.argmin(np.abs(np.log(x) - np.log(g)))) for g in grid])
    return x[idx], y[idx]


def public_tasks(data_dir: Path) -> list[Task]:
    """The benchmark's own split of every curve, and its cuts at max/8 and max/32 (thinned)."""
    out = []
    by_domain: dict[str, int] = {}
    for key, g in load_curves(data_dir):
        i = by_domain.get(key[0], 0)
        by_domain[key[0]] = i + 1
        split = "dev" if i % 2 == 0 else "held-out"
        name = "/".join(map(str, key))
        train, test = g[g.Training == 1], g[g.Training == 0]
        x, y = train["Seen Examples"].to_numpy(float), train["Loss"].to_numpy(float)
        xt, yt = test["Seen Examples"].to_numpy(float), test["Loss"].to_numpy(float)
        out.append(Task("public", split, name, x, y, xt, yt))
        x_all, y_all = np.concatenate([x, xt]), np.concatenate([y, yt])
        # The benchmark records no best-guess (chance) error; its curves start on that plateau,
        # so the curve's largest observed loss stands in for it, as `scal fit --best-guess` would.
        learning = ~small_data_mask(y, float(g.Loss.max()))
        for cut in CUTS:
            inside = learning & (x <= x.max() / cut)
            fit_x, fit_y = thin(x[inside], y[inside])
            if fit_x.size < MIN_FIT_POINTS:
                continue
            later = x_all > fit_x.max()
            out.append(Task("public", split, f"{name} (cut /{cut:g})", fit_x, fit_y, x_all[later], y_all[later]))
    return out


def quick_tasks(path: Path) -> list[Task]:
    """Backtests of the quick studies: every prefix of at least 3 fitted points (as a study's own
    backtest refits, `analysis.backtest.MIN_PREFIX_POINTS`) predicts the later fitted points (the
    seeds of each point go with it)."""
    if not path.is_file():
        logging.warning("no quick-study points at %s (benchmarks/domain_quick.py --points-csv writes them)", path)
        return []
    df = pd.read_csv(path)
    out = []
    for (domain, unit), g in df.groupby(["domain", "unit"], sort=True):
        g = g[g.in_fit == 1].sort_values("m")
        x, y = g.m.to_numpy(float), g.val_error.to_numpy(float)
        seeds = [tuple(json.loads(s)) for s in g.seed_errors]
        for k in range(MIN_PREFIX_POINTS, x.size):
            out.append(Task("quick", "held-out", f"{domain}/{unit} prefix {k}", x[:k], y[:k], x[k:], y[k:],
                            tuple(seeds[:k])))
    return out


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def score(task: Task, n_boot: int = 200) -> dict:
    """Fit the task's points as ``scal fit`` does (form auto) and record, per test point, its
    distance factor and whether it lies inside the interval at every level."""
    t0 = time.perf_counter()
    try:
        sel = fit_curve(task.x, task.y, form="auto", y_seeds=task.y_seeds, n_boot=n_boot)
    except FitError as exc:
        return {"task": task, "error": str(exc)}
    fit = sel.fit
    pred = fit.predict(task.x_test, warn=False)
    rows = {"factor": task.x_test / task.x.max(), "pred": pred}
    for q in LEVELS:
        low, high = fit.interval(task.x_test, q)
        rows[f"in_{q}"] = (task.y_test >= low) & (task.y_test <= high)
        rows[f"width_{q}"] = (high - low) / pred
    return {"task": task, "form": sel.form, "rows": rows, "seconds": time.perf_counter() - t0}


def wilson(inside: int, n: int, z: float = 1.645) -> str:
    """Wilson's 90% interval for a share inside/n: how well so few points pin a coverage (points
    of one curve are not independent, so for dense curves it is optimistic)."""
    p = inside / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return f"[{max(0.0, centre - half):.2f}, {min(1.0, centre + half):.2f}]"


def band_of(factor: np.ndarray) -> np.ndarray:
    out = np.empty(factor.shape, dtype=object)
    for name, lo, hi in BANDS:
        out[(factor > lo) & (factor <= hi)] = name
    return out


def table(results: list[dict]) -> pd.DataFrame:
    """Coverage (mean over curves) and median relative width per source, split, band and level."""
    recs = []
    for r in results:
        if "rows" not in r:
            continue
        t = r["task"]
        bands = band_of(r["rows"]["factor"])
        for band in np.unique(bands):
            sel = bands == band
            rec = {"source": t.source, "split": t.split, "band": band, "curve": t.name, "points": int(sel.sum())}
            for q in LEVELS:
                rec[f"cov_{q}"] = float(np.mean(r["rows"][f"in_{q}"][sel]))
                rec[f"inside_{q}"] = int(np.sum(r["rows"][f"in_{q}"][sel]))
                rec[f"widths_{q}"] = r["rows"][f"width_{q}"][sel].tolist()
            recs.append(rec)
    df = pd.DataFrame(recs)

    def one(g: pd.DataFrame) -> pd.Series:
        out = {"curves": len(g), "points": int(g.points.sum())}
        for q in LEVELS:
            out[f"coverage {q:g}"] = g[f"cov_{q}"].mean()
        out["coverage 0.9 (points)"] = g["inside_0.9"].sum() / g.points.sum()
        out["its 90% range"] = wilson(int(g["inside_0.9"].sum()), int(g.points.sum()))
        out["width 0.9"] = float(np.median(np.concatenate(g["widths_0.9"].to_list())))
        return pd.Series(out)

    order = {name: i for i, (name, _, _) in enumerate(BANDS)}
    out = df.groupby(["source", "split", "band"]).apply(one, include_groups=False).reset_index()
    out = out.sort_values(["source", "split", "band"], key=lambda c: c.map(order) if c.name == "band" else c)
    return out.astype({"curves": int, "points": int}).reset_index(drop=True)


def verdict(tab: pd.DataFrame) -> list[str]:
    """One line per source, split and band whose level-0.9 coverage lies outside TARGET, with the
    90% range of what so many points can tell."""
    lines = []
    for _, r in tab.iterrows():
        cov = r["coverage 0.9"]
        if not TARGET[0] <= cov <= TARGET[1]:
            lines.append(f"  {r.source}/{r.split}/{r.band}: {cov:.3f} outside [{TARGET[0]:.2f}, {TARGET[1]:.2f}] "
                         f"({r.points} points, 90% range {r['its 90% range']})")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", default="public,synthetic,quick")
    ap.add_argument("--splits", default="dev,held-out")
    ap.add_argument("--per-family", type=int, default=40, help="synthetic curves per family and split")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--quick-points", type=Path, default=QUICK_POINTS)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sources, splits = args.sources.split(","), args.splits.split(",")
    work: list[Task] = []
    if "public" in sources:
        work += public_tasks(args.data)
    if "synthetic" in sources:
        for split in splits:
            work += synthetic_tasks(split, args.per_family)
    if "quick" in sources:
        work += quick_tasks(args.quick_points)
    work = [t for t in work if t.split in splits]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(partial(score, n_boot=args.n_boot), work, chunksize=4))
    wall = time.perf_counter() - t0
    failed = [r for r in results if "error" in r]
    tab = table(results)
    print(f"{len(results)} curves ({len(failed)} not fitted), {wall:.0f} s on {args.jobs} processes")
    print(tab.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    bad = verdict(tab)
    print("target at level 0.9, coverage in [0.80, 0.95] everywhere: " + ("met" if not bad else "NOT met"))
    print("\n".join(bad))
    for r in failed[:10]:
        print(f"  not fitted: {r['task'].source}/{r['task'].name}: {r['error']}")
    if args.markdown:
        args.markdown.write_text(tab.to_markdown(index=False, floatfmt=".3f") + "\n")


if __name__ == "__main__":
    main()

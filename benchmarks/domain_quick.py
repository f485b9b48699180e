"""Each domain's quick study on this machine: wall time, beta_g and beta_p with intervals, next to
the exponents Hestness et al. (2017) report, the m_max/8 backtest (the largest fitted subset
predicted from the subsets up to an eighth of it) and the compute-limited subsets.

Runs ``scal study --domain D --budget quick`` through the library call (the Ray executor where
more than one trial fits, as the CLI does) into a fresh sqlite store per domain and prints one
line per domain. Target: each quick study within 15 minutes on the 2-core machine.

    python benchmarks/domain_quick.py                     # every registered domain but toy
    python benchmarks/domain_quick.py --domains image     # about 12 minutes on 2 cores
    python benchmarks/domain_quick.py --points-csv benchmarks/data/quick_points.csv

``--points-csv FILE`` also writes every study's best-fit points (domain, unit, m, the median
error, each seed's error, the region, in_fit and the compute-limited reason), one row per
subset: benchmarks/calibration.py backtests the quick studies from that file.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import tempfile
import time
from pathlib import Path

import domains
from scal.study import StudyConfig, run_study

# The paper's learning-curve exponents (section 4), by domain and unit.
PAPER_BETA_G = {("lm", "char"): -0.094, ("lm", "word"): -0.066, ("nmt", None): -0.128,
                ("image", None): -0.309, ("speech", None): -0.299,
                ("speech_attn", None): -0.299}
TARGET_S = 15 * 60


def one(domain: str, unit: str | None, budget: str = "quick", after=None, data: str | None = None,
        **overrides) -> dict:
    """The study's summary plus ``wall_s``; ``after(uri, summary)`` may read the temporary store
    (to refit, say) before it is deleted. ``overrides`` are further `StudyConfig` fields."""
    with tempfile.TemporaryDirectory() as d:
        uri = f"sqlite:///{Path(d) / 'mlflow.db'}"
        cfg = StudyConfig(domain=domain, unit=unit, budget=budget, tracking_uri=uri, progress=False, data=data,
                          **overrides)
        t0 = time.perf_counter()
        s = run_study(cfg)
        s["wall_s"] = time.perf_counter() - t0
        if after is not None:
            after(uri, s)
        return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domains", default=",".join(n for n in domains.REGISTRY if n != "toy"))
    ap.add_argument("--points-csv", type=Path, default=None, help="also write each study's best-fit points here")
    args = ap.parse_args()
    rows: list[dict] = []
    logging.basicConfig(level=logging.WARNING)
    print(f"{'domain':<12} {'wall':>7} {'target':>6}  {'beta_g [95%]':<28} {'paper':>6}  {'beta_p [95%]':<26} {'form':<5} "
          "backtest m_max/8 -> m_max (rel. error, inside)  compute-limited")
    for name in args.domains.split(","):
        unit = domains.default_unit(domains.get(name))
        s = one(name, None)
        paper = PAPER_BETA_G.get((name, unit), PAPER_BETA_G.get((name, None)))
        (glo, ghi), (plo, phi) = s["beta_g_interval"], s["beta_p_interval"]
        print(f"{name + '/' + unit:<12} {s['wall_s'] / 60:>5.1f} m {'yes' if s['wall_s'] <= TARGET_S else 'NO':>6}  "
              f"{s['beta_g']:>7.3f} [{glo:.3f}, {ghi:.3f}]{'':<6} {paper:>6.3f}  "
              f"{s['beta_p']:>6.3f} [{plo:.3f}, {phi:.3f}]{'':<6} {s['form']:<5} {_backtest(s['backtest'])}  "
              f"{sum(1 for p in s['subsets'] if p['compute_limited'])} of {len(s['subsets'])}", flush=True)
        rows += [{"domain": name, "unit": unit, "m": p["size"], "val_error": p["val_error"],
                  "seed_errors": json.dumps(p["seed_errors"]), "region": p["region"], "in_fit": int(p["in_fit"]),
                  "compute_limited": p["compute_limited"] or "", "metric": s["metric"],
                  "wall_s": round(s["wall_s"], 1)} for p in s["subsets"]]
        if args.points_csv:   # after every domain, so a long run keeps what it has measured
            write_points(args.points_csv, rows)


def write_points(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _backtest(bt: dict) -> str:
    """The m_max/8 backtest's prediction of the largest fitted subset, or why there is none."""
    if bt.get("error"):
        return f"none: {bt['error']}"
    last = bt["points"][-1]
    return (f"{bt['fit_max_x']:g} -> {last['x']:g}: {100 * last['rel_error']:+.1f}%, "
            f"{'inside' if last['inside'] else 'outside'} [{last['low']:.4g}, {last['high']:.4g}]")


if __name__ == "__main__":
    main()

"""Benchmark: the default `scal study` (lm, char, quick budget) on this machine.

Prints wall time, number of trials, the subsets and their span, each point's region, and
beta_g / beta_p with their intervals, and the m_max/8 backtest. Targets (issue 14): at most 10
minutes on 2 cores, monotone best-fit points, at least 5 of them in the power-law region, none
compute-limited. The study runs as a user runs it (`python -m scal study --json`), in a
temporary directory with its own sqlite store.

    python benchmarks/default_study.py [-- extra scal study options]
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time


def main() -> None:
    extra = sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="scal-bench-") as d:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "scal", "study", "--json", *extra], cwd=d,
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"scal study failed with exit code {proc.returncode}")
    s = json.loads(proc.stdout)
    sizes = [x["size"] for x in s["subsets"]]
    span = math.log10(sizes[-1] / sizes[0])
    print(f"default study ({s['domain']}/{s['unit']}, budget {s['budget']}): wall {wall:.0f} s ({wall / 60:.1f} min; target <= 10)")
    print(f"trials: {s['n_trials']}   subsets: {len(sizes)} ({sizes[0]:,} .. {sizes[-1]:,}, {span:.2f} orders)")
    print(f"{'m':>9} {s['metric']:>14} {'n_params':>9}  {'region':<16} knobs")
    for x in s["subsets"]:
        print(f"{x['size']:>9,} {x['val_error']:>14.4f} {x['n_params']:>9,}  {x['region']:<16} {x['size_knobs']} lr={x['lr']:.3g}")
    errs = [x["val_error"] for x in s["subsets"]]
    regions = [x["region"] for x in s["subsets"]]
    print(f"monotone: {all(a > b for a, b in zip(errs, errs[1:]))}   power-law points: {regions.count('power-law')} "
          f"(target >= 5)   compute-limited: {regions.count('compute-limited')} (target 0)")
    bt = s["backtest"]
    if bt.get("error"):
        print(f"backtest m_max/8: none ({bt['error']})")
    else:
        last = bt["points"][-1]
        print(f"backtest m_max/8: fitted up to {bt['fit_max_x']:,.0f}, at {last['x']:,.0f} predicted {last['predicted']:.4g} "
              f"[{last['low']:.4g}, {last['high']:.4g}] vs observed {last['observed']:.4g}: "
              f"{100 * last['rel_error']:+.1f}%, {'inside' if last['inside'] else 'outside'}")
    print(f"beta_g = {s['beta_g']:.3f}  95% [{s['beta_g_interval'][0]:.3f}, {s['beta_g_interval'][1]:.3f}]   "
          f"gamma = {s['gamma']:.3f}")
    print(f"beta_p = {s['beta_p']:.3f}  95% [{s['beta_p_interval'][0]:.3f}, {s['beta_p_interval'][1]:.3f}]   "
          f"sublinear: {s['sublinear']}")


if __name__ == "__main__":
    main()

"""Fitting speed: curves per second of ``scal fit --form auto`` with the default intervals.

Builds 120 synthetic learning curves of 15 points (fixed seed: half M2, half M4, x from 1e3 to
1e7 with jittered spacing, 3% log-normal noise), writes them to one long CSV, and fits them the
way ``scal fit FILE --group curve --size ...`` does (`analysis.table.fit_table`: form auto,
200 bootstrap resamples, 90% predictive intervals at two sizes beyond the data). Timed in one
run, on the same curves:

- before: ``solver="scipy"``, one process: scipy's least_squares one start at a time and two
  starts per bootstrap refit, the fitting path before the batched solver. It already uses the
  analytic Jacobians added with the batched solver (the committed code before them used finite
  differences for m1, m2, m3 and bnsl), so it is somewhat faster than that code was and the
  ratio below understates the speed-up. Timed on the first --before-curves curves only (it
  takes seconds per curve).
- after, 1 process: the batched Levenberg-Marquardt (`analysis.solve`), one process.
- after, --jobs processes: the same, curves spread over a process pool (the default of
  ``scal fit``: one per core).

Wall-clock times on a shared machine vary with its load; CPU seconds per curve are printed too.
Target: 120 curves in at most 60 s on a 2-core machine.

    python benchmarks/fit_speed.py [--curves 120] [--before-curves 6] [--jobs N]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from analysis.forms import M2, M4
from analysis.select import fit_curve
from analysis.table import default_jobs, fit_table

N_POINTS = 15
NOISE_LOG = 0.03


def make_curves(n_curves: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Noisy M2 and M4 curves (alternating) with random parameters, 15 points each."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_curves):
        x = np.sort(np.exp(np.linspace(np.log(1e3), np.log(1e7), N_POINTS) + rng.uniform(-0.1, 0.1, N_POINTS)))
        beta = rng.uniform(-0.7, -0.2)
        if i % 2 == 0:
            clean = M2().curve({"alpha": rng.uniform(2.0, 20.0), "beta_g": beta, "gamma": rng.uniform(0.0, 0.2)}, x)
        else:
            clean = M4().curve({"alpha": rng.uniform(5.0, 50.0), "beta_g": beta, "gamma": rng.uniform(0.01, 0.2),
                                "eps_0": 1.0, "shape": rng.uniform(0.3, 2.0)}, x)
        out.append((x, clean * np.exp(rng.normal(0.0, NOISE_LOG, N_POINTS))))
    return out


def write_csv(curves, path: Path) -> Path:
    with path.open("w") as fh:
        fh.write("curve,examples,error\n")
        for i, (x, y) in enumerate(curves):
            fh.writelines(f"c{i:03d},{float(a)!r},{float(b)!r}\n" for a, b in zip(x, y))
    return path


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its finished children) of fn()."""
    import os

    t0, c0 = time.perf_counter(), os.times()
    fn()
    t1, c1 = time.perf_counter(), os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system) + (c1.children_user - c0.children_user) + \
          (c1.children_system - c0.children_system)
    return t1 - t0, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--curves", type=int, default=120)
    ap.add_argument("--before-curves", type=int, default=6)
    ap.add_argument("--jobs", type=int, default=default_jobs())
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    curves = make_curves(args.curves)
    predict_at = [2e7, 1e8]
    with tempfile.TemporaryDirectory() as tmp:
        csv = write_csv(curves, Path(tmp) / "curves.csv")
        before = curves[: args.before_curves]
        wall_b, cpu_b = timed(lambda: [fit_curve(x, y, solver="scipy").fit.interval(np.array(predict_at))
                                       for x, y in before])
        wall_1, cpu_1 = timed(lambda: fit_table(csv, "examples", "error", group="curve", predict_at=predict_at, jobs=1))
        wall_j, cpu_j = timed(lambda: fit_table(csv, "examples", "error", group="curve", predict_at=predict_at,
                                                jobs=args.jobs))
    rate_b, rate_1, rate_j = len(before) / wall_b, len(curves) / wall_1, len(curves) / wall_j
    print(f"{len(curves)} curves of {N_POINTS} points, form auto, 200 bootstrap resamples, 2 predictions each")
    print(f"{'path':34s} {'curves':>6s} {'wall s':>8s} {'curves/s':>9s} {'CPU s/curve':>12s}")
    for name, n, wall, cpu, rate in (
            ("before (scipy, 1 process)", len(before), wall_b, cpu_b, rate_b),
            ("after (batched LM, 1 process)", len(curves), wall_1, cpu_1, rate_1),
            (f"after (batched LM, {args.jobs} processes)", len(curves), wall_j, cpu_j, rate_j)):
        print(f"{name:34s} {n:6d} {wall:8.1f} {rate:9.2f} {cpu / n:12.3f}")
    print(f"speed-up, 1 process: {rate_1 / rate_b:.1f}x; with {args.jobs} processes: {rate_j / rate_b:.1f}x "
          f"(wall-clock curves/s, same run)")
    print(f"target {len(curves)} curves in <= 60 s: {'yes' if wall_j <= 60 else 'NO'} ({wall_j:.1f} s)")


if __name__ == "__main__":
    main()

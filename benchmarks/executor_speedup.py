"""Ray executor vs local executor on this machine: speed-up on a smoke study, overhead per trial.

1. The same smoke study (lm, char level, 4 subsets) with ``--executor local`` (one trial at a time,
   torch on every core) and ``--executor ray`` (one trial per core, 1 thread each), each into its
   own fresh sqlite store. Speed-up = local wall time / Ray wall time (Ray's start-up included).
2. Scheduling overhead: N trials of one optimizer step each, one at a time (``max_concurrent=1``),
   through both executors in one process. Overhead per trial = (Ray - local) / N, in ms.

    python benchmarks/executor_speedup.py          # about 4 minutes on 2 cores
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from scal.study import StudyConfig, prepare, run_study
from search.executor import ExecutorSettings
from search.trial import FixedProposer
from search.interpolate import Config

N_TINY = 40


def study_wall_s(kind: str) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as d:
        cfg = StudyConfig(domain="lm", unit="char", budget="smoke", tracking_uri=f"sqlite:///{Path(d) / 'mlflow.db'}",
                          device="cpu", progress=False, executor=ExecutorSettings(kind=kind))
        t0 = time.perf_counter()
        summary = run_study(cfg)
        return time.perf_counter() - t0, summary


def tiny_batch_s(kind: str) -> float:
    p = prepare(StudyConfig(domain="toy", budget="smoke", device="cpu", progress=False))
    one_step = replace(p.settings.scale.train, max_steps=1, max_rounds=1, min_round_steps=1)
    specs = [replace(p.settings.make_spec(64, Config({"width": 4, "layers": 1}, 0.01), seed), train=one_step)
             for seed in range(N_TINY)]
    ex = p.executor(ExecutorSettings(kind=kind, max_concurrent=1))
    try:
        ex.run(FixedProposer(specs[:2]), "grid", lambda o: None)     # warm-up: start the worker
        t0 = time.perf_counter()
        ex.run(FixedProposer(specs[2:]), "grid", lambda o: None)
        return time.perf_counter() - t0
    finally:
        ex.close()


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    local_s, local = study_wall_s("local")
    ray_s, ray = study_wall_s("ray")
    print(f"smoke study (lm char, {len(local['subsets'])} subsets, {local['n_trials']} trials): "
          f"local {local_s:.1f} s, ray {ray_s:.1f} s ({ray['concurrency']} at once), speed-up {local_s / ray_s:.2f}x")
    print(f"  beta_g local {local['beta_g']:.3f}, ray {ray['beta_g']:.3f} (1 vs {ray['concurrency']} threads per trial)")
    n = N_TINY - 2
    loc, ray_t = tiny_batch_s("local"), tiny_batch_s("ray")
    print(f"{n} one-step trials one at a time: local {1000 * loc / n:.1f} ms/trial, ray {1000 * ray_t / n:.1f} ms/trial, "
          f"scheduling overhead {1000 * (ray_t - loc) / n:.0f} ms per trial")


if __name__ == "__main__":
    main()

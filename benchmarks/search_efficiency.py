"""Search efficiency: how close each search comes to the exhaustive grid's best, at what cost.

Replays searches from the exhaustive grids of `benchmarks/search_grids.py` (shipped in
``benchmarks/data/search_grids.csv``: per case, 5 widths x 5 learning rates x 2 seeds, every
trial's validation rounds). Trials are deterministic for a seed and thread count, so a search
that trains a subset of the grid is replayed from the grid's own results; a trial stopped after
r rounds is the first r rounds of the full run (the schedule follows the step budget, not the
stop), costed at the share of its steps it ran.

A search *finds* the configuration the one best-fit rule (`search.bestfit.choose`) picks from
the trials it ran; it is scored by that configuration's exhaustive-grid score (median over both
seeds), against the grid's best. Cost is the CPU-seconds of the trials it ran, against the
whole grid's. Randomised searches are replayed over every draw (or 200 seeded ones).

Methods:

- ``default``: the quick budget's search as it is: the centre plus K-1 = 2 configurations drawn
  from its 3x3 grid (widths x 0.71, 1, 1.41; learning rates x 0.5, 1, 2), 2 seeds each;
- ``mc K``: the centre plus K-1 drawn from the whole 5x5 grid, 2 seeds each;
- ``race K/R``: the same K on their first seed, the second seed for the best R (``--race-keep``);
- ``halving r/R``: every configuration of the 5x5 grid on its first seed, stopped after its first
  r validation rounds; the best R by then train to the end on both seeds (deterministic: one
  draw per case).

Cases are split before any setting is chosen (`search_grids.CASES`): settings are chosen on the
``dev`` cases, and the ``heldout`` cases (other subsets, other centres) are reported beside them.
Target (issue 20): within 2% of the grid's best in at least 90% of draws, at most 25% of its cost.

    python benchmarks/search_efficiency.py                   # seconds: replays only
    python benchmarks/search_efficiency.py --csv /tmp/grids.csv
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from search.bestfit import TrialRecord, choose

DATA = Path(__file__).parent / "data" / "search_grids.csv"
SEEDS = (0, 1)
INNER = ((0.71, 1.41), (0.5, 2.0))   # the quick budget's width and lr multipliers besides 1
OUTER = ((0.5, 0.71, 1.41, 2.0), (0.25, 0.5, 2.0, 4.0))   # the whole 5x5 grid's


@dataclass(frozen=True)
class Trial:
    value: float                        # min over rounds of val_error (the trial's value)
    status: str
    n_params: int
    wall_s: float
    steps: int
    rounds: tuple[tuple[int, float], ...]

    def stopped_after(self, n: int) -> tuple[float, float, str]:
        """(value, CPU-seconds, status) of this run stopped after its first ``n`` validation rounds
        (rounds have the same length for every configuration of a subset); a run that ended
        sooner (its own early stop) is whole."""
        if n >= len(self.rounds) or self.status != "ok":
            return self.value, self.wall_s, self.status
        step = self.rounds[n - 1][0]
        return min(v for _, v in self.rounds[:n]), self.wall_s * step / max(self.steps, 1), "stopped"


@dataclass
class Case:
    domain: str
    role: str
    m: int
    centre: tuple[int, float]
    grid: dict[tuple[int, float], dict[int, Trial]]          # (width, lr) -> seed -> trial

    @property
    def name(self) -> str:
        return f"{self.domain} m={self.m:,} ({self.role})"

    def score(self, cfg: tuple[int, float]) -> float:
        vals = [t.value for t in self.grid[cfg].values() if t.status == "ok" and math.isfinite(t.value)]
        return float(np.median(vals)) if vals else math.inf

    @property
    def cost(self) -> float:
        return sum(t.wall_s for seeds in self.grid.values() for t in seeds.values())

    def neighbours(self, width_mults: tuple[float, ...], lr_mults: tuple[float, ...]) -> list[tuple[int, float]]:
        """The grid points at the given multipliers of the centre (the centre excluded), in grid order."""
        w0, lr0 = self.centre
        widths = {round(w0 * x) for x in (1.0, *width_mults)}
        lrs = [lr0 * x for x in (1.0, *lr_mults)]
        return [cfg for cfg in self.grid if cfg != self.centre and cfg[0] in widths
                and any(math.isclose(cfg[1], lr, rel_tol=1e-5) for lr in lrs)]


def load(path: Path) -> list[Case]:
    cases: dict[tuple, Case] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            key = (row["domain"], int(row["m"]))
            case = cases.setdefault(key, Case(row["domain"], row["role"], int(row["m"]),
                                              (int(row["centre_width"]), float(f"{float(row['centre_lr']):.6g}")), {}))
            cfg = (int(row["width"]), float(f"{float(row['lr']):.6g}"))
            case.grid.setdefault(cfg, {})[int(row["seed"])] = Trial(
                float(row["min_val_error"]), row["status"], int(row["n_params"]), float(row["wall_s"]), int(row["steps"]),
                tuple((int(s), float(v)) for s, v in json.loads(row["rounds"])))
    return list(cases.values())


# --- searches: each returns (the configuration it picks, its CPU-seconds) --------------------------

def _pick(case: Case, ran: dict[tuple[tuple[int, float], int], tuple[float, str]]) -> tuple[int, float] | None:
    """The one best-fit rule over the trials a search ran: (config, seed) -> (value, status)."""
    chosen = choose(TrialRecord(cfg, seed, status, value, case.grid[cfg][seed].n_params)
                    for (cfg, seed), (value, status) in ran.items())
    return chosen.config if chosen is not None else None


def full_seeds(case: Case, configs: list[tuple[int, float]]) -> tuple[tuple[int, float] | None, float]:
    ran = {(c, s): (case.grid[c][s].value, case.grid[c][s].status) for c in configs for s in SEEDS}
    return _pick(case, ran), sum(case.grid[c][s].wall_s for c in configs for s in SEEDS)


def race(case: Case, configs: list[tuple[int, float]], keep: int) -> tuple[tuple[int, float] | None, float]:
    first = {c: case.grid[c][SEEDS[0]] for c in configs}
    ranked = sorted(configs, key=lambda c: (first[c].value if first[c].status == "ok" else math.inf, first[c].n_params))
    ran = {(c, SEEDS[0]): (first[c].value, first[c].status) for c in configs}
    ran |= {(c, s): (case.grid[c][s].value, case.grid[c][s].status) for c in ranked[:keep] for s in SEEDS[1:]}
    cost = sum(t.wall_s for t in first.values()) + sum(case.grid[c][s].wall_s for c in ranked[:keep] for s in SEEDS[1:])
    return _pick(case, ran), cost


def halving(case: Case, rounds: int, keep: int) -> tuple[tuple[int, float] | None, float]:
    """Every configuration on its first seed, stopped after ``rounds`` validation rounds; the best
    ``keep`` then run to the end on every seed (restarted: the stopped run is not resumed)."""
    configs = list(case.grid)
    early = {c: case.grid[c][SEEDS[0]].stopped_after(rounds) for c in configs}
    ranked = sorted(configs, key=lambda c: (early[c][0] if early[c][2] != "diverged" and math.isfinite(early[c][0])
                                            else math.inf, case.grid[c][SEEDS[0]].n_params))
    ran = {(c, SEEDS[0]): (early[c][0], early[c][2]) for c in configs}
    ran |= {(c, s): (case.grid[c][s].value, case.grid[c][s].status) for c in ranked[:keep] for s in SEEDS}
    cost = sum(e[1] for e in early.values()) + sum(case.grid[c][s].wall_s for c in ranked[:keep] for s in SEEDS)
    return _pick(case, ran), cost


def draws_mc(case: Case, pool: list[tuple[int, float]], k: int, n_draws: int = 200) -> Iterator[list[tuple[int, float]]]:
    """The centre plus k-1 of ``pool``: every combination when there are at most ``n_draws``, else seeded draws."""
    combos = math.comb(len(pool), k - 1)
    if combos <= n_draws:
        for rest in itertools.combinations(pool, k - 1):
            yield [case.centre, *rest]
        return
    for draw in range(n_draws):
        idx = np.random.default_rng(draw).choice(len(pool), k - 1, replace=False)
        yield [case.centre, *(pool[int(i)] for i in idx)]


Method = Callable[[Case], list[tuple[tuple[int, float] | None, float]]]


def methods() -> dict[str, Method]:
    out: dict[str, Method] = {
        "default (K=3 of 3x3, S=2)": lambda c: [full_seeds(c, d) for d in draws_mc(c, c.neighbours(*INNER), 3)],
        "exhaustive 3x3 (K=9, S=2)": lambda c: [full_seeds(c, [c.centre, *c.neighbours(*INNER)])],
    }
    for k in (4, 6):
        out[f"mc K={k} of 5x5, S=2"] = lambda c, k=k: [full_seeds(c, d) for d in draws_mc(c, c.neighbours(*OUTER), k)]
    for k, r in ((9, 2), (12, 1), (12, 2)):
        out[f"race K={k}/R={r} of 5x5"] = lambda c, k=k, r=r: [race(c, d, r) for d in draws_mc(c, c.neighbours(*OUTER), k)]
    for rounds, keep in ((1, 2), (2, 2), (3, 2), (2, 3), (3, 3), (4, 2)):
        out[f"halving r={rounds}/R={keep} of 5x5"] = lambda c, rounds=rounds, keep=keep: [halving(c, rounds, keep)]
    return out


def evaluate(cases: list[Case], method: Method) -> dict[str, float]:
    gaps, costs = [], []
    for case in cases:
        best = min(case.score(cfg) for cfg in case.grid)
        for picked, cost in method(case):
            found = case.score(picked) if picked is not None else math.inf
            gaps.append(found / best - 1)
            costs.append(cost / case.cost)
    return {"draws": len(gaps), "within_2pct": sum(g <= 0.02 for g in gaps) / len(gaps),
            "median_gap": statistics.median(gaps), "worst_gap": max(gaps), "median_cost": statistics.median(costs),
            "worst_cost": max(costs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", type=Path, default=DATA)
    args = ap.parse_args()
    cases = load(args.csv)
    print(f"{'case':<28} {'grid best':>10} {'at width x':>10} {'lr x':>6} {'seed spread':>11} {'within 2%':>9} "
          f"{'CPU-s':>6}")
    for c in cases:
        best = min(c.grid, key=lambda g: (c.score(g), repr(g)))
        vals = [t.value for t in c.grid[best].values()]
        near = sum(c.score(g) <= 1.02 * c.score(best) for g in c.grid)
        print(f"{c.name:<28} {c.score(best):>10.5g} {best[0] / c.centre[0]:>10.2f} {best[1] / c.centre[1]:>6.2f} "
              f"{100 * (max(vals) - min(vals)) / c.score(best):>10.1f}% {near:>6}/{len(c.grid)} {c.cost:>6.0f}")
    print(f"\n{'method':<34} {'split':<8} {'draws':>5} {'within 2%':>9} {'median gap':>10} {'worst gap':>9} "
          f"{'median cost':>11} {'worst cost':>10}  target")
    for name, method in methods().items():
        for split in ("dev", "heldout"):
            for dom in sorted({c.domain for c in cases}) + ["all"]:
                sub = [c for c in cases if c.role == split and (dom == "all" or c.domain == dom)]
                if not sub:
                    continue
                r = evaluate(sub, method)
                ok = "yes" if r["within_2pct"] >= 0.9 and r["worst_cost"] <= 0.25 else "no"
                print(f"{name if dom == 'all' else '  ' + dom:<34} {split:<8} {r['draws']:>5} {100 * r['within_2pct']:>8.0f}% "
                      f"{100 * r['median_gap']:>9.2f}% {100 * r['worst_gap']:>8.2f}% {100 * r['median_cost']:>10.1f}% "
                      f"{100 * r['worst_cost']:>9.1f}%  {ok if dom == 'all' else ''}")


if __name__ == "__main__":
    main()

"""Proposers for a subset's best-fit search: the Monte Carlo grid and Bayesian refinement (skopt).

Both pick K configurations from the same grid around the centre (`search.grid.grid_configs`)
and train each with S seeds as separate trials, so seeds run in parallel; a configuration's score
(the median over its seeds of the minimum validation error) is known when its last seed finishes.

- `GridProposer`: the centre plus K-1 grid points drawn at random (the paper's Monte Carlo grid).
- `RacingProposer` (``--race-keep R``): the Monte Carlo configurations on their first seed, then
  the other seeds for the best R only.
- `SkoptProposer` (``--searcher skopt``): the centre, then points chosen by a scikit-optimize
  `Optimizer` (Gaussian process or random forest, expected improvement) through ask/tell.
  The grid lives in a unit cube of (log width, log learning rate, depth); an asked point is
  snapped to the nearest grid point not yet tried, and that point is what the optimizer is told.
  While seeds of earlier points still run, a copy of the optimizer is told a "constant liar"
  value for them (the best score so far), so concurrent asks spread out instead of repeating.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from domains.protocol import TrialResult, TrialSpec
from search.trial import FINISHED, FixedProposer
from search.grid import ConfigScore
from search.interpolate import Config

MakeSpec = Callable[[Config, int], TrialSpec]
ESTIMATORS = ("GP", "RF", "ET")   # skopt's GBRT is broken on current scikit-learn: not offered


class GridProposer:
    """Every configuration x every seed, in order; ``scores`` fill in as results come back."""

    def __init__(self, configs: list[Config], seeds: list[int], make_spec: MakeSpec):
        self.scores = [ConfigScore(c) for c in configs]
        self._index: dict[str, int] = {}
        specs = []
        for i, c in enumerate(configs):
            for s in seeds:
                spec = make_spec(c, s)
                self._index[spec.trial_hash()] = i
                specs.append(spec)
        self._fixed = FixedProposer(specs)
        self.n_trials = len(specs)

    def suggest(self) -> TrialSpec | str:
        return self._fixed.suggest()

    def complete(self, spec: TrialSpec, result: TrialResult) -> None:
        self._fixed.complete(spec, result)
        self.scores[self._index[spec.trial_hash()]].results.append(result)


class SkoptProposer:
    """K of the grid's configurations chosen by Bayesian optimisation, S seeds each."""

    def __init__(self, grid: list[Config], n_configs: int, seeds: list[int], make_spec: MakeSpec, grow_knob: str,
                 seed: int = 0, estimator: str = "GP", n_initial: int = 3):
        from skopt import Optimizer  # imported here: only `--searcher skopt` pays for it

        if estimator not in ESTIMATORS:
            raise ValueError(f"unknown skopt estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
        self.grid, self.seeds, self.make_spec = grid, list(seeds), make_spec
        self.n_configs = min(n_configs, len(grid))
        self.n_trials = self.n_configs * len(self.seeds)
        coords = np.array([[math.log(c.size[grow_knob]), math.log(c.lr), c.size.get("layers", 0)] for c in grid], float)
        span = np.ptp(coords, axis=0)
        keep = span > 0
        self.unit = (coords[:, keep] - coords[:, keep].min(axis=0)) / span[keep]   # grid in [0, 1]^d
        self.rng = np.random.default_rng(seed)
        self.opt = Optimizer([(0.0, 1.0)] * int(keep.sum()), base_estimator=estimator, acq_func="EI",
                             n_initial_points=max(1, n_initial), random_state=seed) if keep.any() else None
        self.scores: list[ConfigScore] = []
        self._index: dict[str, int] = {}      # trial hash -> position in self.scores
        self._point: list[int] = []           # position in self.scores -> grid index
        self._queue: list[TrialSpec] = []
        self._told: set[int] = set()

    def suggest(self) -> TrialSpec | str:
        if not self._queue:
            if len(self.scores) >= self.n_configs:
                return FINISHED
            i = 0 if not self.scores else self._ask()
            self._point.append(i)
            self.scores.append(ConfigScore(self.grid[i]))
            for s in self.seeds:
                spec = self.make_spec(self.grid[i], s)
                self._index[spec.trial_hash()] = len(self.scores) - 1
                self._queue.append(spec)
        return self._queue.pop(0)

    def complete(self, spec: TrialSpec, result: TrialResult) -> None:
        j = self._index[spec.trial_hash()]
        self.scores[j].results.append(result)
        if len(self.scores[j].results) == len(self.seeds) and self.opt is not None:
            self._told.add(j)
            self.opt.tell(list(self.unit[self._point[j]]), self._finite(self.scores[j].score))

    def _finite(self, score: float) -> float:
        """skopt needs finite values: a configuration with no usable seed scores as the worst seen, x2."""
        if math.isfinite(score):
            return score
        seen = [s.score for s in self.scores if math.isfinite(s.score)]
        return 2 * max(seen) if seen else 1e6

    def _ask(self) -> int:
        untried = [i for i in range(len(self.grid)) if i not in self._point]
        if self.opt is None:
            return untried[0]
        pending = [j for j in range(len(self.scores)) if j not in self._told]
        opt = self.opt
        if pending and self.opt.yi:
            opt = self.opt.copy(random_state=int(self.rng.integers(2**31)))
            for j in pending:
                opt.tell(list(self.unit[self._point[j]]), min(self.opt.yi))
        elif pending:   # nothing told yet: still the random phase, so pick an untried point at random
            return int(self.rng.choice(untried))
        x = np.asarray(opt.ask(), float)
        dist = np.linalg.norm(self.unit[untried] - x, axis=1)
        return untried[int(np.argmin(dist))]

    def results(self) -> list[TrialResult]:
        return [r for s in self.scores for r in s.results]


class RacingProposer:
    """The Monte Carlo configurations raced on their first seed (``--race-keep R``).

    Round 1 trains every configuration with the first seed only. When all of them are done, the
    R configurations with the lowest first-seed error (ties: fewer parameters) get the remaining
    S-1 seeds; only they compete, scored as always by the median over their S seeds. Trainings:
    K + R(S-1) instead of K S, so at the cost of the plain grid K can roughly double (with S = 2,
    R = 2: K = 9 costs what K = 5 does). A lucky first seed cannot win alone: a configuration
    needs all its seeds to compete (`search.bestfit`'s full-seed rule, which the analysis applies
    to the same trials read back from MLflow), and configurations raced out keep their one trial.
    """

    def __init__(self, configs: list[Config], seeds: list[int], make_spec: MakeSpec, keep: int):
        if keep < 1:
            raise ValueError(f"--race-keep must be at least 1, got {keep}")
        self.configs, self.seeds, self.make_spec = list(configs), list(seeds), make_spec
        self.keep = min(keep, len(self.configs))
        self.all_scores = [ConfigScore(c) for c in self.configs]
        self.n_trials = len(self.configs) + self.keep * (len(self.seeds) - 1)
        self._index: dict[str, int] = {}
        self._queue = [self._spec(i, self.seeds[0]) for i in range(len(self.configs))]
        self._first_done = 0
        self._promoted: list[int] | None = None

    def _spec(self, i: int, seed: int) -> TrialSpec:
        spec = self.make_spec(self.configs[i], seed)
        self._index[spec.trial_hash()] = i
        return spec

    @property
    def scores(self) -> list[ConfigScore]:
        """Every configuration of the race: the best-fit rule's full-seed rule (`search.bestfit`)
        keeps the raced-out ones, which were given one seed, from competing."""
        return self.all_scores

    def contenders(self) -> list[ConfigScore]:
        """The promoted configurations once the race is decided (all before)."""
        if self._promoted is None:
            return self.all_scores
        return [self.all_scores[i] for i in self._promoted]

    def suggest(self) -> TrialSpec | str | None:
        if not self._queue and self._promoted is None:
            if self._first_done < len(self.configs):
                return None                       # the race is decided when every first seed is in
            self._promote()
        return self._queue.pop(0) if self._queue else FINISHED

    def complete(self, spec: TrialSpec, result: TrialResult) -> None:
        i = self._index[spec.trial_hash()]
        self.all_scores[i].results.append(result)
        if spec.seed == self.seeds[0]:
            self._first_done += 1

    def _promote(self) -> None:
        def rank(i: int) -> tuple[float, int]:
            err = self.all_scores[i].score
            return (err if math.isfinite(err) else math.inf, self.all_scores[i].n_params)

        self._promoted = sorted(sorted(range(len(self.configs)), key=rank)[: self.keep])
        self._queue = [self._spec(i, s) for i in self._promoted for s in self.seeds[1:]]

    def raced_out(self) -> list[ConfigScore]:
        return [s for i, s in enumerate(self.all_scores) if self._promoted is not None and i not in self._promoted]

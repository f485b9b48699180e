"""The whole best-fit search of a study, independent of tracking (the paper's steps 2-4).

1. Anchors: at the smallest and the largest subset, find the smallest overfitting model
   (`search.overfit`), then the best-fit model by a Monte Carlo grid search around it.
2. Every subset in between: the centre is interpolated between the anchors' best-fit
   configurations in log(m) (`search.interpolate`); a Monte Carlo grid search around it
   (`search.grid`) gives the subset's best-fit model.

Training goes through ``trials`` (`Trials`: ``run(specs, role)`` for a fixed list, ``search(proposer,
role)`` for an adaptive one; `scal.study` puts an executor and MLflow behind it), and every
finished subset is handed to ``on_subset(outcome)`` at once, so the caller can log and register it
before the next subset starts: nothing finished is lost if a later one fails.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from domains.protocol import Domain, Scale, TrialResult, TrialSpec
from search.budget import Budget
from search.trial import Proposer
from search.grid import ConfigScore, best_config, grid_configs, sample_configs
from search.interpolate import Config, interpolate
from search.overfit import OverfitSearch, find_smallest_overfitting
from search.refine import GridProposer, RacingProposer, SkoptProposer
from search.subsets import SubsetPlan

SEARCHERS = ("grid", "skopt")


class Trials(Protocol):
    """Where the search sends its trials (`scal.study.TrackedTrials`, or a test's stand-in)."""

    def run(self, specs: list[TrialSpec], role: str) -> list[TrialResult]: ...

    def search(self, proposer: Proposer, role: str) -> None: ...

log = logging.getLogger(__name__)


@dataclass
class SubsetOutcome:
    """One subset's search: its centre, every configuration tried, and the best fit."""

    index: int
    size: int
    centre: Config
    scores: list[ConfigScore]
    overfit: OverfitSearch | None = None

    @property
    def best(self) -> ConfigScore | None:
        """The best-fit configuration (`search.bestfit.choose`); None if no trial has a value."""
        return best_config(self.scores)


@dataclass
class SearchSettings:
    domain: Domain
    unit: str
    budget: Budget
    scale: Scale
    seed: int = 0
    searcher: str = "grid"          # grid (Monte Carlo) | skopt (Bayesian refinement)
    skopt_estimator: str = "GP"

    def make_spec(self, subset_size: int, config: Config, seed: int) -> TrialSpec:
        return TrialSpec(
            domain=self.domain.name,
            unit=self.unit,
            subset_size=int(subset_size),
            size=dict(config.size),
            lr=float(config.lr),
            seed=int(seed),
            budget=self.budget.name,
            train=self.scale.train,
            data_seed=self.seed,
        )


def grid_search(index: int, size: int, centre: Config, s: SearchSettings, trials: Trials) -> SubsetOutcome:
    """Train K configurations x S seeds around ``centre``; score by median minimum validation error.

    The S seeds of a configuration are separate trials (they run in parallel on Ray). With
    ``searcher="grid"`` the K configurations are drawn at random up front; with ``"skopt"`` each
    next one is chosen from the results so far (`search.refine`). With ``budget.race_keep`` the
    random K race on their first seed and only the best ``race_keep`` get the other seeds.
    """
    seeds = [s.seed * 1000 + i for i in range(s.budget.n_seeds)]
    make = lambda cfg, seed: s.make_spec(size, cfg, seed)  # noqa: E731
    if s.searcher == "skopt":
        grid = grid_configs(centre, s.budget, s.domain.grow_knob, s.scale.min_width, s.scale.max_width)
        proposer: GridProposer | SkoptProposer | RacingProposer = SkoptProposer(
            grid, s.budget.k_configs, seeds, make, s.domain.grow_knob, seed=s.seed * 1000 + index,
            estimator=s.skopt_estimator)
    else:
        rng = np.random.default_rng([s.seed, index])
        configs = sample_configs(centre, s.budget, s.domain.grow_knob, s.scale.min_width, s.scale.max_width, rng)
        if s.budget.race_keep and len(seeds) > 1:
            proposer = RacingProposer(configs, seeds, make, s.budget.race_keep)
        else:
            proposer = GridProposer(configs, seeds, make)
    trials.search(proposer, "grid")
    return SubsetOutcome(index, size, centre, proposer.scores)


def anchor(index: int, size: int, start_width: int, s: SearchSettings, trials: Trials) -> SubsetOutcome:
    """Smallest overfitting model at ``size``, then the best fit around it."""
    base = Config(dict(s.scale.size), s.scale.lr)
    found = find_smallest_overfitting(
        size, base, s.domain.grow_knob, start_width, s.scale.max_width, s.budget.bisect_steps,
        s.budget.overfit, s.make_spec, trials.run, seed=s.seed * 1000,
    )
    if not found.reached:
        log.warning(
            "no width up to %d overfits the %d-unit subset within the step budget; using %d (compute-limited)",
            s.scale.max_width, size, found.width,
        )
    centre_size = dict(base.size)
    centre_size[s.domain.grow_knob] = found.width
    outcome = grid_search(index, size, Config(centre_size, base.lr), s, trials)
    outcome.overfit = found
    return outcome


def _best_or_centre(outcome: SubsetOutcome) -> Config:
    """An anchor's best-fit configuration, or its search centre when no trial there had a value."""
    best = outcome.best
    return best.config if best is not None else outcome.centre


def run_search(
    plan: SubsetPlan,
    s: SearchSettings,
    trials: Trials,
    on_subset: Callable[[SubsetOutcome], None] = lambda o: None,
) -> None:
    """Anchors first (smallest, then largest subset), then the subsets between, smallest first;
    each finished subset goes to ``on_subset`` (the search keeps nothing the caller has not seen)."""
    sizes = plan.sizes
    first = anchor(0, sizes[0], s.scale.min_width, s, trials)
    on_subset(first)
    if len(sizes) == 1:
        return
    # A model too small to overfit the small subset cannot overfit a larger one, so the large
    # anchor's growth starts at the small anchor's overfitting width: it skips certain failures.
    last = anchor(len(sizes) - 1, sizes[-1], first.overfit.width, s, trials)
    on_subset(last)
    small, large = _best_or_centre(first), _best_or_centre(last)
    for i, m in enumerate(sizes[1:-1], start=1):
        centre = interpolate(m, sizes[0], small, sizes[-1], large, s.domain.grow_knob)
        on_subset(grid_search(i, m, centre, s, trials))

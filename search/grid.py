"""Monte Carlo grid search around a centre (the paper's step 4).

The grid is the product of multipliers on the growth knob (width), multipliers on the learning
rate and offsets on the depth. K configurations are drawn from it without replacement (the centre
always first: it is the best prior guess), each is trained with S seeds, and a configuration's
score and the subset's best fit are decided by the one rule in `search.bestfit`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from domains.protocol import TrialResult
from search.bestfit import ConfigSummary, TrialRecord, choose, config_key, representative
from search.budget import Budget
from search.interpolate import Config


def grid_configs(centre: Config, budget: Budget, grow_knob: str, min_width: int, max_width: int) -> list[Config]:
    """All distinct grid points around ``centre``, centre first, widths clipped to the bounds."""
    out, seen = [], set()
    w0 = centre.size[grow_knob]
    for wm, lm, dl in itertools.product((1.0,) + budget.width_mults, (1.0,) + budget.lr_mults, (0,) + budget.layer_offsets):
        size = dict(centre.size)
        size[grow_knob] = int(min(max_width, max(min_width, round(w0 * wm))))
        if "layers" in size:
            size["layers"] = max(1, size["layers"] + dl)
        cfg = Config(size, centre.lr * lm)
        if cfg.key() not in seen:
            seen.add(cfg.key())
            out.append(cfg)
    return out


def max_grid_configs(budget: Budget, has_depth: bool) -> int:
    """How many configurations `grid_configs` can hold around any centre: the product of the
    distinct multipliers and offsets (1 and 0 always belong to it). Clipping widths to the
    domain's bounds can only make a grid smaller."""
    depths = len({0, *budget.layer_offsets}) if has_depth else 1
    return len({1.0, *budget.width_mults}) * len({1.0, *budget.lr_mults}) * depths


def sample_configs(centre: Config, budget: Budget, grow_knob: str, min_width: int, max_width: int, rng: np.random.Generator) -> list[Config]:
    """The centre plus K-1 grid points drawn uniformly without replacement."""
    grid = grid_configs(centre, budget, grow_knob, min_width, max_width)
    k = min(budget.k_configs, len(grid))
    rest = rng.choice(np.arange(1, len(grid)), size=k - 1, replace=False) if k > 1 else []
    return [grid[0]] + [grid[int(i)] for i in rest]


@dataclass
class ConfigScore:
    """A configuration and its seeds' results, scored by the one best-fit rule (`search.bestfit`)."""

    config: Config
    results: list[TrialResult] = field(default_factory=list)

    def records(self) -> list[TrialRecord]:
        """The results as the rule's records."""
        return [TrialRecord(config_key(r.spec.subset_size, r.spec.size, r.spec.lr), r.spec.seed, r.status,
                            r.min_val_error, r.n_params, ref=r) for r in self.results]

    @property
    def summary(self) -> ConfigSummary:
        recs = self.records()
        return ConfigSummary(recs[0].config if recs else self.config.key(), tuple(recs))

    @property
    def score(self) -> float:
        """Median over the counting seeds of the minimum validation error (+inf if none counts)."""
        return self.summary.score

    @property
    def n_params(self) -> int:
        return self.summary.n_params

    def best_seed(self) -> TrialResult | None:
        """The seed whose model represents the configuration (`search.bestfit.representative`)."""
        rec = representative(self.summary)
        return rec.ref if rec is not None else None


def best_config(scores: list[ConfigScore]) -> ConfigScore | None:
    """The best-fit configuration among ``scores`` (all configurations of one subset), by
    `search.bestfit.choose`; None when no configuration has a finite score."""
    by_key = {rec.config: s for s in scores for rec in s.records()}
    chosen = choose(rec for s in scores for rec in s.records())
    return by_key[chosen.config] if chosen is not None else None

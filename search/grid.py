"""Monte Carlo grid search around a centre (the paper's step 4).

The grid is the product of multipliers on the growth knob (width), multipliers on the learning
rate and offsets on the depth. K configurations are drawn from it without replacement (the centre
always first: it is the best prior guess), each is trained with S seeds, and a configuration's
score is the median over its seeds of the minimum validation error. The lowest score is the
subset's best-fit model; ties go to the smaller model.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from domains.protocol import TrialResult
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


def sample_configs(centre: Config, budget: Budget, grow_knob: str, min_width: int, max_width: int, rng: np.random.Generator) -> list[Config]:
    """The centre plus K-1 grid points drawn uniformly without replacement."""
    grid = grid_configs(centre, budget, grow_knob, min_width, max_width)
    k = min(budget.k_configs, len(grid))
    rest = rng.choice(np.arange(1, len(grid)), size=k - 1, replace=False) if k > 1 else []
    return [grid[0]] + [grid[int(i)] for i in rest]


@dataclass
class ConfigScore:
    """A configuration and its seeds' results; ``score`` is the median minimum validation error."""

    config: Config
    results: list[TrialResult] = field(default_factory=list)

    @property
    def ok_results(self) -> list[TrialResult]:
        """Seeds that count: finished or stopped early (an upper bound, so stopping never flatters)."""
        return [r for r in self.results if r.scored and math.isfinite(r.min_val_error)]

    @property
    def score(self) -> float:
        ok = self.ok_results
        return float(np.median([r.min_val_error for r in ok])) if ok else math.inf

    @property
    def n_params(self) -> int:
        return self.results[0].n_params if self.results else 0

    def best_seed(self) -> TrialResult | None:
        """The seed whose model represents the configuration: a full run before a stopped one."""
        ok = self.ok_results
        return min(ok, key=lambda r: (not r.ok, r.min_val_error)) if ok else None


def best_config(scores: list[ConfigScore]) -> ConfigScore:
    return min(scores, key=lambda s: (s.score, s.n_params))

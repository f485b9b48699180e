"""The one rule that decides a subset's best-fit configuration (the paper's step 4).

Every stage that names a best fit calls `choose`: the search when it logs the learning-curve
point and registers the model (`search.engine`, `scal.study`), and the analysis when it reads the
study back from MLflow and fits it (`scal.reader.best_fit_points`, and so the report). They
differ only in where the records come from (results in memory, runs in the store).

The rule, for the trials of one subset:

1. **Which trials count.** Status ``ok`` (ran to its end or early-stopped by its own patience)
   and ``stopped`` (ended early by a scheduler such as ASHA). A stopped trial's value is the
   minimum over the rounds it ran, an *upper bound* of what the full run would have reached, so
   counting it can only make its configuration look worse, never better. ``diverged`` and
   ``failed`` trials do not count (they have no value); a configuration with no counting trial
   scores +inf.
2. **A configuration's score** is the median over its counting seeds of each trial's value
   (`domains.loop.trial_value`: the minimum over validation rounds of the fitted metric).
3. **Racing's full-seed rule.** Only configurations given the subset's full number of seeds
   compete (seeds *given*, whatever their status): one raced out after its first seed
   (``--race-keep``) cannot win on that one seed.
4. **Ties** go to fewer parameters, then to the configuration's key (so the choice never
   depends on the order trials finished in).

The model that represents the winning configuration (registered in the model registry) is
`representative`: a full run before a stopped one, then the lowest value, then the lowest seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Hashable, Iterable, Mapping, Sequence

import numpy as np

COUNTED_STATUSES = ("ok", "stopped")


def config_key(subset_size: int, size: Mapping[str, Any], lr: float) -> tuple:
    """The canonical name of a configuration within a study, the same whether built from a spec
    in memory or from a run's logged params (lr is logged with 6 significant digits), so both
    sides group trials identically and break ties identically."""
    return (int(subset_size), tuple(sorted((str(k), int(float(v))) for k, v in size.items())), float(f"{float(lr):.6g}"))


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the rule sees it. ``config`` identifies its configuration within the subset
    (any hashable: the caller's key); ``ref`` is the caller's handle (a TrialResult, a run row)."""

    config: Hashable          # `config_key(...)`
    seed: int
    status: str
    value: float              # the trial's value: minimum validation error over its rounds
    n_params: int = 0
    ref: Any = None

    @property
    def counts(self) -> bool:
        return self.status in COUNTED_STATUSES and math.isfinite(self.value)


@dataclass(frozen=True)
class ConfigSummary:
    """A configuration's trials and its score under the rule."""

    config: Hashable
    records: tuple[TrialRecord, ...]

    @property
    def counted(self) -> tuple[TrialRecord, ...]:
        return tuple(r for r in self.records if r.counts)

    @property
    def score(self) -> float:
        """Median over the counting seeds of the trial value; +inf when none counts."""
        vals = [r.value for r in self.counted]
        return float(np.median(vals)) if vals else math.inf

    @property
    def n_params(self) -> int:
        """The configuration's parameter count. Every seed has the same architecture, but a
        trial that ended without its own summary (stopped, failed) may not know it: take the
        largest reported."""
        return max((int(r.n_params) for r in self.records), default=0)

    @property
    def seeds_given(self) -> int:
        """Distinct seeds trained (any status): a seed re-run after a failure counts once."""
        return len({r.seed for r in self.records})


def summarize(records: Iterable[TrialRecord]) -> list[ConfigSummary]:
    """Group one subset's trial records by configuration, in first-seen order."""
    groups: dict[Hashable, list[TrialRecord]] = {}
    for r in records:
        groups.setdefault(r.config, []).append(r)
    return [ConfigSummary(k, tuple(v)) for k, v in groups.items()]


def contenders(summaries: Sequence[ConfigSummary]) -> list[ConfigSummary]:
    """The configurations that compete: those given the subset's full number of seeds."""
    if not summaries:
        return []
    full = max(s.seeds_given for s in summaries)
    return [s for s in summaries if s.seeds_given == full]


def choose(records: Iterable[TrialRecord]) -> ConfigSummary | None:
    """The subset's best-fit configuration under the rule in the module docstring, or None when
    no configuration has a finite score."""
    pool = [s for s in contenders(summarize(records)) if math.isfinite(s.score)]
    if not pool:
        return None
    return min(pool, key=lambda s: (s.score, s.n_params, repr(s.config)))


def representative(summary: ConfigSummary) -> TrialRecord | None:
    """The seed whose model stands for the configuration (the registry's): a full run before a
    stopped one, then the lowest value, then the lowest seed."""
    counted = summary.counted
    if not counted:
        return None
    return min(counted, key=lambda r: (r.status != "ok", r.value, r.seed))

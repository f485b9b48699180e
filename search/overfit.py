"""The smallest model that overfits a subset (the paper's step 2, at the anchors).

Geometric growth of the growth knob from ``start`` (x2 per probe) until the overfitting criterion
(`search.budget.OverfitCriterion`) holds or ``max_width`` is reached, then ``bisect_steps``
geometric bisections between the last width that did not overfit and the first that did. Each
probe trains one seed at the centre's other knobs and learning rate.

If even ``max_width`` does not overfit within the step budget, the result says so
(``reached=False``) and the search uses ``max_width``: the study is then compute-limited at that
subset, which the study records rather than hides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from domains.protocol import TrialResult, TrialSpec
from search.budget import OverfitCriterion
from search.interpolate import Config

RunTrials = Callable[[list[TrialSpec], str], list[TrialResult]]


@dataclass
class OverfitSearch:
    subset_size: int
    width: int
    reached: bool
    criterion: OverfitCriterion
    probes: list[TrialResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "subset_size": self.subset_size,
            "width": self.width,
            "reached": self.reached,
            "ratio": self.criterion.ratio,
            "probes": [
                {"width": r.spec.size.get("width"), "n_params": r.n_params, "final_train_loss": r.final_train_loss,
                 "min_val_loss": r.min_val_loss, "overfits": self.criterion.holds(r.final_train_loss, r.min_val_loss),
                 "status": r.status}
                for r in self.probes
            ],
        }


def find_smallest_overfitting(
    subset_size: int,
    centre: Config,
    grow_knob: str,
    start: int,
    max_width: int,
    bisect_steps: int,
    criterion: OverfitCriterion,
    make_spec: Callable[[int, Config, int], TrialSpec],
    run_trials: RunTrials,
    seed: int = 0,
) -> OverfitSearch:
    """Grow, then bisect, the width until the criterion holds (see the module docstring)."""
    probes: list[TrialResult] = []

    def overfits(width: int) -> bool:
        size = dict(centre.size)
        size[grow_knob] = width
        (res,) = run_trials([make_spec(subset_size, Config(size, centre.lr), seed)], "overfit_probe")
        probes.append(res)
        return res.ok and criterion.holds(res.final_train_loss, res.min_val_loss)

    lo, hi = None, None   # largest width seen not to overfit, smallest seen to overfit
    width = max(1, min(start, max_width))
    while True:
        if overfits(width):
            hi = width
            break
        lo = width
        if width >= max_width:
            break
        width = min(max_width, width * 2)
    if hi is None:
        return OverfitSearch(subset_size, max_width, False, criterion, probes)
    for _ in range(bisect_steps):
        if lo is None or hi - lo <= 1:
            break
        mid = round(math.sqrt(lo * hi))
        if mid in (lo, hi):
            break
        if overfits(mid):
            hi = mid
        else:
            lo = mid
    return OverfitSearch(subset_size, hi, True, criterion, probes)

"""Search budgets: how many configurations, seeds and overfitting probes a study spends.

The domain supplies the scale (subset sizes, step limits, width bounds: `domains.protocol.Scale`);
the budget supplies the search effort. Both come by name (``smoke`` for tests, ``quick`` the
default, ``full`` for real studies) and any field can be overridden from the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class OverfitCriterion:
    """A model *overfits* a subset when final_train_loss < ratio * min_val_loss.

    Both losses are in the training-loss units (nats for LMs, MSE for toy). ratio = 0.9 asks
    for the training loss to end at least 10% below the best validation loss: the model has
    capacity to memorise the subset, so it is data-limited rather than capacity-limited.
    """

    ratio: float = 0.9

    def holds(self, final_train_loss: float, min_val_loss: float) -> bool:
        return final_train_loss < self.ratio * min_val_loss


@dataclass(frozen=True)
class Budget:
    """Search effort. ``width_mults``, ``lr_mults`` and ``layer_offsets`` span the Monte Carlo grid.

    ``race_keep`` > 0 races the K configurations on their first seed and gives the other seeds to
    the best ``race_keep`` only (`search.refine.RacingProposer`); 0 trains every seed of every one.
    """

    name: str
    k_configs: int
    n_seeds: int
    bisect_steps: int
    width_mults: tuple[float, ...] = (0.5, 0.71, 1.0, 1.41, 2.0)
    lr_mults: tuple[float, ...] = (0.5, 1.0, 2.0)
    layer_offsets: tuple[int, ...] = (0, 1)
    race_keep: int = 0
    overfit: OverfitCriterion = OverfitCriterion()

    def with_overrides(self, **kw) -> "Budget":
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


BUDGETS: dict[str, Budget] = {
    "smoke": Budget("smoke", k_configs=2, n_seeds=2, bisect_steps=0, width_mults=(1.0, 2.0), lr_mults=(1.0,), layer_offsets=(0,)),
    # quick keeps the depth fixed: a second LSTM layer at the largest subset doubles the cost of
    # the slowest trials, and the default study must finish in < 10 minutes on 2 cores.
    "quick": Budget("quick", k_configs=3, n_seeds=2, bisect_steps=1, width_mults=(0.71, 1.0, 1.41),
                    lr_mults=(0.5, 1.0, 2.0), layer_offsets=(0,)),
    "full": Budget("full", k_configs=8, n_seeds=3, bisect_steps=3),
}


def get_budget(name: str) -> Budget:
    try:
        return BUDGETS[name]
    except KeyError:
        raise ValueError(f"unknown budget {name!r}; choose one of {', '.join(BUDGETS)}") from None

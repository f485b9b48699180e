"""Search centres between the two anchors, interpolated in log(m) (the paper's step 3).

With t = (log m - log m_small) / (log m_large - log m_small):

    log width(m) = (1 - t) * log width_small + t * log width_large
    log lr(m)    = (1 - t) * log lr_small    + t * log lr_large
    layers(m)    = round((1 - t) * layers_small + t * layers_large)

Widths and learning rates are scale parameters, so they are interpolated geometrically; depth is
a count, interpolated linearly and rounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class Config:
    """A point in the search space: size knobs and peak learning rate."""

    size: Mapping[str, int]
    lr: float

    def key(self) -> tuple:
        return (tuple(sorted(self.size.items())), round(self.lr, 12))


def interpolate(m: float, m_small: float, small: Config, m_large: float, large: Config, grow_knob: str = "width") -> Config:
    """The search centre for subset size ``m`` (formulas in the module docstring)."""
    if m_large <= m_small:
        return small
    t = (math.log(m) - math.log(m_small)) / (math.log(m_large) - math.log(m_small))
    t = min(1.0, max(0.0, t))
    size = {}
    for knob, v_small in small.size.items():
        v_large = large.size[knob]
        if knob == grow_knob:
            size[knob] = max(1, round(math.exp((1 - t) * math.log(v_small) + t * math.log(v_large))))
        else:
            size[knob] = max(1, round((1 - t) * v_small + t * v_large))
    lr = math.exp((1 - t) * math.log(small.lr) + t * math.log(large.lr))
    return Config(size, lr)

"""Nested training subsets that double in size: prefixes of one seeded permutation of chunks.

Because every subset is a prefix of the same shuffled order, subset m is contained in subset 2m:
the comparison between sizes is clean (the paper's "nested subsets").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from domains.protocol import DataError


@dataclass(frozen=True)
class SubsetPlan:
    """Doubling sizes ``min_size * 2**k`` (k = 0 .. n_subsets-1) over a pool of chunks.

    ``chunk_sizes[i]`` is the number of units (characters, tokens, examples) in pool chunk i.
    A subset of size m is the shortest prefix of the permutation holding at least m units.
    """

    chunk_sizes: np.ndarray = field(repr=False)
    min_size: int
    n_subsets: int
    seed: int = 0

    def __post_init__(self):
        if self.n_subsets < 1 or self.min_size < 1:
            raise ValueError("a subset plan needs at least one subset of at least one unit")
        if self.sizes[-1] > self.total_units:
            raise DataError(
                f"the largest subset ({self.sizes[-1]:,} units = {self.min_size:,} x 2^{self.n_subsets - 1}) "
                f"exceeds the training data ({self.total_units:,} units); use fewer subsets or a smaller minimum"
            )

    @property
    def total_units(self) -> int:
        return int(np.sum(self.chunk_sizes))

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(self.min_size * 2**k for k in range(self.n_subsets))

    @property
    def span_orders(self) -> float:
        """Orders of magnitude between the smallest and the largest subset (log10 ratio)."""
        return float(np.log10(self.sizes[-1] / self.sizes[0]))

    def permutation(self) -> np.ndarray:
        return np.random.default_rng(self.seed).permutation(len(self.chunk_sizes))

    def indices(self, size: int) -> np.ndarray:
        """Chunk ids of the subset of ``size`` units: a prefix of the seeded permutation."""
        perm = self.permutation()
        cum = np.cumsum(self.chunk_sizes[perm])
        n = int(np.searchsorted(cum, size, side="left")) + 1
        if n > len(perm):
            raise DataError(f"subset of {size:,} units exceeds the training data ({self.total_units:,})")
        return perm[:n]

    def to_dict(self) -> dict:
        return {
            "sizes": list(self.sizes),
            "seed": self.seed,
            "total_units": self.total_units,
            "n_chunks": int(len(self.chunk_sizes)),
            "span_orders": round(self.span_orders, 3),
        }

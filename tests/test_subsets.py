import numpy as np
import pytest

from domains.protocol import DataError
from search.subsets import SubsetPlan


def test_sizes_double_and_span_orders():
    plan = SubsetPlan(np.full(10_000, 10), min_size=100, n_subsets=8, seed=3)
    assert plan.sizes == tuple(100 * 2**k for k in range(8))
    assert plan.span_orders == pytest.approx(np.log10(128))


def test_subsets_are_nested_prefixes_of_one_permutation():
    plan = SubsetPlan(np.full(5_000, 7), min_size=70, n_subsets=6, seed=1)
    prev = None
    for m in plan.sizes:
        ids = plan.indices(m)
        assert len(set(ids)) == len(ids)
        assert np.sum(plan.chunk_sizes[ids]) >= m
        assert np.sum(plan.chunk_sizes[ids[:-1]]) < m        # shortest prefix holding m units
        if prev is not None:
            assert np.array_equal(ids[: len(prev)], prev)     # nested
        prev = ids


def test_variable_chunk_sizes_counted_in_units():
    sizes = np.random.default_rng(0).integers(1, 50, size=2_000)
    plan = SubsetPlan(sizes, min_size=64, n_subsets=5, seed=0)
    for m in plan.sizes:
        assert np.sum(sizes[plan.indices(m)]) >= m


def test_seed_changes_order_but_is_deterministic():
    a = SubsetPlan(np.ones(1000, dtype=int), 10, 3, seed=0).indices(40)
    b = SubsetPlan(np.ones(1000, dtype=int), 10, 3, seed=0).indices(40)
    c = SubsetPlan(np.ones(1000, dtype=int), 10, 3, seed=1).indices(40)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_plan_larger_than_data_is_a_clear_error():
    with pytest.raises(DataError, match="exceeds the training data"):
        SubsetPlan(np.ones(1000, dtype=int), min_size=100, n_subsets=5)

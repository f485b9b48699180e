"""Interpolation, the Monte Carlo grid and the overfitting criterion and search."""

import math

import numpy as np
import pytest

from domains.protocol import TrainSettings, TrialResult, TrialSpec
from search.budget import BUDGETS, Budget, OverfitCriterion
from search.grid import ConfigScore, best_config, grid_configs, sample_configs
from search.interpolate import Config, interpolate
from search.overfit import find_smallest_overfitting


def test_interpolation_hits_anchors_and_is_geometric_between():
    small, large = Config({"width": 16, "layers": 1}, 4e-3), Config({"width": 256, "layers": 3}, 1e-3)
    assert interpolate(1e3, 1e3, small, 1e5, large).size == {"width": 16, "layers": 1}
    assert interpolate(1e5, 1e3, small, 1e5, large).size == {"width": 256, "layers": 3}
    mid = interpolate(1e4, 1e3, small, 1e5, large)
    assert mid.size["width"] == 64                      # sqrt(16 * 256)
    assert mid.size["layers"] == 2                      # linear in log m, rounded
    assert mid.lr == pytest.approx(2e-3)                # sqrt(4e-3 * 1e-3)
    quarter = interpolate(10 ** 3.5, 1e3, small, 1e5, large)
    assert quarter.size["width"] == round(16 * 16 ** 0.25)


def test_grid_has_centre_first_and_respects_width_bounds():
    centre = Config({"width": 100, "layers": 1}, 1e-3)
    budget = Budget("t", k_configs=4, n_seeds=1, bisect_steps=0, width_mults=(0.25, 4.0), lr_mults=(2.0,), layer_offsets=(1,))
    grid = grid_configs(centre, budget, "width", min_width=40, max_width=200)
    assert grid[0] == centre
    assert {c.size["width"] for c in grid} == {100, 40, 200}
    assert len({c.key() for c in grid}) == len(grid)
    picks = sample_configs(centre, budget, "width", 40, 200, np.random.default_rng(0))
    assert picks[0] == centre and len(picks) == 4 and len({c.key() for c in picks}) == 4


def _result(width: int, val: float, train: float | None = None, status="ok") -> TrialResult:
    spec = TrialSpec("toy", "examples", 64, {"width": width, "layers": 1}, 1e-3, 0, "smoke", TrainSettings())
    return TrialResult(spec, width * 10, val, val, 1.0, 10, train if train is not None else val, 10, 1.0, 0.1, status)


def test_config_score_is_median_over_seeds_and_ignores_failures():
    s = ConfigScore(Config({"width": 8}, 1e-3), [_result(8, 0.3), _result(8, 0.1), _result(8, 0.2),
                                                 _result(8, math.nan, status="diverged")])
    assert s.score == pytest.approx(0.2)
    assert s.best_seed().min_val_error == pytest.approx(0.1)
    worse = ConfigScore(Config({"width": 16}, 1e-3), [_result(16, 0.25)])
    assert best_config([worse, s]) is s


def test_overfit_criterion():
    c = OverfitCriterion(0.9)
    assert c.holds(final_train_loss=0.5, min_val_loss=1.0)
    assert not c.holds(final_train_loss=0.95, min_val_loss=1.0)
    assert BUDGETS["quick"].overfit.ratio == 0.9


def test_growth_then_bisection_finds_the_threshold():
    """A deterministic stand-in for training in which widths >= 45 overfit (train loss 0.5)."""
    calls = []

    def run_trials(specs, role):
        assert role == "overfit_probe"
        out = []
        for spec in specs:
            w = spec.size["width"]
            calls.append(w)
            out.append(_result(w, 1.0, train=0.5 if w >= 45 else 0.99))
        return out

    def make_spec(m, cfg, seed):
        return TrialSpec("toy", "examples", m, dict(cfg.size), cfg.lr, seed, "t", TrainSettings())

    found = find_smallest_overfitting(64, Config({"width": 8, "layers": 1}, 1e-3), "width", start=8, max_width=512,
                                      bisect_steps=3, criterion=OverfitCriterion(0.9), make_spec=make_spec,
                                      run_trials=run_trials)
    assert calls[:4] == [8, 16, 32, 64]           # geometric growth until it overfits
    assert found.reached and 45 <= found.width <= 64
    assert found.width < 64                       # bisection moved below the growth step
    capped = find_smallest_overfitting(64, Config({"width": 8, "layers": 1}, 1e-3), "width", start=8, max_width=40,
                                       bisect_steps=3, criterion=OverfitCriterion(0.9), make_spec=make_spec,
                                       run_trials=run_trials)
    assert not capped.reached and capped.width == 40


def _spec(cfg: Config, seed: int) -> TrialSpec:
    return TrialSpec("toy", "examples", 64, dict(cfg.size), cfg.lr, seed, "smoke", TrainSettings())


def _seed_result(spec: TrialSpec, err: float) -> TrialResult:
    return TrialResult(spec, 10, err, err, 1.0, 1, err, 1, 1.0, 0.1)


@pytest.mark.parametrize("estimator", ["GP", "RF"])
def test_skopt_proposer_finds_the_valley_of_a_grid(one_thread, estimator):
    """Centre first, K distinct grid points, S seeds each, scores by median; on a smooth bowl whose
    minimum sits on the grid's edge it gets closer than the centre within K = 8 of 25 points."""
    from search.trial import FINISHED
    from search.refine import SkoptProposer

    centre = Config({"width": 64, "layers": 1}, 1e-3)
    budget = Budget("t", k_configs=8, n_seeds=2, bisect_steps=0, width_mults=(0.25, 0.5, 2.0, 4.0),
                    lr_mults=(0.25, 0.5, 2.0, 4.0), layer_offsets=(0,))
    grid = grid_configs(centre, budget, "width", 1, 4096)
    assert len(grid) == 25

    def error(cfg: Config) -> float:   # lowest at width 256, lr 4e-3: a corner of the grid
        return (math.log2(cfg.size["width"] / 256)) ** 2 + (math.log2(cfg.lr / 4e-3)) ** 2 + 1.0

    prop = SkoptProposer(grid, 8, [0, 1], _spec, "width", seed=3, estimator=estimator)
    handed, pending = [], []
    while (spec := prop.suggest()) != FINISHED:
        handed.append(spec)
        pending.append(spec)
        if len(pending) == 2:     # two at a time, as on a 2-slot cluster
            for s in pending:
                prop.complete(s, _seed_result(s, error(Config(s.size, s.lr))))
            pending = []
    for s in pending:
        prop.complete(s, _seed_result(s, error(Config(s.size, s.lr))))
    assert len(handed) == 16 and len({s.trial_hash() for s in handed}) == 16
    assert prop.scores[0].config == centre
    keys_ = [s.config.key() for s in prop.scores]
    assert len(set(keys_)) == 8 and all(k in {g.key() for g in grid} for k in keys_)
    best = best_config(prop.scores)
    assert best.score < error(centre) - 2.0                      # well below the centre's 5.0
    assert all(len(s.results) == 2 for s in prop.scores)


def test_stopped_seeds_count_as_upper_bounds_and_are_not_the_model():
    cfg = Config({"width": 8, "layers": 1}, 1e-3)
    s0, s1 = _spec(cfg, 0), _spec(cfg, 1)
    score = ConfigScore(cfg, [_seed_result(s0, 0.5), TrialResult(s1, 10, 0.4, 0.4, 1.0, 1, 0.4, 1, 1.0, 0.1, "stopped")])
    assert score.score == pytest.approx(0.45)
    assert score.best_seed().spec == s0       # a full run represents the configuration


def test_racing_gives_the_other_seeds_to_the_best_first_seeds_only():
    """K first seeds; nothing more until all are in (a lucky early one cannot start the race);
    then the other seeds of the best R by first-seed error; only those R are scored."""
    from search.trial import FINISHED
    from search.refine import RacingProposer

    configs = [Config({"width": w, "layers": 1}, 1e-3) for w in (8, 16, 32, 64, 128)]
    first = {8: 0.9, 16: 0.5, 32: 0.3, 64: 0.31, 128: 0.7}        # seed 0's error by width
    second = {16: 0.45, 32: 0.5, 64: 0.32}                         # seed 1 reverses 32 and 64
    prop = RacingProposer(configs, [0, 1, 2], _spec, keep=2)
    assert prop.n_trials == 5 + 2 * 2
    handed = [prop.suggest() for _ in range(5)]
    assert [s.seed for s in handed] == [0] * 5
    for s in handed[:4]:
        prop.complete(s, _seed_result(s, first[s.size["width"]]))
    assert prop.suggest() is None                                  # waits for the fifth first seed
    prop.complete(handed[4], _seed_result(handed[4], first[128]))
    rest = []
    while (spec := prop.suggest()) != FINISHED:
        rest.append(spec)
        err = second[spec.size["width"]] if spec.seed == 1 else first[spec.size["width"]]
        prop.complete(spec, _seed_result(spec, err))
    assert sorted((s.size["width"], s.seed) for s in rest) == [(32, 1), (32, 2), (64, 1), (64, 2)]
    assert [s.config.size["width"] for s in prop.contenders()] == [32, 64]
    assert [s.config.size["width"] for s in prop.raced_out()] == [8, 16, 128]
    # medians over three seeds: 32 -> 0.3, 64 -> 0.31; width 16's 0.5 alone never competes
    assert best_config(prop.scores).config.size["width"] == 32


def test_racing_keep_must_be_positive():
    from search.refine import RacingProposer

    with pytest.raises(ValueError, match="race-keep"):
        RacingProposer([Config({"width": 8}, 1e-3)], [0, 1], _spec, keep=0)

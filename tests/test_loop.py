"""The shared training loop on real (small) training runs."""

import pytest
import torch

import domains
from domains.protocol import TrainSettings, TrialSpec
from search.subsets import SubsetPlan


pytestmark = pytest.mark.usefixtures("one_thread")   # conftest: 55 s -> 4 s for early stopping on a shared CPU


@pytest.fixture(scope="module")
def toy():
    dom = domains.get("toy")
    data = dom.load("examples")
    plan = SubsetPlan(data.chunk_sizes(), 128, 2, seed=0)
    return dom, data, plan


def _spec(lr=1e-2, seed=0, width=16, max_steps=120):
    return TrialSpec("toy", "examples", 128, {"width": width, "layers": 2}, lr, seed, "smoke",
                     TrainSettings(batch_size=32, max_steps=max_steps, max_rounds=10, min_round_steps=20, patience=2))


def test_deterministic_for_seed_and_threads(toy):
    dom, data, plan = toy
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, _ = dom.train(_spec(seed=3), data, plan.indices(128), lambda m, s: None, "cpu")
        b, _ = dom.train(_spec(seed=3), data, plan.indices(128), lambda m, s: None, "cpu")
        c, _ = dom.train(_spec(seed=4), data, plan.indices(128), lambda m, s: None, "cpu")
        assert torch.get_num_threads() == 1   # training keeps the caller's thread count
    finally:
        torch.set_num_threads(before)
    assert a.min_val_error == b.min_val_error and a.final_train_loss == b.final_train_loss
    assert a.min_val_error != c.min_val_error


def test_reports_rounds_through_callback_and_restores_best_weights(toy):
    dom, data, plan = toy
    history = []
    res, model = dom.train(_spec(), data, plan.indices(128), lambda m, s: history.append((dict(m), s)), "cpu")
    assert res.ok and res.steps > 0
    assert [s for _, s in history] == sorted(s for _, s in history)
    assert min(m["val_error"] for m, _ in history) == pytest.approx(res.min_val_error)
    assert res.best_step in [s for _, s in history]
    # the returned model carries the weights of the minimum validation error
    assert dom.evaluate(model, data)[1] == pytest.approx(res.min_val_error, rel=1e-6)


def test_divergence_is_a_status_not_a_crash(toy):
    dom, data, plan = toy
    res, _ = dom.train(_spec(lr=1e30, width=64), data, plan.indices(128), lambda m, s: None, "cpu")
    assert res.status == "diverged" and "non-finite" in res.reason


def test_early_stopping_ends_before_max_steps_when_overfitting(toy):
    dom, data, plan = toy
    spec = TrialSpec("toy", "examples", 128, {"width": 256, "layers": 2}, 1e-2, 0, "smoke",
                     TrainSettings(batch_size=32, max_steps=5000, max_rounds=200, min_round_steps=20, patience=2))
    res, _ = dom.train(spec, data, plan.indices(128), lambda m, s: None, "cpu")
    assert res.steps < 5000
    assert res.final_train_loss < res.min_val_loss   # it stopped because validation got worse


class _ScriptedTask:
    """A real model and optimizer, with validation numbers scripted per round so that the round
    of lowest loss (the last) is not the round of lowest error (the second), as with top-1 error
    or CER. The first weight is recorded at each evaluation to check which round's weights return."""

    def __init__(self, errors, losses):
        self.errors, self.losses, self.weights = list(errors), list(losses), []

    def epoch_steps(self, batch_size):
        return 1.0

    def sample_batch(self, gen, batch_size, device):
        return torch.randn(batch_size, 4, generator=gen)

    def loss(self, model, batch):
        return (model(batch) ** 2).mean()

    def evaluate(self, model, device):
        self.weights.append(float(model.weight.detach().flatten()[0]))
        return self.losses.pop(0), self.errors.pop(0)


def test_a_trial_contributes_its_minimum_validation_error_not_the_error_at_minimum_loss():
    from domains import loop

    task = _ScriptedTask(errors=[0.50, 0.30, 0.40, 0.35], losses=[1.0, 0.9, 0.8, 0.7])
    model = torch.nn.Linear(4, 1)
    settings = TrainSettings(batch_size=8, max_steps=4, max_rounds=4, min_round_steps=1, patience=10, warmup_steps=1)
    spec = TrialSpec("toy", "examples", 8, {"width": 1, "layers": 1}, 1e-1, 0, "smoke", settings)
    res = loop.run(model, task, spec, 5, loop.seed_everything(0), lambda m, s: None)
    assert res.spec == spec and res.n_params == 5 and res.ok   # the loop's result is the trial's record
    assert res.min_val_error == 0.30 and res.best_step == 2     # the minimum of the metric, where it fell
    assert res.min_val_loss == 0.7                              # the loss's own minimum (overfitting criterion)
    assert float(model.weight.detach().flatten()[0]) == task.weights[1]   # that round's weights came back
    assert task.weights[1] != task.weights[3]

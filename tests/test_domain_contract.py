"""The contract every domain in `domains.REGISTRY` fulfils, one suite for all of them (in the spirit of
scikit-learn's ``parametrize_with_checks``): a domain added to the registry is checked here without
a line of new test code. What only one domain does (its data formats, its decoding) stays in
that domain's own test file.

Each check runs on the domain's small test data (`conftest.domain_data`), loaded once per session.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

import domains
from conftest import N_BOOT, SMALL_DATA, sqlite_uri
from domains.protocol import DataError, Domain, DomainData, MetricInfo, TrialSpec
from scal import keys
from scal.tracking import result_from_run
from search.subsets import SubsetPlan

NAMES = sorted(domains.REGISTRY)
UNITS = [(name, unit) for name in NAMES for unit in domains.get(name).units]
BUDGETS = ("smoke", "quick", "full")
LOOP_KEYS = {"train_loss", "val_loss", "val_error", "epoch", "lr"}   # what the loop logs every round
GENERATED = {name: kw["pool_size"] for name, kw in SMALL_DATA.items() if "pool_size" in kw}   # name -> test pool


def _numel(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_declares_the_protocol(name):
    dom = domains.get(name)
    assert isinstance(dom, Domain) and dom.name == name
    assert dom.units and dom.grow_knob in dom.size_knobs
    for unit in dom.units:
        assert isinstance(dom.metric(unit), MetricInfo) and dom.metric(unit).name
        for budget in BUDGETS:
            s = dom.scale(budget, unit)
            assert s.min_subset >= 1 and s.n_subsets >= 1 and s.lr > 0
            assert set(s.size) == set(dom.size_knobs)
            assert 1 <= s.min_width <= s.size[dom.grow_knob] <= s.max_width
            assert s.train.max_steps >= 1 and s.train.batch_size >= 1
    with pytest.raises(ValueError, match="no unit 'parsecs'"):
        dom.metric("parsecs")
    # FLOPs: 6 N D for a dense net, whatever the constant: proportional to data and to parameters
    assert dom.train_flops(1e6, 1e3) > 0
    assert dom.train_flops(1e6, 2e3) == pytest.approx(2 * dom.train_flops(1e6, 1e3))
    assert dom.train_flops(2e6, 1e3) == pytest.approx(2 * dom.train_flops(1e6, 1e3))


@pytest.mark.parametrize("name,unit", UNITS)
def test_small_data_is_a_pool_of_chunks(domain_data, name, unit):
    data = domain_data(name, unit)
    assert isinstance(data, DomainData) and data.unit == unit
    sizes = data.chunk_sizes()
    assert sizes.ndim == 1 and sizes.dtype.kind == "i" and len(sizes) >= 2 and sizes.min() >= 1
    assert math.isfinite(data.best_guess_error()) and data.best_guess_error() > 0
    # Ray ships the data to its workers: it pickles, and comes back the same
    again = pickle.loads(pickle.dumps(data))
    assert np.array_equal(again.chunk_sizes(), sizes) and again.best_guess_error() == data.best_guess_error()


@pytest.mark.parametrize("name,unit", UNITS)
@pytest.mark.parametrize("width,layers", [(8, 1), (12, 2), (6, 3)])
def test_parameter_count_is_exact(domain_data, name, unit, width, layers):
    dom, data = domains.get(name), domain_data(name, unit)
    size = {"width": width, "layers": layers}
    assert dom.count_params(size, data) == _numel(dom.build_model(size, data))


@pytest.mark.parametrize("name,unit", UNITS)
def test_one_training_step_reports_through_the_callback(domain_data, one_thread, name, unit):
    """One step and one validation round at the smoke budget's smallest width: the round reaches
    ``log``, and the result is that round's (value, loss, further metrics), with the model's exact
    parameter count and the model carrying the weights that reached it."""
    dom, data = domains.get(name), domain_data(name, unit)
    scale = dom.scale("smoke", unit)
    m = min(scale.min_subset, int(data.chunk_sizes().sum()) // 2)
    plan = SubsetPlan(data.chunk_sizes(), m, 1)
    spec = TrialSpec(name, unit, m, {**scale.size, dom.grow_knob: scale.min_width}, scale.lr, 0, "smoke",
                     replace(scale.train, max_steps=1, max_rounds=1, min_round_steps=1, batch_size=min(scale.train.batch_size, 8)))
    logged = []
    result, model = dom.train(spec, data, plan.indices(m), lambda metrics, step: logged.append((dict(metrics), step)))
    assert result.ok and result.spec == spec and result.steps == 1 and result.best_step == 1
    assert result.n_params == _numel(model) == dom.count_params(spec.size, data)
    ((metrics, step),) = logged
    assert step == 1 and LOOP_KEYS <= set(metrics)
    assert result.min_val_error == metrics["val_error"] and result.min_val_loss == metrics["val_loss"]
    assert math.isfinite(result.min_val_error) and result.min_val_error >= 0
    extra = {k: v for k, v in metrics.items() if k.startswith("val_") and k not in ("val_loss", "val_error")}
    assert dict(result.extra) == extra
    assert dom.evaluate(model, data) == pytest.approx((result.min_val_loss, result.min_val_error), rel=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_missing_data_is_a_one_line_data_error(tmp_path, name):
    dom = domains.get(name)
    with pytest.raises(DataError) as err:
        dom.load(domains.default_unit(dom), str(tmp_path / "missing"))
    message = str(err.value)
    assert message.startswith("--data ") and "\n" not in message


@pytest.mark.parametrize("name", NAMES)
def test_pool_size_sizes_generated_data_and_nothing_else(domain_data, name):
    """``--pool-size`` asks a domain whose default data is generated for that many training units;
    a domain that reads its data refuses it, and no domain takes 0 or an absurd number."""
    dom = domains.get(name)
    unit = domains.default_unit(dom)
    if name in GENERATED:
        assert int(domain_data(name, unit).chunk_sizes().sum()) == GENERATED[name]
    else:
        with pytest.raises(ValueError, match=f"--pool-size .*domain {name}"):
            dom.load(unit, pool_size=100)
    for bad in (0, -5, 10**12):
        with pytest.raises(ValueError, match="--pool-size"):
            dom.load(unit, pool_size=bad)


def test_pool_size_does_not_resize_the_users_data(tmp_path):
    with pytest.raises(ValueError, match="--pool-size .*--data"):
        domains.get("toy").load("examples", str(tmp_path / "mine.npz"), pool_size=100)


# --------------------------------------------------------------------------- a whole study

STUDIES = {"toy": "toy_study", "lm": "lm_study"}   # conftest's session studies (CLI on Ray; library call)
STUDY_POOL = {"speech": 128, "speech_attn": 128}    # the smoke budget's subsets 32, 64, 128 utterances


@pytest.fixture
def smoke_study(request, tmp_path, monkeypatch, speech_cache):
    """``smoke_study(name)``: a smoke study of the domain into a fresh sqlite store, through the
    library call in this process (toy and lm: the session's studies)."""
    from scal.study import StudyConfig, run_study
    from search.executor import ExecutorSettings

    def run(name: str) -> dict:
        if name in STUDIES:
            study = request.getfixturevalue(STUDIES[name])
            return {"uri": study["uri"], "summary": study["summary"]}
        monkeypatch.setenv("SCAL_CACHE", str(speech_cache))
        uri = sqlite_uri(tmp_path)
        before = torch.get_num_threads()
        try:
            summary = run_study(StudyConfig(domain=name, budget="smoke", tracking_uri=uri, device="cpu", progress=False,
                                            pool_size=STUDY_POOL.get(name), n_boot=N_BOOT,
                                            executor=ExecutorSettings(kind="local")))
        finally:
            torch.set_num_threads(before)
        return {"uri": uri, "summary": summary}

    return run


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("name", NAMES)
def test_smoke_study_into_mlflow(smoke_study, name):
    """Every trial's record follows the value rule (`domains.loop.round_rank`): its value is the
    minimum of the metric over its rounds, at the step where it fell, its further validation
    metrics are those of that round; the study ends FINISHED with a fit and a registered model per subset."""
    study = smoke_study(name)
    summary, client = study["summary"], MlflowClient(study["uri"], study["uri"])
    runs = client.search_runs([summary["experiment_id"]], f"tags.`{keys.PARENT}` = '{summary['parent_run_id']}'",
                              max_results=1000)
    trained = [r for r in runs if keys.REUSED_FROM not in r.data.tags]
    assert len(trained) == summary["n_trials"] > 0 and len(runs) - len(trained) == summary["n_reused"]
    dom = domains.get(name)
    for r in runs:
        assert r.data.params[keys.P_DOMAIN] == name
        assert {f"size.{k}" for k in dom.size_knobs} <= set(r.data.params)
    for r in trained:
        if r.data.tags.get(keys.STATUS) != "ok":
            continue
        history = {k: {m.step: m.value for m in client.get_metric_history(r.info.run_id, k)}
                   for k in r.data.metrics if k.startswith("val_")}
        errors, losses = history["val_error"], history["val_loss"]
        best_step = min(errors, key=lambda s: (errors[s], losses[s]))
        assert r.data.metrics[keys.M_MIN_VAL_ERROR] == pytest.approx(min(errors.values()))
        assert r.data.metrics[keys.M_BEST_STEP] == best_step
        assert r.data.metrics[keys.M_MIN_VAL_LOSS] == pytest.approx(min(losses.values()))
        assert r.data.metrics[keys.M_ROUNDS] == len(errors)
        extra = {k: r.data.metrics[keys.best_extra(k)] for k in set(history) - {"val_error", "val_loss"}}
        assert extra == pytest.approx({k: history[k][best_step] for k in extra})
        assert dict(result_from_run(None, r).extra) == extra            # what a resumed study reuses
    parent = client.get_run(summary["parent_run_id"])
    assert parent.info.status == "FINISHED" and keys.M_BETA_G in parent.data.metrics
    sizes = [s["size"] for s in summary["subsets"]]
    assert sizes == sorted(sizes) and len(sizes) == dom.scale("smoke", domains.default_unit(dom)).n_subsets
    versions = client.search_model_versions(f"name = '{summary['registered_model']}'")
    assert sorted(int(v.tags[keys.R_SUBSET_SIZE]) for v in versions) == sizes

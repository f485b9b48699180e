"""Smoke studies into real sqlite MLflow stores, read back with MlflowClient."""

from __future__ import annotations

import math

import mlflow
import mlflow.pyfunc
import pytest
from mlflow.tracking import MlflowClient

import domains
from scal import keys
from scal.names import model_name

pytestmark = pytest.mark.integration

REQUIRED = {"experiment_id", "parent_run_id", "subsets", "beta_g", "beta_g_interval", "beta_p", "beta_p_interval"}


def _children(client: MlflowClient, summary) -> list:
    return client.search_runs([summary["experiment_id"]], f"tags.`{keys.PARENT}` = '{summary['parent_run_id']}'",
                              max_results=10_000)


def _check_run_tree(uri: str, summary: dict, domain: str, unit: str) -> None:
    client = MlflowClient(uri, uri)
    parent = client.get_run(summary["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[keys.ROLE] == keys.ROLE_STUDY
    assert parent.data.params["study.domain"] == domain and parent.data.params["study.unit"] == unit
    sizes = [int(s) for s in parent.data.params["study.subset_sizes"].split(",")]

    children = _children(client, summary)
    trained = [c for c in children if keys.REUSED_FROM not in c.data.tags]   # the rest refer to these
    assert len(trained) == summary["n_trials"] and len(children) == summary["n_trials"] + summary["n_reused"]
    roles = {c.data.tags[keys.ROLE] for c in children}
    assert roles == {keys.ROLE_GRID, keys.ROLE_PROBE}
    for c in children:
        p = c.data.params
        for k in (keys.P_DOMAIN, keys.P_UNIT, keys.P_SUBSET_SIZE, keys.P_N_PARAMS, keys.P_LR, keys.P_SEED,
                  keys.P_BUDGET, "size.width", "size.layers"):
            assert k in p, k
        assert c.data.tags[keys.STATUS] in ("ok", "diverged", "failed")
        assert len(c.data.tags[keys.TRIAL_HASH]) == 16
        assert c.info.status in ("FINISHED", "FAILED")
        assert keys.M_MIN_VAL_ERROR in c.data.metrics
    # per-round metrics are histories, not single values
    hist = client.get_metric_history(trained[0].info.run_id, keys.M_VAL_ERROR)
    assert len(hist) >= 1 and all(h.step > 0 for h in hist)
    assert min(h.value for h in hist) == pytest.approx(trained[0].data.metrics[keys.M_MIN_VAL_ERROR])

    # the parent's curve metrics have the subset size as their step
    curve = client.get_metric_history(parent.info.run_id, keys.M_BEST_VAL_ERROR)
    assert sorted(h.step for h in curve) == sizes
    ms = client.get_metric_history(parent.info.run_id, keys.M_BEST_N_PARAMS)
    assert sorted(h.step for h in ms) == sizes
    by_size = {s["size"]: s for s in summary["subsets"]}
    for h in curve:
        assert h.value == pytest.approx(by_size[h.step]["val_error"])
    for k in (keys.M_BETA_G, keys.M_BETA_P, keys.M_GAMMA):
        assert k in parent.data.metrics
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"fits.json", "plan.json", "analysis"} <= artifacts
    pngs = {a.path for a in client.list_artifacts(parent.info.run_id, "analysis")}
    assert {"analysis/learning_curve.png", "analysis/model_size.png"} <= pngs


def _check_registry(uri: str, summary: dict, domain: str, unit: str) -> None:
    client = MlflowClient(uri, uri)
    name = summary["registered_model"]
    versions = client.search_model_versions(f"name = '{name}'")
    assert len(versions) == len(summary["subsets"])           # one version per subset
    sizes = sorted(int(v.tags[keys.R_SUBSET_SIZE]) for v in versions)
    assert sizes == sorted(s["size"] for s in summary["subsets"])
    largest = client.get_model_version_by_alias(name, keys.ALIAS_LARGEST)
    assert int(largest.tags[keys.R_SUBSET_SIZE]) == max(sizes)

    # a registered model reloads and reproduces its logged validation error. Loaded from where the
    # version's files are: mlflow.set_registry_uri would set MLFLOW_REGISTRY_URI for every later study
    dom = domains.get(domain)
    data = dom.load(unit, max_val_units=dom.scale("smoke", unit).max_val_units)
    source = client.get_model_version_download_uri(name, largest.version)
    model = mlflow.pyfunc.load_model(source).get_raw_model()   # the torch module
    _, val_error = dom.evaluate(model, data)
    assert val_error == pytest.approx(float(largest.tags[keys.R_MIN_VAL_ERROR]), rel=1e-5)
    assert sum(p.numel() for p in model.parameters()) == int(largest.tags[keys.R_N_PARAMS])


def test_toy_smoke_study_json_contract(toy_study):
    s = toy_study["summary"]
    assert REQUIRED <= set(s)
    assert toy_study["proc"].stdout.count("\n") == 1            # exactly one JSON object on stdout
    assert len(s["subsets"]) == 4 and all({"size", "val_error", "n_params"} <= set(x) for x in s["subsets"])
    lo, hi = s["beta_g_interval"]
    assert lo <= s["beta_g"] <= hi and s["beta_g"] < 0
    assert s["beta_p_interval"][0] <= s["beta_p"] <= s["beta_p_interval"][1]
    # toy's error falls with data, from its best guess towards the noise floor (0.01)
    errs = [x["val_error"] for x in s["subsets"]]
    assert errs[-1] < errs[0] < s["best_guess_error"]
    assert errs[-1] > 0.01
    assert "trial" in toy_study["proc"].stderr and "subset" in toy_study["proc"].stderr   # progress on stderr


def test_toy_smoke_study_run_tree(toy_study):
    _check_run_tree(toy_study["uri"], toy_study["summary"], "toy", "examples")


def test_toy_smoke_study_registry(toy_study):
    _check_registry(toy_study["uri"], toy_study["summary"], "toy", "examples")


def test_lm_smoke_study_run_tree_and_registry(lm_study):
    s = lm_study["summary"]
    assert REQUIRED <= set(s)
    assert s["registered_model"] == model_name("scal-lm-char")
    _check_run_tree(lm_study["uri"], s, "lm", "char")
    _check_registry(lm_study["uri"], s, "lm", "char")
    # bits per character sit below the unigram entropy of the training text once trained
    assert all(math.isfinite(x["val_error"]) for x in s["subsets"])
    assert min(x["val_error"] for x in s["subsets"]) < s["best_guess_error"]


def test_no_trial_spec_is_trained_twice(toy_study):
    """The grid's centre at its first seed is the overfitting probe that found it: trained once,
    shown in the grid by a reference run that names the training run."""
    s = toy_study["summary"]
    client = MlflowClient(toy_study["uri"], toy_study["uri"])
    runs = client.search_runs([s["experiment_id"]], f"tags.`{keys.PARENT}` = '{s['parent_run_id']}'", max_results=1000)
    trained = [r for r in runs if keys.REUSED_FROM not in r.data.tags]
    references = [r for r in runs if keys.REUSED_FROM in r.data.tags]
    hashes = [r.data.tags[keys.TRIAL_HASH] for r in trained]
    assert len(hashes) == len(set(hashes)) == s["n_trials"]
    assert len(references) == s["n_reused"] >= 1
    by_id = {r.info.run_id: r for r in trained}
    for ref in references:
        source = by_id[ref.data.tags[keys.REUSED_FROM]]
        assert source.data.tags[keys.TRIAL_HASH] == ref.data.tags[keys.TRIAL_HASH]
        assert source.data.tags[keys.ROLE] == keys.ROLE_PROBE and ref.data.tags[keys.ROLE] == keys.ROLE_GRID
        assert ref.data.metrics[keys.M_MIN_VAL_ERROR] == source.data.metrics[keys.M_MIN_VAL_ERROR]

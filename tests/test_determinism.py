"""Identical commands give identical numbers: a smoke study run twice, once one trial at a time in
this process and once on a local Ray instance with two trials at once, logs the same value for
every metric of every trial, round by round, and the same learning curve."""

from __future__ import annotations

import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import N_BOOT, sqlite_uri
from scal import keys

# Timings are measurements of the machine, not results of the study.
TIMINGS = {keys.M_WALL_TIME_S}


def trial_metrics(uri: str, parent_run_id: str) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Every trained trial of the study (reference runs point at one of these): trial hash ->
    metric -> its whole history as (step, value)."""
    client = MlflowClient(uri)
    parent = client.get_run(parent_run_id)
    runs = client.search_runs([parent.info.experiment_id], filter_string=f"tags.`{keys.PARENT}` = '{parent_run_id}'",
                              max_results=10_000)
    out = {}
    for run in runs:
        if keys.REUSED_FROM in run.data.tags:
            continue
        out[run.data.tags[keys.TRIAL_HASH]] = {
            name: [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, name),
                                                     key=lambda m: (m.step, m.timestamp))]
            for name in sorted(run.data.metrics) if name not in TIMINGS}
    return out


def curve(uri: str, parent_run_id: str) -> dict[str, list[tuple[int, float]]]:
    client = MlflowClient(uri)
    return {name: sorted((m.step, m.value) for m in client.get_metric_history(parent_run_id, name))
            for name in (keys.M_BEST_VAL_ERROR, keys.M_BEST_N_PARAMS)}


@pytest.mark.integration
def test_a_smoke_study_gives_the_same_numbers_locally_and_on_ray_two_at_once(lm_study, tmp_path):
    from scal.study import StudyConfig, run_study
    from search.executor import ExecutorSettings

    # The session's lm study ran on the local executor, one trial at a time; this one is the same
    # command on Ray with two trials at once (they finish in another order).
    uri = sqlite_uri(tmp_path)
    cfg = StudyConfig(domain="lm", unit="char", budget="smoke", tracking_uri=uri, device="cpu", progress=False,
                      n_boot=N_BOOT, executor=ExecutorSettings(kind="ray", max_concurrent=2))
    before = torch.get_num_threads()
    try:
        again = run_study(cfg)
    finally:
        torch.set_num_threads(before)
    assert (again["executor"], again["concurrency"]) == ("ray", 2)
    assert lm_study["summary"]["executor"] == "local"

    first = trial_metrics(lm_study["uri"], lm_study["summary"]["parent_run_id"])
    second = trial_metrics(uri, again["parent_run_id"])
    assert len(first) >= 8 and set(first) == set(second)
    for h in first:
        assert set(first[h]) == set(second[h]), h
        assert {keys.M_VAL_ERROR, keys.M_TRAIN_LOSS, keys.M_MIN_VAL_ERROR, keys.M_TRAIN_FLOPS} <= set(first[h])
        for name in first[h]:
            assert first[h][name] == second[h][name], (h, name)   # exact: same bits, round by round
    assert curve(lm_study["uri"], lm_study["summary"]["parent_run_id"]) == curve(uri, again["parent_run_id"])
    for k in ("beta_g", "beta_p", "gamma", "sigma"):
        assert lm_study["summary"][k] == again[k], k


def test_threads_is_an_input_of_the_study(tmp_path):
    """The thread count is logged with the study's parameters, so it is in the resume fingerprint:
    a study begun on 2 threads is not continued on 1."""
    from dataclasses import replace

    from scal.study import StudyConfig, _study_params, fingerprint, prepare
    from search.executor import ExecutorSettings

    base = StudyConfig(domain="toy", budget="smoke", tracking_uri=sqlite_uri(tmp_path), device="cpu",
                       executor=ExecutorSettings(kind="local"))
    one = _study_params(prepare(base))
    two = _study_params(prepare(replace(base, threads=2)))
    assert (one["study.threads"], two["study.threads"]) == (1, 2)
    assert fingerprint(one) != fingerprint(two)
    # The analysis's bootstrap refits are an option too: logged, and a study asked for with
    # another count is another study (its parent's logged n_boot could not change on resume).
    three = _study_params(prepare(replace(base, n_boot=50)))
    assert (one["study.n_boot"], three["study.n_boot"]) == (200, 50)
    assert fingerprint(one) != fingerprint(three)

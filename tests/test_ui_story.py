"""The study's story as the MLflow UI shows it, read back with MlflowClient from real sqlite stores:
the study run's description (decision summary and fit table), the experiment's description, dataset
inputs on the study and its trials, the code version on every run, a failed trial's traceback, and a
trial's rounds in the store while it still trains.

The session's toy smoke study (`toy_study`, on Ray) is read for what a finished study holds; one
small tracked run of two trials on the local executor covers live rounds and a failure.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import first_round_watcher, sqlite_uri
from scal import keys, provenance

pytestmark = pytest.mark.integration


def _runs(uri: str, summary: dict):
    client = MlflowClient(uri, uri)
    parent = client.get_run(summary["parent_run_id"])
    children = client.search_runs([summary["experiment_id"]], f"tags.`{keys.PARENT}` = '{parent.info.run_id}'",
                                  max_results=1000)
    return client, parent, children


def test_study_run_and_experiment_descriptions(toy_study):
    s = toy_study["summary"]
    client, parent, _ = _runs(toy_study["uri"], s)
    note = parent.data.tags[keys.NOTE]
    first_sentence = s["decision"].split(". ")[0]
    assert first_sentence.startswith("At ") and first_sentence in note
    # the fit table in Markdown: a header, a separator, one row per subset with its size and error
    table = [ln for ln in note.splitlines() if ln.startswith("|")]
    assert table[0].startswith(f"| m ({s['unit']}) | {s['metric']} (median) |")
    assert re.fullmatch(r"\|(---\|)+", table[1])
    assert len(table) == 2 + len(s["subsets"])
    for row, point in zip(table[2:], s["subsets"]):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == f"{point['size']:,}" and float(cells[1]) == pytest.approx(point["val_error"], rel=1e-3)
    assert f"form **{s['form']}**" in note

    about = client.get_experiment(s["experiment_id"]).tags[keys.NOTE]
    for needed in ("`toy`", f"**{s['unit']}**", f"**{s['metric']}**", "best_val_error", s["registered_model"]):
        assert needed in about, needed


def test_dataset_inputs_name_the_pool_and_each_subset(toy_study):
    from scal.study import StudyConfig, prepare

    s = toy_study["summary"]
    _, parent, children = _runs(toy_study["uri"], s)
    # The same data and plan, prepared again (nothing written): the digests are the content's.
    p = prepare(StudyConfig(domain="toy", budget="smoke", tracking_uri=toy_study["uri"], device="cpu"))
    (pool,) = parent.inputs.dataset_inputs
    assert pool.dataset.name == "toy-examples-pool"
    assert pool.dataset.digest == parent.data.tags[keys.DATA_DIGEST] == p.datasets.pool_digest
    assert pool.dataset.source_type == "code" and "synthetic:toy" in pool.dataset.source
    assert json.loads(pool.dataset.profile)["units"] == p.plan.total_units
    assert {t.key: t.value for t in pool.tags} == {keys.DATA_CONTEXT: "pool"}

    digests = {}
    for c in children:
        (inp,) = c.inputs.dataset_inputs
        m = int(c.data.params[keys.P_SUBSET_SIZE])
        assert inp.dataset.name == f"toy-examples-{m}"
        assert json.loads(inp.dataset.profile)["units"] == m
        assert inp.dataset.source == pool.dataset.source
        assert {t.key: t.value for t in inp.tags} == {keys.DATA_CONTEXT: "training"}
        assert digests.setdefault(m, inp.dataset.digest) == inp.dataset.digest   # one subset, one digest
        assert inp.dataset.digest == p.datasets.subset(m).digest
    assert len(set(digests.values())) == len(digests) == len(s["subsets"])


def test_every_run_names_its_code(toy_study):
    _, parent, children = _runs(toy_study["uri"], toy_study["summary"])
    commit = provenance.git_commit()
    for run in [parent, *children]:
        assert run.data.tags[keys.VERSION] == metadata.version("scal-scaling")
        assert run.data.tags.get(keys.GIT_COMMIT) == commit
        assert run.data.tags.get(keys.MLFLOW_GIT_COMMIT) == commit


def test_no_commit_outside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "ROOT", tmp_path)
    provenance.git_commit.cache_clear()
    try:
        assert provenance.git_commit() is None
        assert provenance.code_tags() == {keys.VERSION: metadata.version("scal-scaling")}
    finally:
        provenance.git_commit.cache_clear()


def test_rounds_are_live_and_a_failed_trial_keeps_its_traceback(tmp_path):
    """Two trials on the local executor: one trains (its first round is in the store, its run
    RUNNING, while it still trains; each round is logged once), one fails inside the training loop
    (AdamW refuses a negative weight decay) and keeps its whole traceback as an artifact."""
    from scal.progress import Progress
    from scal.study import StudyConfig, prepare
    from scal.tracking import TRACEBACK_ARTIFACT, StudyTracker, open_client
    from search.executor import ExecutorSettings
    from search.interpolate import Config

    uri = sqlite_uri(tmp_path)
    p = prepare(StudyConfig(domain="toy", budget="smoke", tracking_uri=uri, device="cpu", progress=False,
                            executor=ExecutorSettings(kind="local")))
    train = replace(p.settings.scale.train, max_rounds=3, patience=10)
    good = replace(p.settings.make_spec(256, Config({"width": 8, "layers": 1}, 0.01), 0), train=train)
    bad = replace(good, train=replace(train, weight_decay=-1.0))
    tracker = StudyTracker("ui-story", open_client(uri))
    tracker.start({}, run_name="ui-story")
    executor = p.executor()
    try:
        trials = first_round_watcher()(p, tracker, Progress(1, "mse", enabled=False), executor)
        ok, failed = trials.run([good, bad], keys.ROLE_GRID)
    finally:
        executor.close()
    tracker.finish()
    assert ok.status == "ok" and failed.status == "failed"
    client = MlflowClient(uri, uri)

    run_id = trials.run_ids[good.trial_hash()]
    status, points = trials.seen[run_id]
    assert status == "RUNNING" and points >= 1           # seen while it trained
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert len(client.get_metric_history(run_id, keys.M_VAL_ERROR)) == int(run.data.metrics[keys.M_ROUNDS]) == 3

    run = client.get_run(trials.run_ids[bad.trial_hash()])
    assert run.info.status == "FAILED" and run.data.tags[keys.STATUS] == "failed"
    assert "weight_decay" in run.data.tags[keys.REASON]
    assert run.inputs.dataset_inputs[0].dataset.name == "toy-examples-256"
    tb = Path(client.download_artifacts(run.info.run_id, TRACEBACK_ARTIFACT, str(tmp_path))).read_text()
    assert tb.startswith("Traceback (most recent call last):") and "weight_decay" in tb.splitlines()[-1]
    assert "domains/loop.py" in tb    # where it was raised: the whole stack, not its last line
    assert [a.path for a in client.list_artifacts(trials.run_ids[good.trial_hash()], "error")] == []

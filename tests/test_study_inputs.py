"""Every input that changes a study's result is an option, a logged parameter and part of the resume
fingerprint (`scal.study.fingerprint`), and so is the scal version that runs it: a study begun by
other code is not continued by this one. (Bad values of the options: test_reliability_inputs.py.)"""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from conftest import run_cli, sqlite_uri
from scal import keys
from scal.provenance import scal_version
from scal.study import StudyConfig, _study_params, fingerprint, prepare
from scal.tracking import StudyTracker
from search.executor import ExecutorSettings

PARAMS = {"study.domain": "toy", "study.seed": 0, "study.pool_size": 32768}


def test_the_fingerprint_names_the_scal_version():
    assert fingerprint(PARAMS) == fingerprint(dict(PARAMS), scal_version())   # this version by default
    assert fingerprint(PARAMS, "0.1.0") != fingerprint(PARAMS, "0.1.1")
    assert fingerprint({**PARAMS, "study.seed": 1}) != fingerprint(PARAMS)


@pytest.mark.slow   # over 5 s on 2 cores (a subprocess, a study or many fits); the full suite runs it
def test_a_study_begun_by_another_version_is_not_resumed(tmp_path):
    """An unfinished study run left by another scal version is not the one this version continues."""
    uri = sqlite_uri(tmp_path)
    client = MlflowClient(uri, uri)
    tracker = StudyTracker("scal-toy-examples", client)
    older = fingerprint(PARAMS, "0.0.1")
    run = client.create_run(tracker.experiment_id, tags={keys.ROLE: keys.ROLE_STUDY, keys.FINGERPRINT: older})
    assert run.info.status == "RUNNING"                                   # as an interrupted study leaves it
    assert tracker.find_unfinished(older).info.run_id == run.info.run_id  # that version would resume it
    assert tracker.find_unfinished(fingerprint(PARAMS)) is None           # this one starts anew


def test_pool_size_is_a_logged_parameter_and_in_the_fingerprint(tmp_path):
    """``--pool-size`` (generated data) was once an environment variable that changed the data and
    nothing else; now the pool a study trains from is its parameter ``study.pool_size``."""
    def params(pool_size):
        cfg = StudyConfig(domain="toy", budget="smoke", pool_size=pool_size, tracking_uri=sqlite_uri(tmp_path),
                          executor=ExecutorSettings(kind="local"))
        return _study_params(prepare(cfg))

    default, small = params(None), params(1024)
    assert default["study.pool_size"] == 32768 and small["study.pool_size"] == 1024
    assert fingerprint(default) != fingerprint(small)
    assert not (tmp_path / "mlflow.db").exists()                          # preparing writes nothing


@pytest.mark.slow   # over 5 s on 2 cores (a subprocess, a study or many fits); the full suite runs it
def test_one_trial_takes_the_pool_size_too(tmp_path):
    """`scal train` (and `search-size`, through the same `prepare`) accept ``--pool-size``: the
    trial's subset is drawn from that pool, which its dataset input's digest records."""
    uri = sqlite_uri(tmp_path)
    digests = {}
    for pool in ("1024", None):
        extra = ["--pool-size", pool] if pool else []
        proc = run_cli(["train", "--domain", "toy", "--budget", "smoke", "--tracking-uri", uri, "--json", *extra],
                       cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        run = MlflowClient(uri, uri).get_run(json.loads(proc.stdout)["run_id"])
        (inp,) = run.inputs.dataset_inputs
        assert inp.dataset.name == "toy-examples-64"
        digests[pool] = inp.dataset.digest
    assert digests["1024"] != digests[None]

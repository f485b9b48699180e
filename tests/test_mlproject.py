"""`mlflow run` of the MLproject (local env manager), and the project's packaging files."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import N_BOOT, ROOT, sqlite_uri
from scal import keys


@pytest.mark.integration
def test_mlflow_run_main_entry_point_local(tmp_path):
    uri = sqlite_uri(tmp_path)
    # --env-manager local runs the entry point in the caller's environment: an activated venv.
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("MLFLOW_RUN_ID", None)
    proc = subprocess.run(
        [sys.executable, "-m", "mlflow", "run", str(ROOT), "-P", "domain=toy", "-P", "budget=smoke",
         "-P", f"n_boot={N_BOOT}", "--env-manager", "local", "--experiment-name", "mlproject-test"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(uri, uri)
    exp = client.get_experiment_by_name("mlproject-test")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get(keys.ROLE) == keys.ROLE_STUDY]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["domain"] == "toy"                 # the entry point's parameter
    assert parent.data.params["study.domain"] == "toy"           # scal's own record
    assert parent.data.params["study.n_boot"] == str(N_BOOT)     # passed through to scal study
    children = [r for r in runs if r.data.tags.get(keys.PARENT) == parent.info.run_id]
    assert len(children) >= 4 * 2                                # 4 subsets x K=2 x S=2 at least, plus probes
    assert len(client.get_metric_history(parent.info.run_id, keys.M_BEST_VAL_ERROR)) == 4


def test_python_env_matches_pyproject_dependencies():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "python_env.yaml").read_text())
    assert sorted(env["dependencies"]) == sorted(deps)
    assert env["python"].startswith("3.11")


def test_mlproject_entry_points():
    spec = yaml.safe_load((ROOT / "MLproject").read_text())
    assert set(spec["entry_points"]) == {"main", "search_size", "analyze"}
    assert spec["python_env"] == "python_env.yaml"
    assert not (ROOT / "mlproject").exists()   # a folder of that name would shadow the MLproject file

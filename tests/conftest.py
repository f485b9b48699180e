"""Shared fixtures: real MLflow stores in temporary directories, real smoke studies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def sqlite_uri(directory: Path) -> str:
    return f"sqlite:///{directory / 'mlflow.db'}"


def run_cli(args: list[str], cwd: Path, env_extra: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python -m scal ARGS`` in a subprocess (what a user types), capturing both streams."""
    env = dict(os.environ)
    env.pop("MLFLOW_RUN_ID", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    # Tests run the in-process executor unless they ask for Ray (--executor ray): it starts in no time.
    env["SCAL_EXECUTOR"] = "local"
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "scal", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def toy_study(tmp_path_factory):
    """A smoke study on toy, run through the CLI with --json into a fresh sqlite store, on a local Ray instance."""
    d = tmp_path_factory.mktemp("toy_study")
    uri = sqlite_uri(d)
    proc = run_cli(["study", "--domain", "toy", "--budget", "smoke", "--tracking-uri", uri, "--json", "--executor", "ray"], cwd=d)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"dir": d, "uri": uri, "proc": proc, "summary": json.loads(proc.stdout)}


@pytest.fixture(scope="session")
def lm_study(tmp_path_factory):
    """A smoke study on the embedded Shakespeare (char level), through the library call."""
    from scal.study import StudyConfig, run_study
    from search.executor import ExecutorSettings

    d = tmp_path_factory.mktemp("lm_study")
    uri = sqlite_uri(d)
    cfg = StudyConfig(domain="lm", unit="char", budget="smoke", tracking_uri=uri, device="cpu", progress=False,
                      executor=ExecutorSettings(kind="local"))
    return {"dir": d, "uri": uri, "summary": run_study(cfg)}

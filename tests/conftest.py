"""Shared fixtures: real MLflow stores in temporary directories, real smoke studies."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def sqlite_uri(directory: Path) -> str:
    return f"sqlite:///{directory / 'mlflow.db'}"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (servers started by tests bind loopback only)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout_s: float = 90, log: Path | None = None) -> None:
    """Wait until ``url`` answers 200; fail at once if ``proc`` (the server) exits, or after
    ``timeout_s``, with the tail of its ``log`` when there is one."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            why = f"exited with {proc.returncode}" if proc.poll() is not None else f"did not answer in {timeout_s} s"
            pytest.fail(f"{url}: the server {why}" + (f":\n{log.read_text()[-3000:]}" if log else ""))
        time.sleep(0.5)


# Bootstrap refits of a test study's analysis. A toy smoke study took 61 s with the default 200 (37 s
# of them the loss surface's refits) and 44 s with 20, idle; a test that reads the intervals passes its own.
N_BOOT = 20


def cheap_unless_asked(args: list[str], local: bool = True) -> list[str]:
    """``args`` with, right after a command that trials run under, ``--executor local`` unless the
    test asks for an executor or ``local`` is false (the in-process executor starts in no time, Ray
    in seconds) and, for ``study``, ``--n-boot N_BOOT`` unless the test gives one. A test that starts
    a study itself and resumes it through `run_cli` starts it with these too: ``--n-boot`` is part
    of the resume key."""
    if not args or args[0] not in ("study", "search-size"):
        return list(args)
    extra = [] if "--executor" in args or not local else ["--executor", "local"]
    if args[0] == "study" and "--n-boot" not in args:
        extra += ["--n-boot", str(N_BOOT)]
    return [args[0], *extra, *args[1:]]


def run_cli(args: list[str], cwd: Path, env_extra: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python -m scal ARGS`` in a subprocess (what a user types), capturing both streams."""
    env = dict(os.environ)
    env.pop("MLFLOW_RUN_ID", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("RAY_ADDRESS", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "scal", *cheap_unless_asked(args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


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
                      n_boot=N_BOOT, executor=ExecutorSettings(kind="local"))
    import torch

    before = torch.get_num_threads()
    try:
        summary = run_study(cfg)   # one thread per trial, the default (`one_thread` says why)
    finally:
        torch.set_num_threads(before)   # the trials set this process's threads; later tests get theirs back
    return {"dir": d, "uri": uri, "summary": summary}


def first_round_watcher():
    """A `scal.study.TrackedTrials` that, right after it logs a trial's first validation round, has
    another thread read that run back from the store with a client of its own, while the trial is
    still training: the writer waits for the reader, so what is read is the live state, whatever
    the executor. ``seen[run_id]``: (the run's status, its number of ``val_error`` points)."""
    import threading

    from mlflow.tracking import MlflowClient

    from scal.study import TrackedTrials

    class FirstRoundWatched(TrackedTrials):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.seen: dict[str, tuple[str, int]] = {}

        def round(self, run_id, metrics, step):
            super().round(run_id, metrics, step)
            if run_id not in self.seen:
                def read():
                    client = MlflowClient(self.tracker.uri)
                    self.seen[run_id] = (client.get_run(run_id).info.status,
                                         len(client.get_metric_history(run_id, "val_error")))

                reader = threading.Thread(target=read)
                reader.start()
                reader.join(timeout=60)

    return FirstRoundWatched


# Each domain's small test data (`domain_data`): a generated pool cut down with ``pool_size``, a read
# one with a short validation set. A domain missing here loads its defaults.
SMALL_DATA = {"toy": {"pool_size": 2048}, "lm": {"max_val_units": 2048}, "image": {"max_val_units": 200},
              "nmt": {"max_val_units": 1500}, "speech": {"pool_size": 16}, "speech_attn": {"pool_size": 16}}


@pytest.fixture(scope="session")
def speech_cache(tmp_path_factory):
    """The session's ``SCAL_CACHE``: synthetic speech generated once per setting, never in ~/.cache."""
    return tmp_path_factory.mktemp("scal_cache")


@pytest.fixture(scope="session")
def domain_data(speech_cache):
    """``domain_data(name, unit)``: the domain's `SMALL_DATA`, loaded once per session and shared by
    every test that asks (tests only read it)."""
    import domains

    loaded = {}

    def load(name: str, unit: str | None = None):
        dom = domains.get(name)
        key = (name, unit or domains.default_unit(dom))
        if key not in loaded:
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("SCAL_CACHE", str(speech_cache))
                loaded[key] = dom.load(key[1], **SMALL_DATA.get(name, {}))
        return loaded[key]

    return load


# What makes a test `slow` (more than about 5 s; `pytest -m "not slow"` leaves it out, CI runs it):
# a real study, whether from one of these fixtures or marked `integration`. Ray, fault injection
# and CLI processes that train are marked where they are.
STUDY_FIXTURES = {"toy_study", "lm_study", "two_studies", "smoke_study"}


@pytest.hookimpl(tryfirst=True)   # before `-m` selects by marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("integration") or STUDY_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
    # Slow tests first (a stable sort: files and their order kept within each tier). The two test
    # processes (pyproject's -n 2) take tests in this order, so the second-long ones come last, where
    # they fill the gaps the minute-long ones leave; work stealing evens out the rest.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def one_thread():
    """Train and solve on one thread (torch's and the BLAS pools'). Small models gain nothing from
    a second thread, and on a shared CPU threads spin-wait on each other: a tiny LSTM's test took
    55 s on two threads and 4 s on one on a loaded 2-core machine. A Ray trial on one CPU runs so too."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(before)

"""Faults from outside a study, as a user meets them: each ends with one `error:` line and an exit
code, keeps what was logged, and leaves a study that the same command resumes, with nothing
trained twice and nothing left RUNNING. (SIGKILL of the driver: tests/test_ray.py and
tests/test_sockets.py; bad input: tests/test_reliability_inputs.py.) docs/reliability.md lists
every case with its result.

The store faults need things only root can do here (a small tmpfs for a full TMPDIR; a driver
without CAP_DAC_OVERRIDE, so that a read-only file stops it as it stops any user); CI runs as root.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import cheap_unless_asked, run_cli, sqlite_uri
from scal import keys
from scal.faults import EXIT_FAULT

pytestmark = pytest.mark.slow   # fault injection: whole studies killed, starved and resumed

STUDY = ["study", "--domain", "toy", "--budget", "smoke", "--json", "--executor", "local"]
NO_REGISTER = ["--no-register"]

# a driver without root's DAC override obeys file modes as any user does
DROP_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs / drops root's capabilities: needs root")


def _env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI")}
    return {**env, **(extra or {})}


def _start(args: list[str], cwd: Path, prefix: list[str] = (), env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([*prefix, sys.executable, "-m", "scal", *cheap_unless_asked(args, local=False)], cwd=cwd, env=_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _n_runs(db: Path) -> int:
    """Runs in the store, read without creating or locking anything."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("select count(*) from runs").fetchone()[0]
    except sqlite3.Error:
        return 0


def _wait_for_runs(db: Path, proc: subprocess.Popen, at_least: int, timeout_s: float = 240) -> None:
    end = time.monotonic() + timeout_s
    while _n_runs(db) < at_least:
        assert proc.poll() is None, f"the study ended early: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < end, "the study logged too few runs in time"
        time.sleep(0.2)


def _one_error_line(stderr: str, needle: str) -> str:
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and needle in errors[0], stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    return errors[0]


def _trial_runs(uri: str):
    client = MlflowClient(uri, uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(exps, max_results=10_000)
    return client, runs


def _resumes_clean(uri: str, cwd: Path, parent_id: str | None, trained_before: set[str],
                   extra: list[str] = ()) -> dict:
    """The same command again: it resumes ``parent_id`` (when the store kept it), trains only what
    was not finished, trains nothing twice, and leaves nothing RUNNING. A trial run the fault cut
    off while it was being logged (still RUNNING, or KILLED by a stop signal) ends KILLED and its
    trial is trained again."""
    _, runs = _trial_runs(uri)
    cut_off = {r.info.run_id for r in runs
               if r.info.status in ("RUNNING", "KILLED") and r.data.tags.get(keys.ROLE) != keys.ROLE_STUDY}
    proc = run_cli(STUDY + list(extra) + ["--tracking-uri", uri], cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = json.loads(proc.stdout)
    if parent_id is not None:
        assert s["parent_run_id"] == parent_id
    _, runs = _trial_runs(uri)
    assert {r.info.run_id: r.info.status for r in runs if r.info.status != "FINISHED"} == \
        {run_id: "KILLED" for run_id in cut_off}
    runs = [r for r in runs if r.info.run_id not in cut_off]
    trained = [r for r in runs if r.data.tags.get(keys.ROLE) != keys.ROLE_STUDY and keys.REUSED_FROM not in r.data.tags]
    hashes = [r.data.tags[keys.TRIAL_HASH] for r in trained if r.data.tags[keys.STATUS] != "failed"]
    assert len(hashes) == len(set(hashes)), "a trial was trained twice"
    assert trained_before <= {r.info.run_id for r in trained}, "a finished trial was lost"
    return s


def _trained_ids(uri: str) -> set[str]:
    _, runs = _trial_runs(uri)
    return {r.info.run_id for r in runs if r.info.status == "FINISHED" and keys.TRIAL_HASH in r.data.tags
            and keys.REUSED_FROM not in r.data.tags}


def _parent(uri: str) -> str:
    _, runs = _trial_runs(uri)
    (parent,) = [r for r in runs if r.data.tags.get(keys.ROLE) == keys.ROLE_STUDY]
    return parent.info.run_id


def test_concurrent_first_use_of_a_new_store(tmp_path):
    """Three commands at once on a store that does not exist yet: it is created and migrated once."""
    uri = sqlite_uri(tmp_path)
    procs = [_start(["train", "--domain", "toy", "--budget", "smoke", "--seed", str(i), "--tracking-uri", uri, "--json"],
                    tmp_path) for i in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    _, runs = _trial_runs(uri)
    assert sorted(r.data.params[keys.P_SEED] for r in runs) == ["0", "1", "2"]


def test_two_identical_studies_at_once(tmp_path):
    """The second sees the first alive, says so in one line before writing anything, and the
    study runs once."""
    uri, db = sqlite_uri(tmp_path), tmp_path / "mlflow.db"
    first = _start(STUDY + ["--tracking-uri", uri], tmp_path)
    try:
        _wait_for_runs(db, first, at_least=2)
        second = run_cli(STUDY + ["--tracking-uri", uri], cwd=tmp_path)
        assert second.returncode == 2 and second.stdout == ""
        _one_error_line(second.stderr, "is already running")
        out, err = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, err[-3000:]
    _, runs = _trial_runs(uri)
    assert len([r for r in runs if r.data.tags.get(keys.ROLE) == keys.ROLE_STUDY]) == 1
    versions = MlflowClient(uri, uri).search_model_versions(f"name = '{json.loads(out)['registered_model']}'")
    assert len(versions) == len(json.loads(out)["subsets"])


def _full_tmpdir(size: str, extra: list[str] = ()):
    """TMPDIR is a tmpfs of ``size``. At 300 KB it fills while the first best-fit model is saved
    (its copy of scal's domain code alone is about 160 KB; MLflow wraps the copy's ENOSPC in a
    shutil.Error inside an MlflowException); with --no-register and 150 KB, while the study
    writes its analysis, after the last trial."""
    def cause(tmp_path: Path, uri: str, db: Path) -> tuple[int, str, str]:
        small = tmp_path / "small"
        small.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(small)], check=True)
        try:
            proc = run_cli(STUDY + list(extra) + ["--tracking-uri", uri], cwd=tmp_path, env_extra={"TMPDIR": str(small)})
        finally:
            subprocess.run(["umount", "-l", str(small)], check=True)
        return proc.returncode, proc.stdout, proc.stderr
    return cause


def _on_ray_with_tmpdir_full(tmp_path: Path, uri: str) -> subprocess.CompletedProcess:
    """The same study again on Ray, TMPDIR still full: Ray cannot write its session folder. Before,
    a 69-line traceback, exit 1, and the study run reopened and left RUNNING."""
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=150k", "tmpfs", str(full)], check=True)
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={full / 'fill'}", "bs=1k", "count=200"], capture_output=True)
        return run_cli(STUDY + NO_REGISTER + ["--executor", "ray", "--tracking-uri", uri], cwd=tmp_path,
                       env_extra={"TMPDIR": str(full)})
    finally:
        subprocess.run(["umount", "-l", str(full)], check=True)


def _mid_study(tmp_path: Path, uri: str, db: Path, act, prefix: list[str] = (), extra: list[str] = ()) -> tuple[int, str, str]:
    """Start the study, ``act(proc)`` once it has logged a few trials, and let it end."""
    proc = _start(STUDY + list(extra) + ["--tracking-uri", uri], tmp_path, prefix=prefix)
    try:
        _wait_for_runs(db, proc, at_least=5)
        act(proc)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    return proc.returncode, out, err


def _read_only_store(tmp_path: Path, uri: str, db: Path) -> tuple[int, str, str]:
    """The store's file and folder become read-only while trials are logged. Root ignores file
    modes; a driver without CAP_DAC_OVERRIDE obeys them like any user."""
    def read_only(proc) -> None:
        db.chmod(0o444)
        db.parent.chmod(0o555)

    try:
        return _mid_study(tmp_path, uri, db, read_only, prefix=DROP_DAC)
    finally:
        db.parent.chmod(0o755)
        db.chmod(0o644)


def _sigkill(tmp_path: Path, uri: str, db: Path) -> tuple[int, str, str]:
    """The driver is killed with SIGKILL while trials are logged (nothing can be printed)."""
    return _mid_study(tmp_path, uri, db, lambda proc: proc.kill())


def _sigterm_on_ray(tmp_path: Path, uri: str, db: Path) -> tuple[int, str, str]:
    """SIGTERM (``timeout``, ``docker stop``, a batch scheduler) while a Ray study logs trials. Before,
    Ray's C++ handler printed a stack trace and aborted (exit 134), leaving the study run RUNNING."""
    return _mid_study(tmp_path, uri, db, lambda proc: proc.terminate(), extra=["--executor", "ray"])


# fault -> (how to cause it, exit code, the error line's phrase or None, the parent run's status after it)
FAULTS = {
    "full TMPDIR at a model": (_full_tmpdir("300k"), EXIT_FAULT, "no space left on device", "FAILED"),
    "full TMPDIR at the analysis": (_full_tmpdir("150k", NO_REGISTER), EXIT_FAULT, "no space left on device", "FAILED"),
    "read-only store": (_read_only_store, EXIT_FAULT, "cannot be written", "RUNNING"),   # it could not be marked
    "SIGKILL": (_sigkill, -9, None, "RUNNING"),
    "SIGTERM (Ray executor)": (_sigterm_on_ray, 143, None, "KILLED"),   # as Ctrl-C, with SIGTERM's exit code
}


@needs_root
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_fault_ends_clean_and_the_same_command_resumes(tmp_path, fault):
    """One line and an exit code (SIGKILL: the signal's), every logged trial kept; the same
    command then resumes the same study run, trains nothing twice, leaves nothing RUNNING."""
    cause, code, phrase, status = FAULTS[fault]
    store = tmp_path / "store"
    store.mkdir()
    uri, db = sqlite_uri(store), store / "mlflow.db"
    returncode, out, err = cause(tmp_path, uri, db)
    assert returncode == code and out == "", err[-3000:]
    if phrase is not None:
        _one_error_line(err, phrase)
    if code == 143:   # one line, as Ctrl-C's; no stack trace (Ray's or Python's)
        assert err.splitlines()[-1].startswith("terminated (SIGTERM): finished trials stay in MLflow"), err[-3000:]
        assert "SIGTERM received" not in err and "Traceback" not in err, err[-3000:]
    parent = _parent(uri)
    assert MlflowClient(uri, uri).get_run(parent).info.status == status
    before = _trained_ids(uri)
    assert before, "the fault came before any trial: the resume below would prove nothing"
    extra = NO_REGISTER if fault == "full TMPDIR at the analysis" else []
    if fault == "full TMPDIR at the analysis":
        again = _on_ray_with_tmpdir_full(tmp_path, uri)
        assert again.returncode == EXIT_FAULT and again.stdout == "", again.stderr[-3000:]
        _one_error_line(again.stderr, "no space left on device")
        assert MlflowClient(uri, uri).get_run(parent).info.status == status   # not reopened and left RUNNING
    s = _resumes_clean(uri, tmp_path, parent, before, extra)
    if fault == "full TMPDIR at the analysis":   # it failed after the last trial: nothing is left to train
        assert s["n_trials"] == 0
    if fault == "full TMPDIR at a model":        # it failed after the first subset: the rest is trained now
        assert s["n_trials"] > 0


def test_store_file_deleted_mid_study(tmp_path):
    """The store's file is deleted under a running study: one line that says so, exit 3."""
    db = tmp_path / "mlflow.db"
    returncode, out, err = _mid_study(tmp_path, sqlite_uri(tmp_path), db, lambda proc: db.unlink())
    assert returncode == EXIT_FAULT and out == ""
    _one_error_line(err, "was deleted or moved")


_DESCRIBE = """
import json, sqlite3, sys
from pathlib import Path
from scal.faults import describe
db = Path(sys.argv[1]) / "mlflow.db"
sqlite3.connect(db).execute("create table t(a)")
uri = f"sqlite:///{db}"
said = lambda text: describe(sqlite3.OperationalError(text), uri)
out = {"writable": said("disk I/O error")}
db.parent.chmod(0o555)
try:
    out["read-only"] = [said("attempt to write a readonly database"), said("disk I/O error")]
finally:
    db.parent.chmod(0o755)
print(json.dumps(out))
"""


@needs_root
def test_a_read_only_store_is_named_so_whatever_sqlite_calls_the_failed_write(tmp_path):
    """For a store whose folder went read-only SQLite says "readonly database" or, when it could
    not make its journal there, "disk I/O error" (CI met both for the same fault): the line names
    the cause the user can fix either way, and a disk I/O error on a writable store stays one."""
    proc = subprocess.run([*DROP_DAC, sys.executable, "-c", _DESCRIBE, str(tmp_path)], capture_output=True, text=True,
                          env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert "failed with a disk I/O error" in out["writable"]
    assert all("cannot be written (read-only" in line for line in out["read-only"]), out

"""The CLI as a user runs it: bad input gives one line and a non-zero exit, and the store is untouched."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import run_cli, sqlite_uri


def _store_state(uri: str) -> tuple:
    client = MlflowClient(uri, uri)
    exps = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in exps], max_results=10_000)
    models = client.search_registered_models()
    return (sorted(e.name for e in exps), sorted((r.info.run_id, r.info.status) for r in runs),
            sorted(m.name for m in models))


@pytest.mark.parametrize(
    "args,needle",
    [
        (["study", "--domain", "nope"], "unknown domain 'nope'"),
        (["study", "--domain", "lm", "--data", "/does/not/exist.txt"], "no such file"),
        (["study", "--domain", "toy", "--min-subset", "4096", "--n-subsets", "12"], "exceeds the training data"),
        (["study", "--domain", "lm", "--unit", "byte"], "no unit 'byte'"),
        (["study", "--domain", "toy", "--budget", "huge"], "unknown budget"),
        (["analyze", "--run-id", "0123456789abcdef"], "no run"),
        (["study", "--domain", "toy", "--width-mults", "a,b"], "--width-mults takes comma-separated floats"),
        (["study", "--domain", "toy", "--overfit-ratio", "-1"], "--overfit-ratio must be positive"),
    ],
)
def test_bad_input_one_line_error_and_store_unchanged(toy_study, tmp_path, args, needle):
    uri = toy_study["uri"]
    db = Path(uri.removeprefix("sqlite:///"))
    before, digest = _store_state(uri), hashlib.sha256(db.read_bytes()).hexdigest()
    proc = run_cli([*args, "--tracking-uri", uri], cwd=tmp_path)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr
    assert proc.stdout == ""
    assert _store_state(uri) == before
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest


def test_corrupt_text_data_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00garbage" * 100)
    proc = run_cli(["study", "--domain", "lm", "--data", str(bad), "--budget", "smoke", "--tracking-uri",
                    sqlite_uri(tmp_path)], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: --data") and "UTF-8" in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_own_text_study_through_cli(tmp_path):
    """A user's text file: held-out paragraphs for validation, the rest as the pool."""
    from domains.text import shakespeare

    text = "\n\n".join(shakespeare().train_docs[:3])
    f = tmp_path / "mine.txt"
    f.write_text(text, encoding="utf-8")
    proc = run_cli(["study", "--domain", "lm", "--data", str(f), "--budget", "smoke", "--experiment", "mine",
                    "--no-register", "--n-seeds", "1", "--width-mults", "1.5", "--tracking-uri", sqlite_uri(tmp_path),
                    "--json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["study"] == "mine" and len(out["subsets"]) == 3 and out["registered_model"] is None
    assert all(x["n_seeds"] == 1 for x in out["subsets"])          # the override reached the search


def test_domains_lists_units_and_metrics(tmp_path):
    proc = run_cli(["domains", "--json"], cwd=tmp_path)
    rows = json.loads(proc.stdout)["domains"]
    assert {(r["domain"], r["unit"], r["metric"]) for r in rows} >= {
        ("lm", "char", "bits_per_char"), ("lm", "word", "nats_per_word"), ("toy", "examples", "val_mse")}


def test_train_and_search_size_commands(tmp_path):
    uri = sqlite_uri(tmp_path)
    proc = run_cli(["train", "--domain", "toy", "--budget", "smoke", "--subset-size", "64", "--width", "8",
                    "--tracking-uri", uri, "--json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    one = json.loads(proc.stdout)
    run = MlflowClient(uri, uri).get_run(one["run_id"])
    assert run.data.params["size.width"] == "8" and float(run.data.metrics["min_val_error"]) == pytest.approx(one["min_val_error"])

    proc = run_cli(["search-size", "--domain", "toy", "--budget", "smoke", "--tracking-uri", uri, "--json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout)
    assert [r["size"] for r in res["subsets"]] == [64, 128, 256, 512]
    for r in res["subsets"]:
        assert r["width"] >= 4 and r["n_params"] > 0 and r["probes"]
        if r["reached"]:
            assert r["probes"][-1]["overfits"] or any(p["overfits"] and p["width"] == r["width"] for p in r["probes"])
    widths = [r["width"] for r in res["subsets"]]
    assert widths == sorted(widths)   # the overfitting width never shrinks as data grows


def test_analyze_reads_an_existing_study(toy_study, tmp_path):
    s = toy_study["summary"]
    proc = run_cli(["analyze", "--run-id", s["parent_run_id"], "--tracking-uri", toy_study["uri"], "--json",
                    "--out-dir", str(tmp_path / "rep")], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = json.loads(proc.stdout)
    assert again["beta_g"] == pytest.approx(s["beta_g"]) and again["beta_p"] == pytest.approx(s["beta_p"])
    assert (tmp_path / "rep" / "learning_curve.png").stat().st_size > 10_000


def test_ui_serves_the_store_on_loopback(toy_study, tmp_path):
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "scal", "ui", "--tracking-uri", toy_study["uri"], "--port", str(port)],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline, body = time.time() + 90, None
        while time.time() < deadline and body is None:
            try:
                url = f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/search?max_results=50"
                body = json.loads(urllib.request.urlopen(url, timeout=2).read())
            except OSError:
                time.sleep(0.5)
        assert body is not None, "MLflow UI did not answer within 90 s"
        assert "scal-toy-examples" in {e["name"] for e in body["experiments"]}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_ctrl_c_keeps_finished_trials_and_marks_the_study_killed(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    uri = sqlite_uri(tmp_path)
    # Create the store's tables first: two processes migrating one new sqlite file at once race.
    client = MlflowClient(uri, uri)
    client.search_experiments()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.Popen([sys.executable, "-m", "scal", "study", "--domain", "toy", "--budget", "quick",
                             "--tracking-uri", uri], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline, n_done = time.time() + 120, 0
    while time.time() < deadline and n_done < 3:
        time.sleep(1)
        exp = client.get_experiment_by_name("scal-toy-examples")
        if exp is not None:
            n_done = len(client.search_runs([exp.experiment_id], "tags.`scal.role` != 'study'"))
    assert n_done >= 3 and proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted: finished trials stay in MLflow" in err
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert {r.info.status for r in runs if r.data.tags.get("scal.role") == "study"} == {"KILLED"}
    trials = [r for r in runs if r.data.tags.get("scal.role") != "study"]
    assert len(trials) >= n_done and all(r.info.status == "FINISHED" for r in trials)
    assert all("min_val_error" in r.data.metrics for r in trials)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")   # the ignored KeyboardInterrupt
def test_a_ctrl_c_swallowed_by_a_finaliser_still_stops_the_study():
    """Python ignores an exception raised inside ``__del__``; a Ctrl-C handled there is remembered
    and raised at the study's next check (after each logged trial) instead of being lost."""
    import os
    import signal

    from scal import tracking

    class Finaliser:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10_000):   # the handler runs here; its KeyboardInterrupt is "ignored"
                pass

    before = signal.getsignal(signal.SIGINT)
    with tracking.interrupts_remembered():
        tracking.raise_if_interrupted()          # nothing yet
        Finaliser()                              # collected at once: the interrupt is swallowed
        with pytest.raises(KeyboardInterrupt):
            tracking.raise_if_interrupted()
    assert signal.getsignal(signal.SIGINT) is before
    with tracking.interrupts_remembered():      # a new study starts with a clean slate
        tracking.raise_if_interrupted()

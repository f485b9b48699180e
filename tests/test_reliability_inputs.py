"""Every bad input ends the same way, before anything is trained or written: one line
``error: ...`` on stderr, nothing on stdout, exit code 2, and the store byte for byte as it was.

Cases that fail before the heavy imports (parse errors, store URIs, fit options) run as a real
``python -m scal`` process (a fraction of a second each). Cases that need a study's inputs resolved
(counts, names, `scal train`'s knobs) would pay seconds of torch and MLflow imports per process,
so they call the same entry point, `scal.cli.main`, in this process.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import cheap_unless_asked, run_cli, sqlite_uri
from test_cli import _store_state

PROCESS, IN_PROCESS = "process", "in-process"
STUDY = ["study", "--domain", "toy", "--budget", "smoke", "--tracking-uri", "{uri}"]
TRAIN = ["train", "--domain", "toy", "--budget", "smoke", "--tracking-uri", "{uri}"]
STORE = ["--run-id", "{run_id}", "--tracking-uri", "{uri}"]
LONG_NAME = "aé" * 150          # 300 characters, 309 bytes once made a folder name (+ "-" and 8 hex digits)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_in_process(args: list[str], cwd: Path, monkeypatch, capsys) -> Result:
    """``scal ARGS`` through `scal.cli.main` in this process, with the environment `run_cli` gives
    a subprocess; the root logger is restored afterwards (the CLI points it at captured stderr)."""
    from scal.cli import main

    monkeypatch.chdir(cwd)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    capsys.readouterr()
    try:
        with pytest.raises(SystemExit) as exited:
            main(cheap_unless_asked(args))
    finally:
        root.handlers[:], root.level = handlers, level
    out, err = capsys.readouterr()
    return Result(exited.value.code, out, err)


CASES = [
    # typer/click's own parse errors: through the real entry point
    (PROCESS, ["study", "--no-such-option"], "No such option: --no-such-option"),
    (PROCESS, ["study", "--k-configs"], "requires an argument"),
    (PROCESS, ["study", "--k-configs", "abc"], "'abc' is not an integer"),
    # stores that cannot be used
    (PROCESS, ["study", "--domain", "toy", "--tracking-uri", "foo://bar"], "unsupported store scheme"),
    (PROCESS, ["study", "--domain", "toy", "--tracking-uri", "sqlite:////proc/x.db"], "cannot create the sqlite store"),
    (PROCESS, ["study", "--domain", "toy", "--tracking-uri", "http://127.0.0.1:9"], "no MLflow server answers"),
    (PROCESS, ["analyze", "--run-id", "{run_id}", "--tracking-uri", "{missing}"], "no MLflow store at"),
    (PROCESS, ["predict", "--run-id", "{run_id}", "--size", "1e5", "--tracking-uri", "{missing}"], "no MLflow store at"),
    (PROCESS, ["report", "--run-id", "{run_id}", "--tracking-uri", "{missing}"], "no MLflow store at"),
    (PROCESS, ["fit", "--run-id", "{run_id}", "--tracking-uri", "{missing}"], "no MLflow store at"),
    (PROCESS, ["ui", "--tracking-uri", "{missing}"], "no MLflow store at"),
    # fitting options, sizes and target errors
    (PROCESS, ["analyze", *STORE, "--n-boot", "0"], "--n-boot must be between 1 and 100000"),
    (PROCESS, ["report", *STORE, "--n-boot", "0"], "--n-boot must be between 1 and 100000"),
    (PROCESS, ["fit", *STORE, "--n-boot", "0"], "--n-boot must be between 1 and 100000"),
    (PROCESS, ["predict", *STORE, "--size", "1e5", "--n-boot", "0"], "--n-boot must be between 1 and 100000"),
    (PROCESS, ["analyze", *STORE, "--holdout", "-1"], "--holdout must be at least 0"),
    (PROCESS, ["predict", *STORE, "--size", "-5"], "--size must be a positive finite number"),
    (PROCESS, ["predict", *STORE, "--target-error", "0"], "--target-error must be a positive finite number"),
    (PROCESS, ["fit", "{csv}", "--x", "m", "--y", "err", "--size", "-100"], "--size must be a positive finite number"),
    (PROCESS, ["fit", "{csv}", "--x", "m", "--y", "err", "--target-error", "nan"], "--target-error must be a positive"),
    (PROCESS, ["ui", "--tracking-uri", "{uri}", "--port", "0"], "--port must be between 1 and 65535"),
    (PROCESS, ["search-size", "--domain", "toy", "--tracking-uri", "{uri}", "--subset-size", "0"], "--subset-size must be at least 1"),
    # names, data and lists a study cannot use
    (IN_PROCESS, ["study", "--domain", "nope", "--tracking-uri", "{uri}"], "unknown domain 'nope'"),
    (IN_PROCESS, ["study", "--domain", "lm", "--data", "/does/not/exist.txt", "--tracking-uri", "{uri}"], "no such file"),
    (IN_PROCESS, [*STUDY, "--min-subset", "4096", "--n-subsets", "12"], "exceeds the training data"),
    (IN_PROCESS, ["study", "--domain", "lm", "--unit", "byte", "--tracking-uri", "{uri}"], "no unit 'byte'"),
    (IN_PROCESS, ["study", "--domain", "toy", "--budget", "huge", "--tracking-uri", "{uri}"], "unknown budget"),
    (IN_PROCESS, ["analyze", "--run-id", "0123456789abcdef", "--tracking-uri", "{uri}"], "no run"),
    (IN_PROCESS, [*STUDY, "--width-mults", "a,b"], "--width-mults takes comma-separated floats"),
    (IN_PROCESS, [*STUDY, "--overfit-ratio", "-1"], "--overfit-ratio must be positive"),
    # a study's counts: 0 is not "the default", and none may exceed what the study can use
    (IN_PROCESS, [*STUDY, "--k-configs", "0"], "--k-configs must be between 1 and 2"),
    (IN_PROCESS, [*STUDY, "--k-configs", "-3"], "--k-configs must be between 1 and 2"),
    (IN_PROCESS, [*STUDY, "--k-configs", "99999999999"], "--k-configs must be between 1 and 2"),
    (IN_PROCESS, [*STUDY, "--n-seeds", "0"], "--n-seeds must be between 1 and 100"),
    (IN_PROCESS, [*STUDY, "--n-seeds", "1000"], "--n-seeds must be between 1 and 100"),
    (IN_PROCESS, [*STUDY, "--threads", "0"], "--threads must be between 1 and 1024"),
    (IN_PROCESS, [*STUDY, "--n-boot", "0"], "--n-boot must be between 1 and 100000"),
    (IN_PROCESS, [*STUDY, "--threads", "4", "--executor", "ray", "--cpus-per-trial", "1"], "--threads 4 is more than"),
    (IN_PROCESS, [*STUDY, "--n-subsets", "0"], "--n-subsets must be at least 3"),
    (IN_PROCESS, [*STUDY, "--n-subsets", "2"], "--n-subsets must be at least 3 (a learning curve is fitted"),
    (IN_PROCESS, [*STUDY, "--max-concurrent", "99999999999"], "--max-concurrent must be between 1 and 4096"),
    (IN_PROCESS, [*STUDY, "--n-subsets", "99999999999"], "at most 10 fit"),
    (IN_PROCESS, [*STUDY, "--min-subset", "0"], "--min-subset must be at least 1"),
    (IN_PROCESS, [*STUDY, "--max-steps", "0"], "--max-steps must be at least 1"),
    (IN_PROCESS, [*STUDY, "--race-keep", "-1"], "--race-keep must be between 0 and 1"),
    (IN_PROCESS, [*STUDY, "--race-keep", "5"], "--race-keep must be between 0 and 1"),
    (IN_PROCESS, [*STUDY, "--cpus-per-trial", "0"], "--cpus-per-trial must be positive"),
    (IN_PROCESS, [*STUDY, "--max-concurrent", "0"], "--max-concurrent must be between 1 and 4096"),
    (IN_PROCESS, [*STUDY, "--seed", "-1"], "--seed must be between 0 and 4294967295"),
    (IN_PROCESS, [*STUDY, "--pool-size", "0"], "--pool-size must be at least 1, got 0"),
    (IN_PROCESS, [*STUDY, "--pool-size", "99999999999"], "--pool-size must be between 1 and 4,194,304 for domain toy"),
    (IN_PROCESS, ["study", "--domain", "lm", "--budget", "smoke", "--tracking-uri", "{uri}", "--pool-size", "100"],
     "--pool-size sizes generated data; domain lm reads its data"),
    (IN_PROCESS, [*STUDY, "--width-mults", "1,nan"], "all positive and finite"),
    # study names MLflow or the file system cannot take
    (IN_PROCESS, [*STUDY, "--experiment", "../../evil"], "registered model name '..-..-evil-0fbfd372-best-fit' is invalid"),
    (IN_PROCESS, [*STUDY, "--experiment", LONG_NAME], "artifact folder name would be 309 bytes"),
    (IN_PROCESS, [*STUDY, "--experiment", " "], "--experiment must not be empty"),
    (IN_PROCESS, [*STUDY, "--experiment", "."], "not a folder of its own"),
    (IN_PROCESS, [*STUDY, "--resume", "--experiment", "nothing-here"], "no unfinished study 'nothing-here'"),
    # one trial
    (IN_PROCESS, [*TRAIN, "--width", "-4"], "--width must be at least 1, got -4"),
    (IN_PROCESS, [*TRAIN, "--width", "0"], "--width must be at least 1, got 0"),
    (IN_PROCESS, [*TRAIN, "--lr", "-0.1"], "--lr must be a positive finite number"),
    (IN_PROCESS, [*TRAIN, "--lr", "nan"], "--lr must be a positive finite number"),
    (IN_PROCESS, [*TRAIN, "--subset-size", "0"], "--subset-size must be at least 1"),
    (IN_PROCESS, [*TRAIN, "--pool-size", "0"], "--pool-size must be at least 1, got 0"),
    (PROCESS, ["search-size", "--domain", "lm", "--tracking-uri", "{uri}", "--pool-size", "100"],
     "--pool-size sizes generated data; domain lm reads its data"),
]


@pytest.fixture(scope="module")
def curve_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("csv") / "curve.csv"
    rows = [(m, 2.0 * m ** -0.3 + 0.05) for m in (1e3, 2e3, 4e3, 8e3, 16e3, 32e3, 64e3, 128e3)]
    path.write_text("m,err\n" + "".join(f"{m:g},{e:.6g}\n" for m, e in rows))
    return path


def _digest(uri: str) -> str:
    return hashlib.sha256(Path(uri.removeprefix("sqlite:///")).read_bytes()).hexdigest()


@pytest.mark.parametrize("how,args,needle", CASES, ids=[f"{h}:{' '.join(a)[:60]}" for h, a, _ in CASES])
def test_bad_input_one_error_line_exit_2_store_unchanged(toy_study, curve_csv, tmp_path, monkeypatch, capsys,
                                                         how, args, needle):
    uri = toy_study["uri"]
    fill = {"uri": uri, "run_id": toy_study["summary"]["parent_run_id"], "csv": str(curve_csv),
            "missing": sqlite_uri(tmp_path / "absent")}
    args = [a.format(**fill) for a in args]
    before, digest = _store_state(uri), _digest(uri)
    proc = run_cli(args, cwd=tmp_path, timeout=120) if how == PROCESS else run_in_process(args, tmp_path, monkeypatch, capsys)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr[-2000:]
    assert proc.stdout == ""
    assert _store_state(uri) == before and _digest(uri) == digest
    assert list(tmp_path.iterdir()) == []          # nor anything written where the command ran


READ_ONLY = [
    ["analyze", "--run-id", "0123456789abcdef"],
    ["report", "--run-id", "0123456789abcdef"],
    ["fit", "--run-id", "0123456789abcdef"],
    ["predict", "--run-id", "0123456789abcdef", "--size", "1e5"],
    ["ui"],
]


@pytest.mark.parametrize("args", READ_ONLY, ids=[a[0] for a in READ_ONLY])
def test_read_only_commands_create_no_store(tmp_path, args):
    """Given no --tracking-uri, the default store (./mlflow.db) is read, never created."""
    proc = run_cli(args, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: no MLflow store at"), proc.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow   # over 5 s on 2 cores (a subprocess, a study or many fits); the full suite runs it
def test_resume_without_a_store_creates_nothing(tmp_path):
    proc = run_cli(["study", "--domain", "toy", "--budget", "smoke", "--resume"], cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: no unfinished study"), proc.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []


def test_a_server_that_never_answers_fails_within_5_s(tmp_path):
    """A port that accepts the connection and then says nothing: MLflow's client would wait and
    retry for minutes; the up-front check gives up after its one request's timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        proc = run_cli(["study", "--domain", "toy", "--tracking-uri", uri], cwd=tmp_path, timeout=60)
        elapsed_s = time.monotonic() - start
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: no MLflow server answers at {uri}"), proc.stderr
    assert elapsed_s < 5, f"took {elapsed_s:.1f} s"
    assert len(proc.stderr.splitlines()) == 1 and proc.stdout == ""


def test_help_still_exits_0(tmp_path):
    proc = run_cli(["study", "--help"], cwd=tmp_path, timeout=60)
    assert proc.returncode == 0 and "--k-configs" in proc.stdout and proc.stderr == ""


def test_two_study_names_never_share_a_registered_model_or_a_folder(tmp_path):
    """`ab;cd` and `ab cd` were both made `ab-cd`: the second study moved `@largest` of the first's
    registered model to its own versions, with exit 0. Every name now gets its own model and folder;
    a name already fit for both keeps its old ones (the default study's model is unchanged)."""
    from scal.names import artifact_location, model_name

    uri = sqlite_uri(tmp_path)
    names = ["ab;cd", "ab cd", "ab-cd", "ab--cd", "é", "ü", "日本"]
    assert len({model_name(n) for n in names}) == len(names)
    assert len({artifact_location(uri, n) for n in names}) == len(names)
    assert model_name("scal-lm-char") == "scal-lm-char-best-fit" and model_name("ab-cd") == "ab-cd-best-fit"


def test_a_stray_mlflow_run_id_is_refused_not_attached(toy_study, tmp_path):
    """MLFLOW_RUN_ID is how `mlflow run` hands its entry point the run to log into. One left in a
    shell, or naming a run `mlflow run` did not start, made the study log its trials into that
    foreign run, silently; now it is one line and exit 2, and the store is unchanged."""
    uri = toy_study["uri"]
    before = _store_state(uri)
    finished = toy_study["summary"]["parent_run_id"]
    for run_id, needle in ((finished, "names a FINISHED run that `mlflow run` did not start"),
                           ("0123456789abcdef0123456789abcdef", "names no run in")):
        proc = run_cli(["study", "--domain", "toy", "--budget", "smoke", "--tracking-uri", uri], cwd=tmp_path,
                       env_extra={"MLFLOW_RUN_ID": run_id}, timeout=120)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stderr[-2000:]
        assert "unset MLFLOW_RUN_ID" in lines[0]
    assert _store_state(uri) == before

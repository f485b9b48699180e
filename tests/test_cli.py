"""The CLI as a user runs it: bad input gives one line and a non-zero exit, and the store is untouched;
--version, -h, help on every option, renamed options as hidden aliases, shell completion, --quiet,
MLFLOW_REGISTRY_URI, and docs/cli.md generated from the commands (``python tests/test_cli.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import run_cli, sqlite_uri
from scal import keys


def _store_state(uri: str) -> tuple:
    client = MlflowClient(uri, uri)
    exps = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in exps], max_results=10_000)
    models = client.search_registered_models()
    return (sorted(e.name for e in exps), sorted((r.info.run_id, r.info.status) for r in runs),
            sorted(m.name for m in models))


@pytest.mark.slow   # over 5 s on 2 cores (a subprocess, a study or many fits); the full suite runs it
def test_corrupt_text_data_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00garbage" * 100)
    proc = run_cli(["study", "--domain", "lm", "--data", str(bad), "--budget", "smoke", "--tracking-uri",
                    sqlite_uri(tmp_path)], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: --data") and "UTF-8" in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow   # a CLI process that trains
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


@pytest.mark.slow   # over 5 s on 2 cores (a subprocess, a study or many fits); the full suite runs it
def test_domains_lists_units_and_metrics(tmp_path):
    proc = run_cli(["domains", "--json"], cwd=tmp_path)
    rows = json.loads(proc.stdout)["domains"]
    assert {(r["domain"], r["unit"], r["metric"]) for r in rows} >= {
        ("lm", "char", "bits_per_char"), ("lm", "word", "nats_per_word"), ("toy", "examples", "val_mse")}


@pytest.mark.slow   # a CLI process that trains
def test_train_and_search_size_commands(tmp_path):
    uri = sqlite_uri(tmp_path)
    proc = run_cli(["train", "--domain", "toy", "--budget", "smoke", "--subset-size", "64", "--width", "8",
                    "--tracking-uri", uri, "--json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    one = json.loads(proc.stdout)
    run = MlflowClient(uri, uri).get_run(one["run_id"])
    assert run.data.params["size.width"] == "8" and float(run.data.metrics["min_val_error"]) == pytest.approx(one["min_val_error"])
    # stderr is no terminal here: progress comes as a log line per finished batch, never as a bar
    assert "I scal.progress: subset 1/1 m=64 grid: 1/1 trial(s)" in proc.stderr and "\r" not in proc.stderr

    quiet = run_cli(["train", "--domain", "toy", "--budget", "smoke", "--subset-size", "64", "--width", "8",
                     "--tracking-uri", uri, "--json", "--quiet"], cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert json.loads(quiet.stdout)["min_val_error"] == pytest.approx(one["min_val_error"])
    # only the result (its human form goes to stderr beside --json): no progress, no log lines
    assert [ln.split(" ")[0] for ln in quiet.stderr.splitlines()] == ["run_id=" + json.loads(quiet.stdout)["run_id"]]
    assert len(quiet.stderr) < len(proc.stderr)

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


@pytest.mark.slow   # a CLI process that trains
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
        if exp is not None:   # finished trials: a trial's run exists (RUNNING) from its start
            n_done = len(client.search_runs([exp.experiment_id],
                                            "tags.`scal.role` != 'study' and attributes.status = 'FINISHED'"))
    assert n_done >= 3 and proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted: finished trials stay in MLflow" in err
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    assert {r.info.status for r in runs if r.data.tags.get("scal.role") == "study"} == {"KILLED"}
    trials = [r for r in runs if r.data.tags.get("scal.role") != "study"]
    finished = [r for r in trials if r.info.status == "FINISHED"]
    assert len(finished) >= n_done and all("min_val_error" in r.data.metrics for r in finished)
    # the trials training when Ctrl-C came end KILLED with the study, without a result (a resume trains them again)
    assert all(r.info.status == "KILLED" and "min_val_error" not in r.data.metrics
               for r in trials if r.info.status != "FINISHED")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")   # the ignored KeyboardInterrupt
@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_stop_signal_swallowed_by_a_finaliser_still_stops_the_study(signame):
    """Python ignores an exception raised inside ``__del__``; a Ctrl-C (or a SIGTERM) handled there
    is remembered and raised at the study's next check (after each logged trial) instead of being
    lost. A SIGTERM is a `Terminated`, which ends a study as Ctrl-C does (a KeyboardInterrupt)."""
    import os
    import signal

    from scal import interrupts

    signum = getattr(signal, signame)

    class Finaliser:
        def __del__(self):
            os.kill(os.getpid(), signum)
            for _ in range(10_000):   # the handler runs here; its KeyboardInterrupt is "ignored"
                pass

    before = {s: signal.getsignal(s) for s in interrupts.STOP_SIGNALS}
    with interrupts.interrupts_remembered():
        interrupts.raise_if_interrupted()          # nothing yet
        Finaliser()                                # collected at once: the interrupt is swallowed
        with pytest.raises(KeyboardInterrupt) as raised:
            interrupts.raise_if_interrupted()
    assert isinstance(raised.value, interrupts.Terminated) == (signame == "SIGTERM")
    assert {s: signal.getsignal(s) for s in interrupts.STOP_SIGNALS} == before
    with interrupts.interrupts_remembered():      # a new study starts with a clean slate
        interrupts.raise_if_interrupted()


@pytest.mark.slow   # a CLI process that trains
def test_registry_uri_from_the_environment_gets_the_models(tmp_path):
    """MLFLOW_REGISTRY_URI names a registry apart from the tracking store: the study's best fits
    are registered there (with the @largest alias), and the tracking store's own registry stays empty."""
    uri, reg = sqlite_uri(tmp_path), f"sqlite:///{tmp_path / 'registry.db'}"
    proc = run_cli(["study", "--domain", "toy", "--budget", "smoke", "--n-subsets", "3", "--k-configs", "1",
                    "--n-seeds", "1", "--tracking-uri", uri, "--json"], cwd=tmp_path,
                   env_extra={"MLFLOW_REGISTRY_URI": reg})
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    name = out["registered_model"]
    shared = MlflowClient(uri, reg)
    versions = shared.search_model_versions(f"name = '{name}'")
    assert sorted(int(v.tags[keys.R_SUBSET_SIZE]) for v in versions) == [s["size"] for s in out["subsets"]]
    assert shared.get_model_version_by_alias(name, keys.ALIAS_LARGEST).version in {v.version for v in versions}
    assert MlflowClient(uri, uri).search_registered_models() == []


def test_progress_off_a_terminal_is_log_lines(caplog, monkeypatch):
    """Off a terminal: one log line per finished batch (probes of a subset share one), a line while
    a batch runs once HEARTBEAT_S has passed, and nothing at all when progress is off (--quiet)."""
    from domains.protocol import TrialResult, TrialSpec
    from scal import progress

    def result(width: int, error: float) -> TrialResult:
        spec = TrialSpec(domain="toy", unit="examples", subset_size=64, size={"width": width}, lr=0.01, seed=0,
                         budget="smoke")
        return TrialResult(spec=spec, n_params=10, min_val_error=error, min_val_loss=error, best_epoch=1.0,
                           best_step=1, final_train_loss=error, steps=10, epochs=1.0, wall_time_s=0.1)

    caplog.set_level("INFO", logger="scal.progress")
    bar = progress.Progress(2, "val_mse", terminal=False)
    bar.begin(64, 0, "overfit_probe")
    bar.trial(result(4, 0.3))
    bar.begin(64, 0, "overfit_probe")          # the next probe of the same subset: the same batch
    bar.trial(result(8, 0.2))
    bar.begin(64, 2, "grid")
    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.0)
    bar.trial(result(8, 0.25))
    bar.trial(result(16, float("nan")))         # a failed trial is counted, never the best
    bar.subset_done()
    assert [r.getMessage() for r in caplog.records] == [
        "subset 1/2 m=64 overfit probe: 2 trial(s) in 0 s, best 0.2 val_mse (width=8)",
        "subset 1/2 m=64 grid: trial 1/2 done, best so far 0.25 val_mse (width=8)",
        "subset 1/2 m=64 grid: trial 2/2 done, best so far 0.25 val_mse (width=8)",
        "subset 1/2 m=64 grid: 2/2 trial(s) in 0 s, best 0.25 val_mse (width=8)",
    ]
    caplog.clear()
    quiet = progress.Progress(1, "val_mse", enabled=False, terminal=False)
    quiet.begin(64, 1, "grid")
    quiet.trial(result(8, 0.25))
    quiet.subset_done()
    assert caplog.records == []


# --- the command line as people expect it: --version, -h, help everywhere, renames, completion, docs ---

# (command, old name, new name): the old names were hidden aliases for one release and are gone
RENAMED = [("report", "--out", "--out-dir"), ("fit", "--predict", "--size"), ("compare", "--at", "--size"),
           ("predict", "--csv", "csv")]
DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
BLOCK_START = "<!-- options: {} (generated from scal/cli.py; `python tests/test_cli.py` rewrites it) -->"
BLOCK_END = "<!-- /options -->"


def _click_tree():
    """{"scal": the root, "scal study": ..., ...}: the click commands typer builds from the app."""
    import typer.main

    from scal.cli import app

    root = typer.main.get_command(app)
    return {"scal": root, **{f"scal {name}": cmd for name, cmd in root.commands.items()}}


def _param(cmd, name: str):
    (p,) = [p for p in cmd.params if name in p.opts]
    return p


def test_version_and_short_help(tmp_path):
    from importlib import metadata

    proc = run_cli(["--version"], cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == f"scal {metadata.version('scal-scaling')}\n", proc.stderr
    for args, usage in ((["-h"], "Usage: scal [OPTIONS] COMMAND"), (["study", "-h"], "Usage: scal study [OPTIONS]"),
                        (["fit", "-h"], "Usage: scal fit [OPTIONS] [CSV]")):
        proc = run_cli(args, cwd=tmp_path)
        assert proc.returncode == 0 and usage in proc.stdout and proc.stderr == "", (args, proc.stdout[:500], proc.stderr)


def test_every_option_and_argument_has_help():
    missing = [(path, p.name) for path, cmd in _click_tree().items() for p in cmd.params
               if not getattr(p, "hidden", False) and not (p.help or "").strip()]
    assert missing == []


@pytest.mark.parametrize("command,old,new", RENAMED)
def test_the_old_names_of_renamed_options_are_gone(command, old, new, tmp_path, monkeypatch, capsys):
    from test_reliability_inputs import run_in_process   # it imports this module: not at the top

    cmd = _click_tree()[f"scal {command}"]
    assert _param(cmd, new) is not None and not _param(cmd, new).hidden
    assert not any(old in p.opts for p in cmd.params), f"{command} still takes {old}"
    gone = run_in_process([command, old, "x"], tmp_path, monkeypatch, capsys)
    (line,) = gone.stderr.splitlines()
    assert gone.returncode == 2 and line.startswith(f"error: No such option: {old} ") and line.endswith("--help)")


def test_verbose_and_quiet_exclude_each_other(tmp_path):
    proc = run_cli(["fit", "x.csv", "--x", "m", "--y", "e", "-v", "-q"], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr == "error: --verbose and --quiet exclude each other\n"


def test_shell_completion(tmp_path):
    proc = run_cli(["--show-completion", "bash"], cwd=tmp_path)
    assert proc.returncode == 0 and "_scal_completion()" in proc.stdout and "complete " in proc.stdout, proc.stderr
    zsh = run_cli(["--show-completion", "zsh"], cwd=tmp_path)
    assert zsh.returncode == 0 and zsh.stdout.startswith("#compdef scal")   # the shell named, not the one running
    bad = run_cli(["--show-completion", "tcsh"], cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: Invalid value for --show-completion: takes one of bash")
    # what the bash script asks: the words so far in, completions out (commands, then options; no hidden alias)
    ask = {"_SCAL_COMPLETE": "complete_bash", "COMP_WORDS": "scal rep", "COMP_CWORD": "1"}
    assert run_cli([], cwd=tmp_path, env_extra=ask).stdout.split() == ["report"]
    ask.update(COMP_WORDS="scal report --out", COMP_CWORD="2")
    assert run_cli([], cwd=tmp_path, env_extra=ask).stdout.split() == ["--out-dir"]


def _cell(text) -> str:
    """Text for a Markdown table cell: | ends a cell, <x> reads as an HTML tag and a*b*c as emphasis."""
    return str(text).replace("\n", " ").replace("|", "\\|").replace("<", "\\<").replace("*", "\\*")


TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT"}   # click's names, as the help's metavars


def _options_table(cmd) -> str:
    """One Markdown table of a command's parameters, as its -h shows them (hidden aliases left out)."""
    rows = ["| option | value | default | meaning |", "|---|---|---|---|"]
    for p in cmd.params:
        if getattr(p, "hidden", False):
            continue
        if p.param_type_name == "argument":
            name = f"`{p.metavar or p.name.upper()}`" + (" ..." if p.nargs == -1 else "") + " (argument)"
        else:
            name = " / ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
        if p.is_flag if hasattr(p, "is_flag") else False:
            value, default = "", ("on" if p.default else "off") if p.default is not None else ""
        else:
            bare = p.bare_type()
            bare = bare.removeprefix("list[").removesuffix("]")
            value = p.metavar or TYPE_NAMES.get(bare, bare.upper())
            value += ", repeatable" if p.multiple or p.nargs == -1 else ""
            default = "" if p.default is None else f"`{p.default}`"
        if getattr(p, "envvar", None):
            default += f" (env `{p.envvar}`)"
        rows.append(f"| {name} | {_cell(value)} | {_cell(default.strip())} | {_cell(p.help)} |")
    return "\n".join(rows)


def rewrite_option_tables(text: str) -> str:
    """``text`` (docs/cli.md) with every command's generated block replaced by the current table;
    a command without a block is an error (a new command must be documented by hand first)."""
    import re

    for path, cmd in _click_tree().items():
        start = BLOCK_START.format(path)
        pattern = re.escape(start) + r"\n.*?" + re.escape(BLOCK_END)
        if not re.search(pattern, text, flags=re.S):
            raise AssertionError(f"docs/cli.md has no option block for `{path}`: add the line {start!r} "
                                 f"and {BLOCK_END!r} under its heading")
        text = re.sub(pattern, lambda _: f"{start}\n{_options_table(cmd)}\n{BLOCK_END}", text, flags=re.S)
    return text


def test_docs_cli_md_matches_the_commands():
    """docs/cli.md's option tables are the CLI's own: a new, renamed or changed option fails here
    until the doc is regenerated, and a new command until the doc has a section for it."""
    text = DOC.read_text(encoding="utf-8")
    assert text == rewrite_option_tables(text), "docs/cli.md is out of date: run `python tests/test_cli.py`"


if __name__ == "__main__":      # rewrite docs/cli.md's option tables from the commands
    DOC.write_text(rewrite_option_tables(DOC.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"rewrote the option tables of {DOC}")

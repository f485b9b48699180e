"""The Ray Tune executor on real Ray: a local instance, a 2-node cluster on this host, concurrency,
skopt and ASHA smoke studies, and resume after the driver is killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from conftest import N_BOOT, cheap_unless_asked, first_round_watcher, free_port, run_cli, sqlite_uri, wait_http
from scal import keys

pytestmark = pytest.mark.slow   # every test starts a Ray instance (seconds) and most run a study

SMOKE = ["study", "--domain", "toy", "--budget", "smoke", "--json"]


def _trial_runs(uri: str, parent: str):
    client = MlflowClient(uri, uri)
    exp = client.get_run(parent).info.experiment_id
    return client, client.search_runs([exp], f"tags.`{keys.PARENT}` = '{parent}'", max_results=1000)


def _check_run_tree(uri: str, summary: dict) -> list:
    """Every trial a FINISHED child run with its params, its summary metrics and one val_error point per round."""
    client, runs = _trial_runs(uri, summary["parent_run_id"])
    assert runs
    hashes = {r.info.run_id: r.data.tags[keys.TRIAL_HASH] for r in runs}
    for r in runs:
        assert r.info.status == "FINISHED", r.info
        assert r.data.tags[keys.ROLE] in (keys.ROLE_GRID, keys.ROLE_PROBE)
        if keys.REUSED_FROM in r.data.tags:   # a reference to the run that trained the same spec
            assert hashes[r.data.tags[keys.REUSED_FROM]] == r.data.tags[keys.TRIAL_HASH]
            continue
        assert r.data.tags[keys.NODE]
        assert {keys.P_SUBSET_SIZE, keys.P_LR, keys.P_SEED, keys.P_N_PARAMS} <= set(r.data.params)
        assert keys.M_MIN_VAL_ERROR in r.data.metrics
        points = client.get_metric_history(r.info.run_id, keys.M_VAL_ERROR)
        assert len(points) == int(r.data.metrics[keys.M_ROUNDS]) > 0
    assert client.get_run(summary["parent_run_id"]).info.status == "FINISHED"
    return runs


def test_smoke_study_on_local_ray(toy_study):
    """The session's toy study ran through a real local Ray instance with 2 CPUs, 2 trials at once."""
    s = toy_study["summary"]
    assert s["executor"] == "ray" and s["concurrency"] == 2
    runs = _check_run_tree(toy_study["uri"], s)
    assert len(runs) == s["n_trials"] + s["n_reused"]
    # one CPU per trial means one torch thread per trial: more would oversubscribe the cores
    assert {r.data.tags[keys.THREADS] for r in runs} == {"1"}
    assert len(s["registered_versions"]) == len(s["subsets"])
    assert "started a local instance" in toy_study["proc"].stderr


def test_two_node_cluster(tmp_path):
    """A 2-node Ray cluster on this host, a real `mlflow server` on 127.0.0.1: trials land on both nodes."""
    import ray
    from ray.cluster_utils import Cluster

    from scal.study import StudyConfig, run_study
    from search.executor import ExecutorSettings

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", sqlite_uri(tmp_path), "--default-artifact-root", (tmp_path / "artifacts").as_uri()],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    # Both raylets bind this host's own address: Ray maps a loopback bootstrap address to it anyway,
    # so a cluster bound to 127.0.0.1 cannot be joined by address.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    try:
        uri = f"http://127.0.0.1:{port}"
        wait_http(uri + "/health", server)
        # Trials of a few seconds (lm, larger subsets than smoke's): Tune reuses a warm worker for
        # the next trial, so trials shorter than a new worker's start-up (~2 s) never reach node 2.
        cfg = StudyConfig(domain="lm", unit="char", budget="smoke", tracking_uri=uri, device="cpu", progress=False,
                          n_subsets=3, min_subset=16384, n_boot=N_BOOT,
                          executor=ExecutorSettings(kind="ray", ray_address=cluster.address))
        summary = run_study(cfg)
        assert summary["concurrency"] == 2
        runs = _check_run_tree(uri, summary)
        nodes = {r.data.tags[keys.NODE] for r in runs if keys.REUSED_FROM not in r.data.tags}
        assert len(nodes) == 2, nodes
        assert {n["NodeID"] for n in ray.nodes() if n["Alive"]} == nodes
    finally:
        ray.shutdown()
        cluster.shutdown()
        server.terminate()
        server.wait(timeout=30)


def test_ray_address_needs_a_tracking_server(tmp_path):
    proc = run_cli([*SMOKE, "--executor", "auto", "--ray-address", "127.0.0.1:6379", "--tracking-uri", sqlite_uri(tmp_path)],
                   cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --ray-address joins a cluster")
    assert not (tmp_path / "mlflow.db").exists()


def test_four_trials_at_once_log_everything(tmp_path):
    """8 trials, 4 at a time (0.5 CPU each) through Ray into one sqlite store: every run and point is
    there, and each trial's first round was in the store, its run RUNNING, while it trained."""
    from scal.progress import Progress
    from scal.study import StudyConfig, prepare
    from scal.tracking import StudyTracker, open_client
    from search.executor import ExecutorSettings, make_executor
    from search.trial import TrialContext
    from search.interpolate import Config

    settings = ExecutorSettings(kind="ray", cpus_per_trial=0.5)
    p = prepare(StudyConfig(domain="toy", budget="smoke", tracking_uri=sqlite_uri(tmp_path), device="cpu",
                            executor=settings, progress=False))
    # Longer trials than the smoke budget's, so that four really overlap.
    train = replace(p.settings.scale.train, max_rounds=5, min_round_steps=150, max_steps=750, patience=10)
    specs = [replace(p.settings.make_spec(256, Config({"width": w, "layers": 1}, 0.01), seed), train=train)
             for w in (8, 16) for seed in range(4)]
    tracker = StudyTracker("concurrency", open_client(sqlite_uri(tmp_path)))
    parent = tracker.start({}, run_name="concurrency")
    executor = make_executor(settings, TrialContext("toy", p.data, p.plan, "cpu"), max_rounds=train.max_rounds)
    try:
        assert executor.concurrency == 4
        trials = first_round_watcher()(p, tracker, Progress(1, "mse", enabled=False), executor)
        results = trials.run(specs, keys.ROLE_GRID)
    finally:
        executor.close()
    tracker.finish()
    assert [r.spec for r in results] == specs and all(r.ok for r in results)
    client, runs = _trial_runs(sqlite_uri(tmp_path), parent)
    assert len(runs) == len(specs) == trials.n_trials
    assert {r.data.tags[keys.TRIAL_HASH] for r in runs} == {s.trial_hash() for s in specs}
    assert set(trials.seen) == {r.info.run_id for r in runs}
    assert all(status == "RUNNING" and points >= 1 for status, points in trials.seen.values()), trials.seen
    total_points = 0
    for r in runs:
        n = len(client.get_metric_history(r.info.run_id, keys.M_VAL_ERROR))
        assert n == int(r.data.metrics[keys.M_ROUNDS]) == 5
        total_points += n
    assert total_points == 5 * len(specs)
    # The runs carry the trials' own start and end times: at some moment four were training.
    events = sorted([(r.info.start_time, 1) for r in runs] + [(r.info.end_time, -1) for r in runs])
    running, peak = 0, 0
    for _, d in events:
        running += d
        peak = max(peak, running)
    assert peak >= 4, peak


def test_skopt_searcher_smoke(tmp_path):
    proc = run_cli([*SMOKE, "--searcher", "skopt", "--k-configs", "3", "--width-mults", "0.5,1,2", "--lr-mults",
                    "0.5,1,2", "--executor", "ray", "--tracking-uri", sqlite_uri(tmp_path)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = json.loads(proc.stdout)
    runs = _check_run_tree(sqlite_uri(tmp_path), s)
    grid = [r for r in runs if r.data.tags[keys.ROLE] == keys.ROLE_GRID]
    configs = {(r.data.params[keys.P_SUBSET_SIZE], r.data.params["size.width"], r.data.params[keys.P_LR]) for r in grid}
    assert len(configs) == 3 * len(s["subsets"])          # K distinct configurations per subset
    assert len(grid) == 2 * len(configs)                    # S seeds each
    assert MlflowClient(sqlite_uri(tmp_path)).get_run(s["parent_run_id"]).data.params["study.searcher"] == "skopt:GP"


def test_seed_racing_smoke(tmp_path):
    """--race-keep 1 on Ray: per subset K first seeds, then the second seed of the best first seed
    only; the subset's best-fit point is that configuration's median, never a raced-out one's."""
    proc = run_cli([*SMOKE, "--race-keep", "1", "--k-configs", "3", "--width-mults", "0.5,1,2", "--lr-mults",
                    "0.5,1,2", "--executor", "ray", "--tracking-uri", sqlite_uri(tmp_path)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = json.loads(proc.stdout)
    runs = _check_run_tree(sqlite_uri(tmp_path), s)
    grid = [r for r in runs if r.data.tags[keys.ROLE] == keys.ROLE_GRID]
    for point in s["subsets"]:
        by_config: dict[tuple, dict[int, float]] = {}
        for r in grid:
            if int(r.data.params[keys.P_SUBSET_SIZE]) == point["size"]:
                key = (int(r.data.params["size.width"]), float(r.data.params[keys.P_LR]))
                by_config.setdefault(key, {})[int(r.data.params[keys.P_SEED])] = r.data.metrics[keys.M_MIN_VAL_ERROR]
        assert len(by_config) == 3 and sum(map(len, by_config.values())) == 3 + 1
        (raced, seeds), = [(k, v) for k, v in by_config.items() if len(v) == 2]
        first = min(seeds)
        assert seeds[first] == min(v[first] for v in by_config.values())      # the best first seed went on
        assert point["val_error"] == pytest.approx(float(np.median(list(seeds.values()))))
        assert (point["size_knobs"]["width"], point["lr"]) == pytest.approx(raced)
    assert MlflowClient(sqlite_uri(tmp_path)).get_run(s["parent_run_id"]).data.params["study.race_keep"] == "1"


def test_asha_stops_trials_and_curve_registry_fit_and_report_agree(tmp_path):
    """ASHA stops some grid trials; the one best-fit rule (`search.bestfit`) still names one
    configuration per subset everywhere: the curve logged during the study, the registered model,
    the fitted points and the report's table."""
    uri = sqlite_uri(tmp_path)
    proc = run_cli([*SMOKE, "--executor", "auto", "--scheduler", "asha", "--k-configs", "6", "--width-mults", "0.5,1,2",
                    "--lr-mults", "0.1,1,3", "--n-subsets", "3", "--tracking-uri", uri], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = json.loads(proc.stdout)
    assert s["executor"] == "ray"
    runs = _check_run_tree(uri, s)
    client = MlflowClient(uri, uri)
    stopped = [r for r in runs if r.data.tags[keys.STATUS] == "stopped"]
    assert stopped, "ASHA stopped no trial: the agreement below would not be tested"
    assert all(int(r.data.params[keys.P_N_PARAMS]) > 0 for r in stopped)   # a stopped trial knows its size

    by_hash = {r.data.tags[keys.TRIAL_HASH]: r for r in runs}
    curve = {m.step: m.value for m in client.get_metric_history(s["parent_run_id"], keys.M_BEST_VAL_ERROR)}
    sizes_curve = {m.step: m.value for m in client.get_metric_history(s["parent_run_id"], keys.M_BEST_N_PARAMS)}
    versions = {int(v.tags[keys.R_SUBSET_SIZE]): v
                for v in client.search_model_versions(f"name = '{s['registered_model']}'")}
    local = client.download_artifacts(s["parent_run_id"], "analysis/best_fit_points.csv", str(tmp_path))
    report = {int(row["size"]): row for row in __import__("csv").DictReader(open(local))}
    assert set(curve) == set(versions) == set(report) == {p["size"] for p in s["subsets"]}
    for point in s["subsets"]:
        m = point["size"]
        registered = by_hash[versions[m].tags[keys.R_TRIAL_HASH]]
        assert point["trial_hash"] == versions[m].tags[keys.R_TRIAL_HASH] == report[m]["trial_hash"]
        assert (point["size_knobs"]["width"], point["lr"]) == (int(registered.data.params["size.width"]),
                                                               float(registered.data.params[keys.P_LR]))
        assert point["val_error"] == pytest.approx(curve[m]) == pytest.approx(float(report[m]["val_error"]))
        assert point["n_params"] == sizes_curve[m] == int(versions[m].tags[keys.R_N_PARAMS]) > 0
        assert float(versions[m].tags[keys.R_MIN_VAL_ERROR]) in point["seed_errors"]


def test_resume_after_sigkill(tmp_path, toy_study):
    """SIGKILL the driver mid-study, run the same command again: the same trials as an
    uninterrupted study, none run twice, none left RUNNING, one registry version per subset."""
    uri = sqlite_uri(tmp_path)
    cmd = [sys.executable, "-m", "scal", *cheap_unless_asked([*SMOKE, "--executor", "ray", "--tracking-uri", uri])]
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI")}
    first = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        killed_at = _wait_for_trials(uri, first, at_least=6)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        _kill_group(first.pid)   # what the killed driver's Ray left behind
    assert killed_at < 19, "the study finished before it could be killed"
    client = MlflowClient(uri, uri)   # registry too: other in-process studies moved mlflow's global registry URI
    (parent,) = client.search_runs([client.get_experiment_by_name("scal-toy-examples").experiment_id],
                                   f"tags.`{keys.ROLE}` = 'study'")
    assert parent.info.status == "RUNNING"   # what SIGKILL leaves

    proc = run_cli([*SMOKE, "--executor", "ray", "--tracking-uri", uri], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    s = json.loads(proc.stdout)
    assert s["parent_run_id"] == parent.info.run_id and s["n_reused"] >= 6
    all_runs = client.search_runs([parent.info.experiment_id], "", max_results=1000)
    assert not [r for r in all_runs if r.info.status == "RUNNING"]
    finished = [r for r in all_runs if r.data.tags.get(keys.ROLE) != "study" and r.info.status == "FINISHED"]
    # (role, trial hash) of every finished trial run: exactly those of an uninterrupted study, each once.
    trials = [(r.data.tags[keys.ROLE], r.data.tags[keys.TRIAL_HASH]) for r in finished]
    assert len(trials) == len(set(trials)), "a trial was run twice"
    _, reference = _trial_runs(toy_study["uri"], toy_study["summary"]["parent_run_id"])
    assert set(trials) == {(r.data.tags[keys.ROLE], r.data.tags[keys.TRIAL_HASH]) for r in reference}
    versions = client.search_model_versions("name = 'scal-toy-examples-best-fit'")
    sizes = [v.tags[keys.R_SUBSET_SIZE] for v in versions]
    assert len(sizes) == len(set(sizes)) == len(s["subsets"])
    curve = client.get_metric_history(parent.info.run_id, keys.M_BEST_VAL_ERROR)
    assert sorted(m.step for m in curve) == sorted(r["size"] for r in s["subsets"])
    assert s["beta_g"] == pytest.approx(toy_study["summary"]["beta_g"], rel=1e-6)


def test_resume_needs_an_unfinished_study(tmp_path):
    proc = run_cli([*SMOKE, "--resume", "--tracking-uri", sqlite_uri(tmp_path)], cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: no unfinished study 'scal-toy-examples'")


# --- helpers ------------------------------------------------------------------------------------
def _wait_for_trials(uri: str, proc: subprocess.Popen, at_least: int, timeout_s: float = 240) -> int:
    """Poll the store until ``at_least`` trial runs have finished; returns how many there were."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        assert proc.poll() is None, "the study ended before it could be killed"
        try:
            client = MlflowClient(uri)
            exp = client.get_experiment_by_name("scal-toy-examples")
            # finished trials only: a trial's run exists (RUNNING) from the moment it starts
            n = len(client.search_runs([exp.experiment_id], f"tags.`{keys.ROLE}` != 'study' and attributes.status = 'FINISHED'",
                                       max_results=1000)) if exp else 0
        except Exception:  # noqa: BLE001 - the store may still be being created
            n = 0
        if n >= at_least:
            return n
        time.sleep(0.2)
    raise TimeoutError("the study logged too few trials")


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_search_size_through_ray(tmp_path):
    """`scal search-size` probes through the Ray executor, logged like the study's probes."""
    uri = sqlite_uri(tmp_path)
    proc = run_cli(["search-size", "--domain", "toy", "--budget", "smoke", "--subset-size", "128", "--executor", "ray",
                    "--tracking-uri", uri, "--json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    (row,) = out["subsets"]
    client, runs = _trial_runs(uri, out["parent_run_id"])
    assert len(runs) == len(row["probes"]) >= 1
    assert all(r.data.tags[keys.ROLE] == keys.ROLE_PROBE and r.info.status == "FINISHED" for r in runs)
    assert all(len(r.data.tags[keys.NODE]) == 56 for r in runs)      # a Ray node id, not a host name

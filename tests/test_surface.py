"""The loss surface L(N, D) = E + A/N^alpha + B/D^beta: recovery of known surfaces, interval
coverage, the closed-form compute optimum, the comparison with s(m), ``scal surface`` from a CSV
and from a study, and the surface a smoke study logs to MLflow.

Everything is real: synthetic surfaces fitted by the real optimiser, sqlite MLflow stores in
temporary folders read back with MlflowClient, the toy smoke study trained by the CLI.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from scipy.optimize import minimize_scalar

from analysis.fit import FitError
from analysis.forms import fit_model_size
from analysis.surface import compute_optimal, fit_surface, frontier_n_params, loss_at, validate_points
from analysis.surface_compare import compare_model_size, intervals_overlap
from conftest import run_cli, sqlite_uri
from scal import keys

CHINCHILLA = {"E": 1.7, "A": 400.0, "B": 410.0, "alpha": 0.34, "beta": 0.28}
SCHEMA_KEYS = {"params", "intervals", "a", "a_interval", "b", "b_interval", "n_points", "optimal"}
PARAM_KEYS = {"E", "A", "B", "alpha", "beta"}


def synthetic(seed: int, noise: float = 0.01, n_outliers: int = 3, true: dict = CHINCHILLA):
    """6 x 10 grid of (N, D) over 3 and 4 decades, log-normal noise, a few runs 30% too high."""
    rng = np.random.default_rng(seed)
    nn, dd = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e10, 6), np.geomspace(1e8, 1e12, 10)))
    loss = loss_at(true, nn, dd) * np.exp(rng.normal(0.0, noise, nn.size))
    loss[rng.choice(nn.size, n_outliers, replace=False)] *= 1.3
    return nn, dd, loss


# ---------------------------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------------------------


def test_exact_surface_is_recovered_despite_outliers():
    """Without noise, three runs 30% off do not move the Huber fit (least squares would)."""
    n, d, loss = synthetic(0, noise=0.0)
    fit = fit_surface(n, d, loss, n_boot=0)
    for k, v in CHINCHILLA.items():
        # The amplitudes trade off against their exponents, so they move most (measured 0.4%).
        assert fit.params[k] == pytest.approx(v, rel=1e-2 if k in ("A", "B") else 2e-3), k


def test_noisy_surface_recovers_parameters_within_intervals():
    n, d, loss = synthetic(1)
    fit = fit_surface(n, d, loss, computes=[1e21], n_boot=100)
    assert fit.params["alpha"] == pytest.approx(0.34, rel=0.06)
    assert fit.params["beta"] == pytest.approx(0.28, rel=0.06)
    assert fit.params["E"] == pytest.approx(1.7, rel=0.03)
    for k in ("E", "alpha", "beta"):
        lo, hi = fit.intervals[k]
        assert lo <= CHINCHILLA[k] <= hi, (k, lo, hi)
    true_a = CHINCHILLA["beta"] / (CHINCHILLA["alpha"] + CHINCHILLA["beta"])
    assert fit.a_interval[0] <= true_a <= fit.a_interval[1]
    assert fit.a + fit.b == pytest.approx(1.0)
    assert fit.n_points == 60 and fit.n_boot == 100


def test_intervals_cover_true_exponents_in_most_seeds():
    covered = {"alpha": 0, "beta": 0}
    for seed in range(20):
        fit = fit_surface(*synthetic(100 + seed), n_boot=100, seed=seed)
        for k in covered:
            lo, hi = fit.intervals[k]
            covered[k] += lo <= CHINCHILLA[k] <= hi
    assert covered["alpha"] >= 16 and covered["beta"] >= 16, covered


def test_fit_of_250_points_with_intervals_is_fast():
    rng = np.random.default_rng(5)
    n = np.exp(rng.uniform(math.log(1e7), math.log(1e10), 250))
    d = np.exp(rng.uniform(math.log(1e8), math.log(1e12), 250))
    loss = loss_at(CHINCHILLA, n, d) * np.exp(rng.normal(0.0, 0.01, 250))
    t0 = time.perf_counter()
    fit = fit_surface(n, d, loss, computes=[1e21], n_boot=200)
    elapsed_s = time.perf_counter() - t0
    assert elapsed_s < 60.0
    assert fit.n_boot == 200
    assert fit.params["alpha"] == pytest.approx(0.34, rel=0.1)


@pytest.mark.parametrize("n, d, loss, message", [
    ([1e6, 2e6, 4e6, 8e6], [1e8, 2e8, 4e8, 8e8], [3, 2.9, 2.8, 2.7], "at least 5 points"),
    ([1e6] * 6, [1e8, 2e8, 4e8, 8e8, 1.6e9, 3.2e9], [3, 2.9, 2.8, 2.7, 2.6, 2.5], "distinct values of N"),
    ([1e6, 2e6, 4e6, 8e6, 1.6e7], [1e8] * 5, [3, 2.9, 2.8, 2.7, 2.6], "distinct values of D"),
    ([1e6, 2e6, 4e6, 8e6, 1.6e7], [1e8, 2e8, 4e8, 8e8, 1.6e9], [3, 2.9, float("nan"), 2.7, 2.6], "non-finite"),
    ([1e6, 2e6, 4e6, 8e6, 1.6e7], [1e8, 2e8, 4e8, 8e8, 1.6e9], [3, 2.9, 0.0, 2.7, 2.6], "must be positive"),
    ([1e6, -2e6, 4e6, 8e6, 1.6e7], [1e8, 2e8, 4e8, 8e8, 1.6e9], [3, 2.9, 2.8, 2.7, 2.6], "must be positive"),
    ([1e6, 2e6, 4e6], [1e8, 2e8], [3, 2.9, 2.8], "different lengths"),
])
def test_bad_points_raise_one_line_fit_error(n, d, loss, message):
    with pytest.raises(FitError, match=message) as exc:
        validate_points(n, d, loss)
    assert "\n" not in str(exc.value)


def test_bad_budget_or_flops_factor_is_value_error():
    n, d, loss = synthetic(0)
    with pytest.raises(ValueError, match="compute budget"):
        fit_surface(n, d, loss, computes=[-1.0], n_boot=0)
    with pytest.raises(ValueError, match="flops per parameter"):
        fit_surface(n, d, loss, flops_per_param_unit=0.0, n_boot=0)


# ---------------------------------------------------------------------------------------------
# The compute optimum and the frontier
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [6.0, 18.0])
@pytest.mark.parametrize("compute", [1e18, 1e21, 1e24])
def test_closed_form_optimum_matches_brute_force(compute, k):
    """Minimise L(N, C / (k N)) over log N numerically; the closed form must agree."""
    n_opt, d_opt = (float(v) for v in compute_optimal(CHINCHILLA, compute, k))

    def loss_of_log_n(log_n):
        n = math.exp(log_n)
        return float(loss_at(CHINCHILLA, n, compute / (k * n)))

    res = minimize_scalar(loss_of_log_n, bounds=(0.0, math.log(compute / k)), method="bounded",
                          options={"xatol": 1e-10})
    assert n_opt == pytest.approx(math.exp(res.x), rel=1e-4)
    assert k * n_opt * d_opt == pytest.approx(compute, rel=1e-12)
    assert loss_of_log_n(math.log(n_opt)) <= res.fun + 1e-12
    # The frontier seen as N against D passes through the same optimum.
    assert float(frontier_n_params(CHINCHILLA, d_opt)) == pytest.approx(n_opt, rel=1e-9)


def test_optimum_scales_with_allocation_exponents():
    n1, d1 = compute_optimal(CHINCHILLA, 1e20)
    n2, d2 = compute_optimal(CHINCHILLA, 1e22)
    a = CHINCHILLA["beta"] / (CHINCHILLA["alpha"] + CHINCHILLA["beta"])
    assert math.log(n2 / n1) / math.log(100) == pytest.approx(a)
    assert math.log(d2 / d1) / math.log(100) == pytest.approx(1 - a)


def test_optimum_intervals_bracket_the_estimate():
    fit = fit_surface(*synthetic(2), computes=[1e20, 1e23], n_boot=50)
    for o in fit.optimal:
        assert o.n_params_interval[0] <= o.n_params <= o.n_params_interval[1]
        assert o.data_interval[0] <= o.data <= o.data_interval[1]
        assert 6.0 * o.n_params * o.data == pytest.approx(o.compute)
    assert fit.optimal[1].loss < fit.optimal[0].loss


def test_to_dict_schema_and_nulls():
    fit = fit_surface(*synthetic(3), computes=[1e21], n_boot=0)
    doc = json.loads(json.dumps(fit.to_dict()))
    assert SCHEMA_KEYS <= doc.keys()
    assert doc["params"].keys() == PARAM_KEYS and doc["intervals"].keys() == PARAM_KEYS
    assert doc["intervals"]["alpha"] == [None, None]          # no bootstrap: no interval, as null
    assert set(doc["optimal"][0]) >= {"compute", "n_params", "data", "loss"}


# ---------------------------------------------------------------------------------------------
# The frontier against the model-size curve s(m) = sigma m^beta_p
# ---------------------------------------------------------------------------------------------


def _model_size(sigma: float, beta_p: float, sizes) -> object:
    """A real model-size fit of an exact power law (a tiny wobble keeps the bootstrap honest)."""
    m = np.asarray(sizes, dtype=float)
    wobble = np.exp(0.01 * np.sin(np.arange(m.size)))
    return fit_model_size(m, sigma * m ** beta_p * wobble, n_boot=50)


def test_frontier_and_model_size_agree_when_they_are_the_same_law():
    fit = fit_surface(*synthetic(0, noise=0.0), n_boot=50)
    p = fit.params
    sizes = np.geomspace(1e8, 1e12, 5)
    sigma = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / p["alpha"])
    cmp = compare_model_size(fit, _model_size(sigma, p["beta"] / p["alpha"], sizes), sizes)
    assert cmp.frontier_exponent == pytest.approx(0.28 / 0.34, rel=5e-3)
    assert cmp.overlap is True
    assert cmp.differ_at == () and cmp.differ_ranges == ()
    assert "agree within 2x" in cmp.sentence()


def test_frontier_and_model_size_differ_where_the_ratio_leaves_the_band():
    fit = fit_surface(*synthetic(0, noise=0.0), n_boot=50)
    p = fit.params
    sizes = np.geomspace(1e8, 1e12, 9)
    # s(m) = N_frontier at m = 1e8, with exponent 1 instead of beta/alpha ~ 0.82: the ratio
    # N_frontier / s = (m / 1e8)**(0.82 - 1) crosses 1/2 at m = 1e8 * 2**(1 / 0.18).
    slope = p["beta"] / p["alpha"]
    sigma = float(frontier_n_params(p, 1e8)) / 1e8
    cmp = compare_model_size(fit, fit_model_size(sizes, sigma * sizes, n_boot=0), sizes)
    cross = 1e8 * 2 ** (1 / (1 - slope))
    assert len(cmp.differ_ranges) == 1
    lo, hi = cmp.differ_ranges[0]
    assert lo == pytest.approx(cross, rel=1e-6) and hi == pytest.approx(1e12)
    assert cmp.differ_at == tuple(m for m in sizes.tolist() if m > cross)
    assert cmp.overlap is None                                # n_boot=0: beta_p has no interval
    doc = cmp.to_dict()
    assert doc["at_sizes"][0]["ratio"] == pytest.approx(1.0, rel=1e-6)
    assert "differ by more than 2x" in doc["sentence"]


def test_intervals_overlap():
    assert intervals_overlap((0.1, 0.5), (0.4, 0.9)) is True
    assert intervals_overlap((0.1, 0.3), (0.4, 0.9)) is False
    assert intervals_overlap((math.nan, 0.3), (0.4, 0.9)) is None


# ---------------------------------------------------------------------------------------------
# CLI from a CSV
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def surface_csv(tmp_path):
    n, d, loss = synthetic(1)
    path = tmp_path / "runs.csv"
    pd.DataFrame({"params": n, "tokens": d, "loss": loss}).to_csv(path, index=False)
    return path


def test_cli_csv_json_schema(surface_csv, tmp_path):
    proc = run_cli(["surface", str(surface_csv), "--n", "params", "--d", "tokens", "--y", "loss", "--compute", "1e21",
                    "--compute", "1e23", "--n-boot", "50", "--out-dir", str(tmp_path / "plots"), "--json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert SCHEMA_KEYS <= doc.keys()
    assert doc["params"].keys() == PARAM_KEYS and doc["intervals"].keys() == PARAM_KEYS
    assert all(len(v) == 2 and v[0] <= v[1] for v in doc["intervals"].values())
    assert [o["compute"] for o in doc["optimal"]] == [1e21, 1e23]
    assert all({"compute", "n_params", "data", "loss"} <= o.keys() for o in doc["optimal"])
    assert doc["n_points"] == 60 and doc["flops_per_param_unit"] == 6.0
    assert doc["params"]["alpha"] == pytest.approx(0.34, rel=0.1)
    assert (tmp_path / "plots" / "loss_surface.png").stat().st_size > 10_000


def test_cli_csv_human_output_and_flops_factor(surface_csv, tmp_path):
    proc = run_cli(["surface", str(surface_csv), "--n", "params", "--d", "tokens", "--y", "loss",
                    "--flops-per-param-unit", "2", "--n-boot", "20"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "alpha" in proc.stdout and "N_opt" in proc.stdout and "k = 2 FLOPs" in proc.stdout
    # Default budgets: the points' smallest and largest k N D, and 10x the largest.
    n, d, _ = synthetic(1)
    assert f"C = {2 * (n * d).max() * 10:.4g} FLOPs" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--n", "params", "--d", "tokens", "--y", "nope"], "no column(s) 'nope'"),
    (["--n", "params", "--d", "tokens", "--y", "text"], "non-numeric"),
    (["--n", "params", "--d", "tokens", "--y", "loss", "--compute", "0"], "--compute must be a positive"),
    (["--n", "params", "--d", "tokens", "--y", "loss", "--compute", "-5"], "--compute must be a positive"),
    (["--n", "params", "--d", "tokens", "--y", "loss", "--flops-per-param-unit", "0"], "--flops-per-param-unit must be"),
    (["--n", "params", "--d", "tokens"], "needs --n COL, --d COL and --y COL"),
])
def test_cli_bad_csv_input_exits_2_with_one_line(surface_csv, tmp_path, args, message):
    df = pd.read_csv(surface_csv)
    df["text"] = ["x"] + ["1.0"] * (len(df) - 1)
    df.to_csv(surface_csv, index=False)
    proc = run_cli(["surface", str(surface_csv), *args], cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr


def test_cli_too_few_points_and_study_only_options(tmp_path):
    path = tmp_path / "few.csv"
    pd.DataFrame({"n": [1e6, 2e6, 4e6], "d": [1e8, 2e8, 4e8], "y": [3.0, 2.9, 2.8]}).to_csv(path, index=False)
    proc = run_cli(["surface", str(path), "--n", "n", "--d", "d", "--y", "y"], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: a loss surface needs at least 5 points (N, D, L), got 3"
    proc = run_cli(["surface", "--run-id", "abc", "--flops-per-param-unit", "6"], cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: --flops-per-param-unit is for a CSV")


# ---------------------------------------------------------------------------------------------
# Studies: a hand-made store (few trials, a reference run) and the toy smoke study
# ---------------------------------------------------------------------------------------------


def _tiny_study(directory, trials):
    """A real sqlite store with a study run and one child run per (n_params, subset, error, status, reused)."""
    uri = sqlite_uri(directory)
    client = MlflowClient(uri)
    exp = client.create_experiment("tiny")
    parent = client.create_run(exp, tags={keys.ROLE: keys.ROLE_STUDY}).info.run_id
    client.log_param(parent, "study.domain", "toy")
    client.log_param(parent, "study.unit", "examples")
    for n_params, size, err, status, reused in trials:
        _trial(client, exp, parent, n_params, size, err, status, reused)
    return uri, parent


def _trial(client, exp, parent, n_params, size, err, status="ok", reused=None):
    tags = {keys.PARENT: parent, keys.ROLE: keys.ROLE_GRID, keys.STATUS: status,
            keys.TRIAL_HASH: f"{n_params}-{size}-{status}"}
    if reused:
        tags[keys.REUSED_FROM] = reused
    run = client.create_run(exp, tags=tags).info.run_id
    # Each trial its own configuration (lr), one seed: what the best-fit rule reads besides these.
    for k, v in {keys.P_N_PARAMS: n_params, keys.P_SUBSET_SIZE: size, keys.P_LR: n_params * 1e-4, keys.P_SEED: 0}.items():
        client.log_param(run, k, v)
    if err is not None:
        client.log_metric(run, keys.M_MIN_VAL_ERROR, err)
    client.set_terminated(run)


def test_study_points_skip_reference_and_failed_runs(tmp_path):
    """Four trials count; a reference run of one, a failed one and a diverged one do not."""
    from scal.tracking import StudyTracker, open_client
    from scal.surface import analyze_surface, study_surface

    uri, parent = _tiny_study(tmp_path, [
        (41, 64, 0.20, "ok", None), (81, 64, 0.19, "ok", None), (41, 128, 0.18, "ok", None),
        (81, 128, 0.17, "stopped", None), (81, 128, 0.17, "ok", "0123abcd"), (161, 256, None, "failed", None),
        (161, 256, 0.5, "diverged", None)])
    tracker = StudyTracker.for_run(parent, open_client(uri))
    assert analyze_surface(tracker, parent, None, tmp_path / "out") == {
        "error": "a loss surface needs at least 5 points (N, D, L), got 4"}
    # Two more counting trials make six points: now it fits, with the domain's k (toy: 6). Their
    # subsets (64, 128) have best fits, 256 has none: too few for s(m), so no comparison, and why.
    client = MlflowClient(uri)
    exp = client.get_run(parent).info.experiment_id
    _trial(client, exp, parent, 161, 128, 0.15)
    _trial(client, exp, parent, 161, 64, 0.185)
    surface = study_surface(tracker.client, parent, n_boot=20)
    assert surface.fit.n_points == 6 and surface.fit.flops_per_param_unit == 6.0
    assert sorted(surface.points["loss"]) == [0.15, 0.17, 0.18, 0.185, 0.19, 0.20]
    assert surface.comparison is None and "3 subsets or more" in surface.comparison_note


@pytest.mark.integration
def test_smoke_study_logs_a_surface(toy_study, tmp_path):
    """The toy smoke study has 4 subsets (64-512 examples) and MLPs of 41-321 parameters: enough
    distinct N and D, so the surface fits (it is not the error branch) and is logged."""
    from scal.reader import read_trials

    uri = toy_study["uri"]
    summary = toy_study["summary"]
    parent = summary["parent_run_id"]
    surf = summary["surface"]
    assert "error" not in surf, surf
    assert math.isfinite(surf["params"]["alpha"]) and math.isfinite(surf["params"]["beta"])
    assert SCHEMA_KEYS <= surf.keys() and surf["flops_per_param_unit"] == 6.0
    assert surf["model_size_comparison"]["sentence"].startswith("compute-optimal frontier N ~ D^")
    # Every counting trial once: child runs with a counting status, less the reference runs.
    trials = read_trials(MlflowClient(uri), parent)   # the store the client names, and no global one
    col = f"tags.{keys.REUSED_FROM}"
    reference = trials[col].notna() & (trials[col] != "") if col in trials else pd.Series(False, index=trials.index)
    counting = (trials[f"tags.{keys.STATUS}"].isin(["ok", "stopped"])
                & trials[f"metrics.{keys.M_MIN_VAL_ERROR}"].notna())
    assert int((counting & reference).sum()) >= 1          # the smoke study reuses its probes...
    assert surf["n_points"] == int((counting & ~reference).sum())   # ...and each counts once
    # In MLflow: the plot and the record under analysis/, and the record in fits.json.
    client = MlflowClient(uri)
    logged = {a.path for a in client.list_artifacts(parent, "analysis")}
    assert {"analysis/loss_surface.png", "analysis/surface.json"} <= logged
    record = json.loads(Path(client.download_artifacts(parent, "analysis/surface.json", str(tmp_path))).read_text())
    assert record["params"] == surf["params"] and record["plot"] == "analysis/loss_surface.png"
    fits_doc = json.loads(Path(client.download_artifacts(parent, "fits.json", str(tmp_path))).read_text())
    assert fits_doc["surface"]["n_points"] == surf["n_points"]
    # `scal surface --run-id` is the same code path: the same fit (deterministic, same seed and n_boot).
    proc = run_cli(["surface", "--run-id", parent, "--tracking-uri", uri, "--json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["params"] == pytest.approx(surf["params"], rel=1e-9)
    assert doc["n_points"] == surf["n_points"] and doc["domain"] == "toy"

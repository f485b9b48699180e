"""`scal fit`, `scal predict` and `scal report` end to end: on CSVs and on a smoke study's store."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from conftest import run_cli

TRUE_BETA = {"a": -0.35, "b": -0.6}


def write_curves(path, rows=None):
    """Two noisy M2 curves, 10 doublings each, in a long-format CSV."""
    if rows is None:
        rng = np.random.default_rng(0)
        m = 1e3 * 2.0 ** np.arange(10)
        rows = []
        for g, beta in TRUE_BETA.items():
            err = (5.0 * m**beta + 0.1) * np.exp(rng.normal(0, 0.01, m.size))
            rows += [(g, int(x), float(e)) for x, e in zip(m, err)]
    path.write_text("curve,examples,error\n" + "".join(f"{g},{x},{e}\n" for g, x, e in rows))
    return path


def test_fit_csv_json_schema(tmp_path):
    csv = write_curves(tmp_path / "curves.csv")
    proc = run_cli(["fit", str(csv), "--x", "examples", "--y", "error", "--group", "curve", "--holdout", "2",
                    "--size", "1e6", "--size", "1e7", "--target-error", "0.11", "--n-boot", "50", "--json"],
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    curves = {c["group"]: c for c in out["curves"]}
    assert set(curves) == set(TRUE_BETA)
    for g, c in curves.items():
        for key in ("form", "params", "beta_g", "beta_g_interval", "holdout_rmse_log", "predictions", "data_for_target"):
            assert key in c, key
        assert c["form"] in ("m1", "m2", "m3", "m4", "bnsl")
        assert set(c["holdout_rmse_log_by_form"]) >= {"m1", "m2", "m3", "m4"}
        assert c["holdout_rmse_log"] == min(v for v in c["holdout_rmse_log_by_form"].values() if v is not None)
        # Forms differ in what their exponent means; the curve itself must come back.
        assert c["predictions"][0]["y"] == pytest.approx(5.0 * 1e6 ** TRUE_BETA[g] + 0.1, rel=0.05)
        lo, hi = c["beta_g_interval"]
        assert lo <= c["beta_g"] <= hi
        assert [p["x"] for p in c["predictions"]] == [1e6, 1e7]
        for p in c["predictions"]:
            assert p["low"] <= p["y"] <= p["high"]
        # The target lies above the curves' floor (0.1): reachable, beyond the data for the slower curve.
        d = c["data_for_target"]
        assert d["reachable"] and d["low"] <= d["x"] <= d["high"]
        if g == "a":
            assert d["x"] > 512e3


def test_fit_csv_named_form_and_unreachable_target(tmp_path):
    csv = write_curves(tmp_path / "curves.csv")
    proc = run_cli(["fit", str(csv), "--x", "examples", "--y", "error", "--group", "curve", "--form", "m2",
                    "--target-error", "0.05", "--n-boot", "20", "--json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for c in json.loads(proc.stdout)["curves"]:
        assert c["form"] == "m2" and "holdout_rmse_log" not in c
        assert abs(c["beta_g"] - TRUE_BETA[c["group"]]) < 0.1
        d = c["data_for_target"]
        assert not d["reachable"] and d["x"] is None and "below the fitted floor" in d["note"]


@pytest.mark.parametrize("rows, args, needle", [
    ([("a", 1000, 0.5), ("a", 2000, 0.4)], [], "at least 3"),
    ([("a", 1000, 0.5), ("a", 2000, -0.1), ("a", 4000, 0.3)], [], "positive"),
    ([("a", 1000, 0.5), ("a", 2000, "nan"), ("a", 4000, 0.3)], [], "non-finite"),
    ([("a", 1000, 0.5), ("a", 1000, 0.4), ("a", 4000, 0.3)], [], "duplicate"),
    ([("a", 1000, 0.5), ("a", 2000, 0.4), ("a", 4000, 0.3)], ["--y", "loss"], "no column"),
    ([("a", 1000, 0.5), ("a", 2000, "oops"), ("a", 4000, 0.3)], [], "non-numeric"),
])
def test_fit_csv_bad_input_is_one_line_and_exit_2(tmp_path, rows, args, needle):
    csv = write_curves(tmp_path / "bad.csv", rows)
    argv = ["fit", str(csv), "--x", "examples", "--y", "error", "--json", *args]
    proc = run_cli(argv, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    err = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and needle in err[0], proc.stderr[-1000:]


def test_fit_missing_csv_file(tmp_path):
    proc = run_cli(["fit", str(tmp_path / "nope.csv"), "--x", "a", "--y", "b"], cwd=tmp_path)
    assert proc.returncode == 2 and "no such CSV file" in proc.stderr


def test_predict_from_csv(tmp_path):
    csv = write_curves(tmp_path / "one.csv", [("a", int(1e3 * 2**k), float(3.0 * (1e3 * 2**k) ** -0.4)) for k in range(8)])
    proc = run_cli(["predict", str(csv), "--x", "examples", "--y", "error", "--size", "1e6",
                    "--target-error", "0.01", "--n-boot", "30", "--json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["predictions"][0]["value"] == pytest.approx(3.0 * 1e6**-0.4, rel=0.02)
    assert out["target"]["data"]["m"] == pytest.approx((0.01 / 3.0) ** (1 / -0.4), rel=0.05)


def test_fit_and_predict_on_a_study_store(toy_study, tmp_path):
    s = toy_study["summary"]
    common = ["--run-id", s["parent_run_id"], "--tracking-uri", toy_study["uri"], "--n-boot", "50", "--json"]
    proc = run_cli(["fit", *common, "--size", "1e5"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (curve,) = json.loads(proc.stdout)["curves"]
    assert curve["n_points"] >= 3 and len(curve["predictions"]) == 1
    assert len(curve["regions"]["labels"]) == len(s["subsets"])

    errors = [r["val_error"] for r in s["subsets"] if r["in_fit"]]
    target = float(np.sqrt(min(errors) * max(errors)))   # inside the measured range: reachable
    proc = run_cli(["predict", *common, "--size", "1e5", "--target-error", str(target)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    plan = json.loads(proc.stdout)
    assert plan["parent_run_id"] == s["parent_run_id"] and plan["predictions"][0]["m"] == 1e5
    t = plan["target"]
    assert t["data"]["reachable"], t
    sizes = [r["size"] for r in s["subsets"]]
    assert min(sizes) / 2 <= t["data"]["m"] <= max(sizes) * 2
    for key in ("n_params", "wall_time_s", "units_processed", "train_flops"):
        assert t[key]["value"] > 0, key
    assert t["train_flops"]["value"] == pytest.approx(6 * t["n_params"]["value"] * t["units_processed"]["value"])


def test_report_writes_a_folder_and_logs_to_the_study(toy_study, tmp_path):
    s = toy_study["summary"]
    out = tmp_path / "report"
    proc = run_cli(["report", "--run-id", s["parent_run_id"], "--tracking-uri", toy_study["uri"], "--out-dir", str(out),
                    "--n-boot", "50"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    md = (out / "report.md").read_text()
    for name in ("learning_curve.png", "model_size.png", "residuals.png"):
        assert f"]({name})" in md and (out / name).stat().st_size > 10_000
    assert "Held-out check" in md and "## Regions" in md
    client = MlflowClient(toy_study["uri"], toy_study["uri"])
    run = client.get_run(s["parent_run_id"])
    arts = {a.path for a in client.list_artifacts(s["parent_run_id"], "analysis")}
    assert {"analysis/report.md", "analysis/residuals.png", "analysis/learning_curve.png"} <= arts
    for k in ("beta_g", "beta_g_low", "beta_g_high", "beta_p", "holdout_rmse_log", "fit_rmse_log"):
        assert k in run.data.metrics, k
    assert run.data.params["fit.form_requested"] == "auto"
    assert run.data.tags["scal.fit.form"] in ("m1", "m2", "m3", "m4", "bnsl")

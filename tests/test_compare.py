"""`scal compare`: the comparison library on curves with a known crossover, the CLI on a CSV, and
the CLI on two real smoke studies in one sqlite store, read back with MlflowClient."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from analysis.compare import (
    EXPONENT_FORM,
    HORIZON_FACTOR,
    compare_curves,
    compare_fits,
    comparison_text,
    crossovers,
    fit_and_compare,
)
from analysis.select import fit_curve
from conftest import run_cli, sqlite_uri
from scal import keys

# Two architectures whose exponents differ a lot, and a third with A's exponent and a lower offset.
TRUTH = {"A": (2.0, -0.3, 0.1), "B": (6.0, -0.45, 0.1), "C": (1.0, -0.3, 0.1)}
# 2 m^-0.3 = 6 m^-0.45 (equal floors cancel): m^0.15 = 3.
TRUE_CROSSOVER_AB = 3.0 ** (1.0 / 0.15)
NOISE_LOG = 0.01
SIZES = 50 * 2.0 ** np.arange(10)   # 50 .. 25,600: the crossover (~1,516) lies inside


def truth(name: str, m):
    alpha, beta, gamma = TRUTH[name]
    return alpha * np.asarray(m, dtype=float) ** beta + gamma


def noisy_curves(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {n: (SIZES, truth(n, SIZES) * np.exp(rng.normal(0, NOISE_LOG, SIZES.size))) for n in TRUTH}


@pytest.fixture(scope="module")
def synthetic():
    result, fits = fit_and_compare(noisy_curves(), n_boot=100)
    return {"result": result, "fits": fits, "pairs": {(p["a"], p["b"]): p for p in result["pairs"]}}


# --- the library ---------------------------------------------------------------------------------


def test_crossover_search_on_exact_curves():
    f_a, f_b, f_c = (partial(truth, n) for n in "ABC")
    found = crossovers(f_a, f_b, 50.0, 1e7)
    assert len(found) == 1 and found[0] == pytest.approx(TRUE_CROSSOVER_AB, rel=1e-6)
    # Same exponent and floor, different offsets: C stays below A, they never cross; nor do equal curves.
    assert crossovers(f_a, f_c, 50.0, 1e7) == []
    assert crossovers(f_a, f_a, 50.0, 1e7) == []
    # A crossover beyond the searched range is not reported.
    assert crossovers(f_a, f_b, 50.0, TRUE_CROSSOVER_AB / 2) == []


def test_crossover_found_near_truth_inside_its_interval(synthetic):
    p = synthetic["pairs"][("A", "B")]
    x = p["crossover_x"]
    assert x == pytest.approx(TRUE_CROSSOVER_AB, rel=0.2)
    lo, hi = p["crossover_interval"]
    assert lo <= x <= hi
    assert 0.9 * p["n_boot"] <= p["n_boot_crossing"] <= p["n_boot"] == 100
    # A falls slower: it is lower before the crossover and B after it.
    assert (p["lower_before"], p["lower_after"]) == ("A", "B")
    assert p["search_range"] == [SIZES[0], HORIZON_FACTOR * SIZES[-1]]


def test_best_curve_before_and_after_the_crossover(synthetic):
    fits = {n: synthetic["fits"][n] for n in ("A", "B")}
    before, after = TRUE_CROSSOVER_AB / 4, TRUE_CROSSOVER_AB * 4
    res = compare_fits(fits, at=[before, after])
    (b, a) = res["at"]
    assert (b["x"], a["x"]) == (before, after)
    assert b["best"] == "A" and a["best"] == "B"
    assert b["p_best"] > 0.9 and a["p_best"] > 0.9
    for s in res["at"]:
        for name, e in s["errors"].items():
            assert e["low"] <= e["y"] <= e["high"]
            assert e["y"] == pytest.approx(float(truth(name, s["x"])), rel=0.05)


def test_default_sizes_best_and_p_best(synthetic):
    res = synthetic["result"]
    # The largest size common to all curves, and 10 times it.
    assert [s["x"] for s in res["at"]] == [SIZES[-1], 10 * SIZES[-1]]
    for s in res["at"]:
        ys = {n: e["y"] for n, e in s["errors"].items()}
        assert s["best"] == min(ys, key=ys.get)
        assert 0.0 <= s["p_best"] <= 1.0
    # Past the crossover B (steeper) is lowest of all three at 10x the data.
    assert res["at"][1]["best"] == "B" and res["at"][1]["p_best"] > 0.9


def test_exponents_overlap_only_for_equal_exponents(synthetic):
    pairs = synthetic["pairs"]
    assert pairs[("A", "B")]["exponents_overlap"] is False
    # Same exponent, different offsets: the paper's "architecture moves the offset" case.
    assert pairs[("A", "C")]["exponents_overlap"] is True
    assert pairs[("B", "C")]["exponents_overlap"] is False
    for p in pairs.values():
        assert p["exponent_form"] is not None
    # When the forms differ the exponents are compared in one refitted form, named in the output.
    curves = synthetic["result"]["curves"]
    if len({c["form"] for c in curves}) > 1:
        assert {p["exponent_form"] for p in pairs.values()} == {EXPONENT_FORM}
        assert all(c["exponent_fit"]["form"] == EXPONENT_FORM for c in curves if c["form"] != EXPONENT_FORM)


def test_result_has_the_documented_shape_and_is_strict_json(synthetic):
    res = synthetic["result"]
    json.dumps(res, allow_nan=False)   # non-finite numbers must already be None
    assert [c["name"] for c in res["curves"]] == list(TRUTH)
    for c in res["curves"]:
        assert {"name", "form", "beta_g", "beta_g_interval", "floor"} <= set(c)
        lo, hi = c["beta_g_interval"]
        assert lo <= c["beta_g"] <= hi < 0
    for s in res["at"]:
        assert {"x", "errors", "best", "p_best"} <= set(s)
        assert set(s["errors"]) == set(TRUTH)
        assert all(set(e) == {"y", "low", "high"} for e in s["errors"].values())
    assert [(p["a"], p["b"]) for p in res["pairs"]] == [("A", "B"), ("A", "C"), ("B", "C")]
    for p in res["pairs"]:
        assert {"a", "b", "crossover_x", "crossover_interval", "exponents_overlap"} <= set(p)
    text = comparison_text(res)
    assert "A vs B: cross at m = " in text and "best: B" in text


def test_without_bootstrap_the_uncertain_parts_are_null():
    curves = noisy_curves(1)
    fits = {n: fit_curve(*curves[n], form="m2", n_boot=0).fit for n in ("A", "B")}
    res = compare_fits(fits)
    assert res["n_boot"] == 0
    assert all(s["p_best"] is None for s in res["at"])
    (p,) = res["pairs"]
    assert p["crossover_x"] == pytest.approx(TRUE_CROSSOVER_AB, rel=0.2)
    assert p["crossover_interval"] == [None, None] and p["n_boot_crossing"] == 0
    assert p["exponents_overlap"] is None


@pytest.mark.parametrize("call, needle", [
    (lambda c: compare_curves({"A": c["A"]}, n_boot=5), "at least 2 curves"),
    (lambda c: compare_curves(c, at=[0.0], form="m1", n_boot=5), "positive"),
    (lambda c: compare_curves({"A": c["A"], "B": (c["B"][0][:2], c["B"][1][:2])}, form="m1", n_boot=5), "curve 'B'"),
])
def test_bad_library_input_raises_value_error(call, needle):
    with pytest.raises(ValueError, match=needle):
        call(noisy_curves())


# --- the CLI on a CSV ----------------------------------------------------------------------------


def write_csv(path, names=("A", "B")) -> str:
    curves = noisy_curves()
    rows = [(n, int(x), float(y)) for n in names for x, y in zip(*curves[n])]
    path.write_text("arch,examples,error\n" + "".join(f"{n},{x},{y}\n" for n, x, y in rows))
    return str(path)


def test_cli_csv_json(tmp_path):
    csv = write_csv(tmp_path / "arch.csv")
    proc = run_cli(["compare", csv, "--x", "examples", "--y", "error", "--group", "arch", "--n-boot", "40",
                    "--size", "500", "--size", "1e5", "--level", "0.8", "--out-dir", str(tmp_path / "out"), "--json"],
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert [c["name"] for c in out["curves"]] == ["A", "B"]
    assert [s["x"] for s in out["at"]] == [500.0, 1e5] and out["level"] == 0.8
    assert [s["best"] for s in out["at"]] == ["A", "B"]
    (p,) = out["pairs"]
    assert (p["a"], p["b"]) == ("A", "B")
    assert p["crossover_x"] == pytest.approx(TRUE_CROSSOVER_AB, rel=0.2)
    assert p["exponents_overlap"] is False
    assert (tmp_path / "out" / "comparison.png").stat().st_size > 10_000
    assert out["plot"].endswith("comparison.png")


@pytest.mark.parametrize("args, needle", [
    (["--x", "examples", "--y", "error"], "needs --group"),
    (["--x", "examples", "--y", "error", "--group", "arch", "--size", "0"], "--size must be a positive"),
    (["--x", "examples", "--y", "error", "--group", "solo"], "at least 2"),
    (["--x", "examples", "--y", "error", "--group", "arch", "--level", "1.5"], "--level must lie"),
])
def test_cli_csv_bad_input_is_one_line_and_exit_2(tmp_path, args, needle):
    csv = write_csv(tmp_path / "arch.csv")
    if "solo" in args:   # a CSV whose group column holds one curve
        csv = write_csv(tmp_path / "solo.csv", names=("A",))
        args = [a if a != "solo" else "arch" for a in args]
    proc = run_cli(["compare", csv, *args, "--json"], cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr


# --- the CLI on two smoke studies ----------------------------------------------------------------


@pytest.fixture(scope="module")
def two_studies(tmp_path_factory):
    """Two toy smoke studies in one store: A as the budget has it, B whose grid also tries one more
    hidden layer (--layer-offsets 1), so their best-fit models differ in depth."""
    d = tmp_path_factory.mktemp("compare_studies")
    uri = sqlite_uri(d)
    run_ids = {}
    for name, extra in (("A", []), ("B", ["--layer-offsets", "1"])):
        proc = run_cli(["study", "--domain", "toy", "--budget", "smoke", "--experiment", name, "--tracking-uri", uri,
                        "--json", "--executor", "local", "--no-register", *extra], cwd=d)
        assert proc.returncode == 0, proc.stderr[-3000:]
        run_ids[name] = json.loads(proc.stdout)["parent_run_id"]
    return {"dir": d, "uri": uri, "run_ids": run_ids}


def test_cli_compare_studies_logs_a_comparison_run(two_studies):
    d, uri, ids = two_studies["dir"], two_studies["uri"], two_studies["run_ids"]
    # One study by experiment name, the other by its parent run id.
    proc = run_cli(["compare", "A", ids["B"], "--tracking-uri", uri, "--n-boot", "30", "--json"], cwd=d)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert [c["name"] for c in out["curves"]] == ["A", "B"]
    assert [s["run_id"] for s in out["studies"]] == [ids["A"], ids["B"]]
    assert len(out["at"]) == 2 and all(s["best"] in ("A", "B") for s in out["at"])
    assert [(p["a"], p["b"]) for p in out["pairs"]] == [("A", "B")]

    client = MlflowClient(uri)
    run = client.get_run(out["comparison_run_id"])
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == keys.COMPARISON_EXPERIMENT
    tags = run.data.tags
    assert tags[keys.ROLE] == keys.ROLE_COMPARISON
    assert tags[keys.COMPARES] == f"{ids['A']},{ids['B']}"
    assert (tags[f"{keys.COMPARES_PREFIX}1"], tags[f"{keys.COMPARES_PREFIX}1.name"]) == (ids["A"], "A")
    assert (tags[f"{keys.COMPARES_PREFIX}2"], tags[f"{keys.COMPARES_PREFIX}2.name"]) == (ids["B"], "B")
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"comparison.json", "comparison.png"}
    logged = json.loads(Path(client.download_artifacts(run.info.run_id, "comparison.json", str(d))).read_text())
    assert logged["pairs"] == out["pairs"] and logged["studies"] == out["studies"]
    # The studies' own runs are not touched by a comparison.
    assert keys.COMPARES not in client.get_run(ids["A"]).data.tags


def test_cli_compare_studies_unknown_ref_exits_2(two_studies):
    proc = run_cli(["compare", "A", "nope", "--tracking-uri", two_studies["uri"], "--json"], cwd=two_studies["dir"])
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0] == f"error: 'nope' is neither a study run id nor an experiment in {two_studies['uri']}"


@pytest.mark.parametrize("refs, needle", [
    (["A"], "at least 2 studies"),
    (["A", "{A}"], "given twice"),          # the experiment name and its newest study's run id
    (["A", "{plain}"], "is not a scal study"),
])
def test_compare_studies_bad_refs_raise(two_studies, refs, needle):
    """The library under the CLI (its ValueError/LookupError become `error:` and exit 2, as above)."""
    from scal.compare import compare_studies

    uri = two_studies["uri"]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("not-a-study") or client.get_experiment(client.create_experiment("not-a-study"))
    plain = client.create_run(exp.experiment_id).info.run_id   # a run without scal's study tag
    with pytest.raises((ValueError, LookupError), match=needle):
        compare_studies(client, [r.format(plain=plain, **two_studies["run_ids"]) for r in refs], n_boot=5)

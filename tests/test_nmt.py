"""The nmt domain: embedded Bible pairs split by book, exact parameter counts of the attentional
encoder-decoder, one training step, TSV and two-file user data, one-line data errors, and a smoke
study into a real MLflow store."""

from __future__ import annotations

import json
import pickle
import random
from dataclasses import replace

import pytest
import torch
from mlflow.tracking import MlflowClient
from num2words import num2words

import domains
from conftest import run_cli, sqlite_uri
from domains import nmt
from domains.protocol import DataError, TrialSpec
from scal import keys
from search.subsets import SubsetPlan


@pytest.fixture(autouse=True)
def one_thread():
    """Small LSTMs gain nothing from a second thread, and on a shared CPU two threads spin-wait on
    each other (tens of times slower): tests train single-threaded, as a Ray trial on one CPU does."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bible():
    dom = domains.get("nmt")
    return dom, dom.load("tokens", max_val_units=1500)


def _number_pairs(n_pairs: int, seed: int = 0) -> list[str]:
    """French number words -> English ones in a seeded order ('quarante-deux<TAB>forty-two'): both
    sides are words that recur, so a few hundred pairs teach a tiny model to translate unseen numbers."""
    numbers = random.Random(seed).sample(range(1, 1000), n_pairs)
    return [f"{num2words(n, lang='fr')}\t{num2words(n)}" for n in numbers]


def test_embedded_bible_is_split_by_book(bible):
    dom, data = bible
    train, val = nmt.bible_verses()
    assert len(train) + len(val) == 12178 and len(val) == 489
    assert not {k for k, _, _ in train} & {k for k, _, _ in val}
    assert {k.rsplit(" ", 1)[0] for k, _, _ in val} == set(nmt.VALIDATION_BOOKS)
    assert ("Genesis 1:3", "And God said, Let there be light: and there was light.",
            "Y dijo Dios: Sea la luz: y fué la luz.") in train
    assert len(data.src_train) == len(data.tgt_train) == len(train)
    sizes = data.chunk_sizes()
    assert sizes.min() >= 2 and 250_000 < sizes.sum() < 400_000        # ~28 target tokens per verse
    # validation capped at 1,500 target tokens, whole pairs; BLEU references are its first pairs
    assert 1400 < data.tgt_val.lengths().sum() <= 1500 and len(data.bleu_refs) == min(100, len(data.tgt_val))
    assert data.src_vocab == data.tgt_vocab == nmt.VOCAB_SIZE
    assert 4.0 < data.best_guess_error() < float(torch.log(torch.tensor(1000.0)))
    # Ray ships the data to its workers: it pickles without the (unpicklable) tokenizer object
    ids = data.tgt_val.batch([0])[0][0].tolist()[:-1]                     # drop EOS
    assert pickle.loads(pickle.dumps(data)).decode([ids]) == data.decode([ids]) == [data.bleu_refs[0]]


@pytest.mark.parametrize("width,layers", [(8, 1), (16, 2), (24, 3)])
def test_parameter_count_is_exact(bible, width, layers):
    dom, data = bible
    size = {"width": width, "layers": layers}
    model = dom.build_model(size, data)
    assert dom.count_params(size, data) == sum(p.numel() for p in model.parameters())


def test_one_training_step_at_the_smallest_size(bible):
    dom, data = bible
    scale = dom.scale("smoke", "tokens")
    plan = SubsetPlan(data.chunk_sizes(), scale.min_subset, scale.n_subsets)
    spec = TrialSpec("nmt", "tokens", scale.min_subset, {"width": scale.min_width, "layers": 1}, scale.lr, 0, "smoke",
                     replace(scale.train, max_steps=1, max_rounds=1, min_round_steps=1))
    logged = []
    result, model = dom.train(spec, data, plan.indices(scale.min_subset), lambda m, s: logged.append(m))
    assert result.ok and result.steps == 1 and result.n_params == sum(p.numel() for p in model.parameters())
    # an untrained model is about as good as a uniform guess over the target vocabulary
    assert abs(result.min_val_error - float(torch.log(torch.tensor(float(data.tgt_vocab))))) < 0.5
    assert 0.0 <= result.extra["val_bleu"] <= 100.0 and "val_bleu" in logged[0]
    assert dom.evaluate(model, data) == pytest.approx((result.min_val_loss, result.min_val_error))


def test_user_tsv_holds_out_its_tail_and_trains(tmp_path):
    path = tmp_path / "pairs.tsv"
    lines = _number_pairs(400)
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    dom = domains.get("nmt")
    data = dom.load("tokens", str(path))
    assert len(data.tgt_train) == 360 and len(data.tgt_val) == 40           # the last 10% is validation
    assert sorted(data.bleu_refs) == sorted(line.split("\t")[1] for line in lines[360:])
    assert data.src_vocab < nmt.VOCAB_SIZE                                   # a soft limit on small data
    spec = TrialSpec("nmt", "tokens", 512, {"width": 32, "layers": 1}, 1e-2, 0, "smoke",
                     replace(dom.scale("smoke", "tokens").train, max_steps=150, max_rounds=2, min_round_steps=75))
    result, _ = dom.train(spec, data, list(range(len(data.tgt_train))), lambda m, s: None)
    assert result.ok and result.min_val_error < 0.6 * data.best_guess_error()   # it learns the mapping


def test_user_parallel_files(tmp_path):
    pairs = [line.split("\t") for line in _number_pairs(100)]
    (tmp_path / "train.src").write_text("\n".join(s for s, _ in pairs[:80]), encoding="utf-8")
    (tmp_path / "train.tgt").write_text("\n".join(t for _, t in pairs[:80]), encoding="utf-8")
    data = domains.get("nmt").load("tokens", str(tmp_path))
    assert (len(data.tgt_train), len(data.tgt_val)) == (72, 8)               # no valid.*: the tail
    (tmp_path / "valid.src").write_text("\n".join(s for s, _ in pairs[80:]), encoding="utf-8")
    (tmp_path / "valid.tgt").write_text("\n".join(t for _, t in pairs[80:]), encoding="utf-8")
    data = domains.get("nmt").load("tokens", str(tmp_path))
    assert (len(data.tgt_train), len(data.tgt_val)) == (80, 20)
    (tmp_path / "valid.tgt").write_text("one\ntwo", encoding="utf-8")
    with pytest.raises(DataError, match="valid.src has 20 lines but valid.tgt has 2"):
        domains.get("nmt").load("tokens", str(tmp_path))


def _malformed(p):
    f = p / "bad.tsv"
    f.write_text("one\teins\ntwo zwei\n", encoding="utf-8")
    return f


def _empty(p):
    f = p / "empty.tsv"
    f.write_text("\n\n", encoding="utf-8")
    return f


def _misaligned(p):
    (p / "train.src").write_text("one\ntwo\nthree\n", encoding="utf-8")
    (p / "train.tgt").write_text("eins\nzwei\n", encoding="utf-8")
    return p


@pytest.mark.parametrize("make,needle", [
    (lambda p: p / "missing.tsv", "no such file or directory"),
    (_empty, "0 sentence pairs"),
    (_malformed, "line 2 is not 'source<TAB>target'"),
    (_misaligned, "train.src has 3 lines but train.tgt has 2"),
])
def test_bad_data_is_a_one_line_error(tmp_path, make, needle):
    proc = run_cli(["study", "--domain", "nmt", "--budget", "smoke", "--data", str(make(tmp_path)),
                    "--tracking-uri", sqlite_uri(tmp_path)], cwd=tmp_path)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: --data") and needle in lines[0], proc.stderr


@pytest.mark.integration
def test_smoke_study_into_mlflow(tmp_path):
    uri = sqlite_uri(tmp_path)
    proc = run_cli(["study", "--domain", "nmt", "--budget", "smoke", "--tracking-uri", uri, "--json"], cwd=tmp_path,
                   env_extra={"SCAL_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert [s["size"] for s in summary["subsets"]] == [256, 512, 1024]
    client = MlflowClient(uri, uri)
    runs = client.search_runs([summary["experiment_id"]], f"tags.`{keys.PARENT}` = '{summary['parent_run_id']}'",
                              max_results=1000)
    assert len(runs) == summary["n_trials"] + summary["n_reused"] and summary["n_trials"] > 0   # + reference runs
    for r in runs:
        assert r.data.params[keys.P_DOMAIN] == "nmt" and "size.layers" in r.data.params
        assert 0.0 < r.data.metrics[keys.M_MIN_VAL_ERROR] < 8.0
        assert 0.0 <= r.data.metrics["best_val_bleu"] <= 100.0
    parent = client.get_run(summary["parent_run_id"])
    assert parent.info.status == "FINISHED" and "beta_g" in parent.data.metrics
    assert len(client.search_model_versions(f"name = '{summary['registered_model']}'")) == 3

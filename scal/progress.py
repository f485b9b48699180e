"""Progress of long work on stderr: subset i of n, trial i of N, the current best.

On a terminal: one tqdm bar per batch of trials. Anywhere else (a log file, CI, a pipe) a bar is
carriage-return noise, so the same news comes as plain log lines instead: one per finished batch,
and one at most every `HEARTBEAT_S` seconds while a batch runs, so that long work stays visible in
the log. ``enabled=False`` (``--quiet``, tests) shows neither.
"""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

from domains.protocol import TrialResult

log = logging.getLogger(__name__)

HEARTBEAT_S = 60.0   # a log line while a batch runs, at most this often (off a terminal)


class Progress:
    """One bar (or one log line) per batch of trials: a subset's grid, or its overfitting probes."""

    def __init__(self, n_subsets: int, metric: str, enabled: bool = True, terminal: bool | None = None):
        self.n_subsets, self.metric, self.enabled = n_subsets, metric, enabled
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.bar: tqdm | None = None
        self.best = float("inf")
        self.best_size = ""
        self.done_subsets = 0
        self._key: tuple | None = None
        self._desc = ""
        self._n = 0                        # trials finished in the open batch
        self._total: int | None = None     # its length; None for probes (open-ended)
        self._started = self._last_line = 0.0

    def begin(self, subset_size: int, n_trials: int, role: str) -> None:
        """Open a batch; consecutive probes of one subset share one (of open length)."""
        if role == "overfit_probe" and self._key == (subset_size, role):
            return
        self.close()
        self._key = (subset_size, role)
        self._total = None if role == "overfit_probe" else n_trials
        self.best, self.best_size, self._n = float("inf"), "", 0
        self._started = self._last_line = time.monotonic()
        label = "overfit probe" if role == "overfit_probe" else "grid"
        self._desc = f"subset {min(self.done_subsets + 1, self.n_subsets)}/{self.n_subsets} m={subset_size:,} {label}"
        if self.enabled and self.terminal:
            self.bar = tqdm(total=self._total, desc=self._desc, file=sys.stderr, leave=True, dynamic_ncols=True,
                            bar_format=("{desc}: trial {n_fmt}/{total_fmt} |{bar:20}| {elapsed}<{remaining} {postfix}"
                                        if self._total else "{desc}: trial {n_fmt} {elapsed} {postfix}"))

    def trial(self, result: TrialResult) -> None:
        self._n += 1
        size = ",".join(f"{k}={v}" for k, v in sorted(result.spec.size.items()))
        if result.ok and result.min_val_error < self.best:
            self.best, self.best_size = result.min_val_error, size
        if self.bar is not None:
            self.bar.set_postfix_str(f"{size} -> {result.min_val_error:.4g} (best {self.best:.4g} {self.metric})", refresh=False)
            self.bar.update(1)
        elif self._logging() and time.monotonic() - self._last_line >= HEARTBEAT_S:
            self._last_line = time.monotonic()
            log.info("%s: trial %s done, best so far %.4g %s (%s)", self._desc, self._count(), self.best,
                     self.metric, self.best_size or "none finished")

    def subset_done(self) -> None:
        self.done_subsets += 1
        self.close()

    def close(self) -> None:
        """End the open batch: close its bar, or log its one line."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self._key is not None and self._logging() and self._n:
            log.info("%s: %s trial(s) in %.0f s, best %.4g %s (%s)", self._desc, self._count(),
                     time.monotonic() - self._started, self.best, self.metric, self.best_size or "none finished")
        self._key = None

    def _logging(self) -> bool:
        return self.enabled and not self.terminal

    def _count(self) -> str:
        return f"{self._n}/{self._total}" if self._total else str(self._n)

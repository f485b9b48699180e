"""Progress of long work on stderr: subset i of n, trial i of N, the current best (tqdm)."""

from __future__ import annotations

import sys

from tqdm import tqdm

from domains.protocol import TrialResult


class Progress:
    """One bar per batch of trials (a subset's grid or an overfitting probe)."""

    def __init__(self, n_subsets: int, metric: str, enabled: bool = True):
        self.n_subsets, self.metric, self.enabled = n_subsets, metric, enabled
        self.bar: tqdm | None = None
        self.best = float("inf")
        self.done_subsets = 0
        self._key: tuple | None = None

    def begin(self, subset_size: int, n_trials: int, role: str) -> None:
        """Open a bar for a batch; consecutive probes of one subset share a bar of open length."""
        if role == "overfit_probe" and self.bar is not None and self._key == (subset_size, role):
            return
        self.close()
        self._key = (subset_size, role)
        if role == "overfit_probe":
            n_trials = None
        self.best = float("inf")
        label = "overfit probe" if role == "overfit_probe" else "grid"
        desc = f"subset {min(self.done_subsets + 1, self.n_subsets)}/{self.n_subsets} m={subset_size:,} {label}"
        self.bar = tqdm(total=n_trials, desc=desc, file=sys.stderr, disable=not self.enabled, leave=True,
                        bar_format=("{desc}: trial {n_fmt}/{total_fmt} |{bar:20}| {elapsed}<{remaining} {postfix}" if n_trials
                                    else "{desc}: trial {n_fmt} {elapsed} {postfix}"),
                        dynamic_ncols=True)

    def trial(self, result: TrialResult) -> None:
        if result.ok and result.min_val_error < self.best:
            self.best = result.min_val_error
        if self.bar is not None:
            size = ",".join(f"{k}={v}" for k, v in sorted(result.spec.size.items()))
            self.bar.set_postfix_str(f"{size} -> {result.min_val_error:.4g} (best {self.best:.4g} {self.metric})", refresh=False)
            self.bar.update(1)

    def subset_done(self) -> None:
        self.done_subsets += 1
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

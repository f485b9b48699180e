"""What the search and the executors share: how the next trial is asked for, how one trial runs,
what comes back, and the settings that choose and size an executor. Both executors
(`search.executor.LocalExecutor`, `search.ray_executor.RayExecutor`) import this module and neither
imports the other; `search.executor.make_executor` is the one place that knows both.

- A `Proposer` hands out the next trial (a fixed list for the Monte Carlo grid and the
  overfitting probes, Bayesian refinement for ``--searcher skopt``) and is told each result.
- `run_trial` trains one spec, in this process or on a Ray worker: one code path.
- A `TrialOutcome` is a finished trial as the driver receives it; the caller logs it to MLflow
  there, so one process writes the store (see `scal.study`). A `TrialWatcher`, when given, hears
  each trial start and each of its validation rounds as they happen, in the same thread, so a
  long trial's curve is in MLflow while it trains.
- `ExecutorSettings`: ``--executor``, ``--ray-address`` and the per-trial resources.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

import torch

import domains
from domains.common import set_threads
from domains.protocol import DomainData, TrialResult, TrialSpec
from search.subsets import SubsetPlan

log_ = logging.getLogger(__name__)

FINISHED = "FINISHED"        # a proposer has nothing more to start
History = list[tuple[dict[str, float], int]]


class Proposer(Protocol):
    """Hands out trials and hears their results.

    ``suggest()`` returns the next spec, ``None`` when it must wait for a running trial, or
    `FINISHED`. ``complete(spec, result)`` is called once per suggested spec.
    """

    n_trials: int            # how many trials it will hand out (for progress bars)

    def suggest(self) -> TrialSpec | None | str: ...

    def complete(self, spec: TrialSpec, result: TrialResult) -> None: ...


class FixedProposer:
    """A fixed list of specs, in order; ``results()`` gives their results in the same order."""

    def __init__(self, specs: list[TrialSpec]):
        self.specs = list(specs)
        self.n_trials = len(self.specs)
        self._next = 0
        self._done: dict[str, TrialResult] = {}

    def suggest(self) -> TrialSpec | str:
        if self._next >= len(self.specs):
            return FINISHED
        self._next += 1
        return self.specs[self._next - 1]

    def complete(self, spec: TrialSpec, result: TrialResult) -> None:
        self._done[spec.trial_hash()] = result

    def results(self) -> list[TrialResult]:
        return [self._done[s.trial_hash()] for s in self.specs]


@dataclass
class TrialOutcome:
    """A finished trial as the driver receives it: enough to log it and register its model."""

    result: TrialResult
    history: History
    model: torch.nn.Module | None = None     # kept only when asked (grid trials: registry candidates)
    node: str = ""                            # where it ran (host, or the Ray node id)
    threads: int = 1
    start_ms: int = 0
    end_ms: int = 0
    key: str = ""                             # the executor's id of the trial (a Ray trial id)
    live: Any = None                          # the watcher's handle for it (`TrialWatcher.started`), if one watched

    @property
    def spec(self) -> TrialSpec:
        return self.result.spec


OnDone = Callable[[TrialOutcome], None]


class TrialWatcher(Protocol):
    """Hears trials while they train, in the thread that called the executor's ``run``.

    ``started`` returns a handle for the trial (its run); each validation round then arrives as
    ``round(handle, metrics, step)``, and the finished trial reaches ``on_done`` with
    ``outcome.live`` = that handle. A trial that never started (Ray could not place it) reaches
    ``on_done`` with ``live`` None.
    """

    def started(self, spec: TrialSpec, start_ms: int) -> Any: ...

    def round(self, handle: Any, metrics: Mapping[str, float], step: int) -> None: ...


@dataclass
class TrialContext:
    """What every trial needs besides its spec; shipped once to each Ray node."""

    domain: str
    data: DomainData
    plan: SubsetPlan
    device: str = "auto"
    threads: int = 1        # torch threads of every trial (`--threads`): a result depends on it


def run_trial(ctx: TrialContext, spec: TrialSpec, keep_model: bool, threads: int | None = None,
              log: Callable[[dict[str, float], int], None] | None = None) -> TrialOutcome:
    """Train ``spec``: the same function in this process and on a Ray worker, on ``ctx.threads``
    torch threads whichever executor runs it (``threads`` overrides it: a retrain for the registry
    uses the count its trial ran with)."""
    n_threads = set_threads(threads or ctx.threads)
    history: History = []

    def record(metrics: dict[str, float], step: int) -> None:
        history.append((dict(metrics), step))
        if log is not None:
            log(metrics, step)

    start = int(time.time() * 1000)
    result, model = domains.get(ctx.domain).train(spec, ctx.data, ctx.plan.indices(spec.subset_size), record,
                                                  device=ctx.device)
    # The thread count training actually ran with (a domain that reset it would show here).
    used = torch.get_num_threads()
    if used != n_threads:
        log_.warning("trial %s ran with %d torch threads, not the %d asked for", spec.trial_hash(), used, n_threads)
    return TrialOutcome(result, history, model if keep_model else None, node=socket.gethostname(),
                        threads=used, start_ms=start, end_ms=int(time.time() * 1000))


def local_slots(cpus_per_trial: float, gpus_per_trial: float) -> int:
    """How many trials fit on this machine at once (before any cluster is joined)."""
    slots = (os.cpu_count() or 1) / max(cpus_per_trial, 1e-9)
    if gpus_per_trial > 0:
        slots = min(slots, torch.cuda.device_count() / gpus_per_trial)
    return int(slots)


@dataclass(frozen=True)
class ExecutorSettings:
    """``--executor``, ``--ray-address`` and the per-trial resources."""

    kind: str = "auto"                  # auto | local | ray
    ray_address: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    scheduler: str = "fifo"             # fifo | asha

    def resolved_kind(self) -> str:
        """auto: Ray when joining a cluster or when more than one trial fits here, else local."""
        if self.kind not in ("auto", "local", "ray"):
            raise ValueError(f"unknown executor {self.kind!r}; choose auto, local or ray")
        if self.kind != "auto":
            return self.kind
        if self.ray_address or self.scheduler != "fifo":
            return "ray"
        return "ray" if local_slots(self.cpus_per_trial, self.gpus_per_trial) > 1 else "local"

    def validate(self, tracking_uri: str) -> None:
        """Checks that need nothing started; one-line errors."""
        kind = self.resolved_kind()
        if self.scheduler not in ("fifo", "asha"):
            raise ValueError(f"unknown scheduler {self.scheduler!r}; choose fifo or asha")
        if kind == "local" and (self.ray_address or self.scheduler != "fifo"):
            raise ValueError("--ray-address and --scheduler asha need the Ray executor (--executor ray)")
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise ValueError("--cpus-per-trial must be positive and --gpus-per-trial not negative")
        if kind == "ray" and self.ray_address and not tracking_uri.startswith(("http://", "https://")):
            raise ValueError(
                f"--ray-address joins a cluster whose nodes cannot share the local store {tracking_uri!r}: "
                "start `mlflow server` and pass --tracking-uri http://HOST:PORT")

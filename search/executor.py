"""Executors: where trials train. One interface, two implementations.

- `LocalExecutor` trains one trial after another in this process (tests, debugging, one core).
- `search.ray_executor.RayExecutor` runs each trial as a Ray Tune trial with its own resources,
  as many at once as the cluster holds (the only module that imports ray).

`make_executor` is the one place that knows both. What they share (the `ExecutorSettings`, the
`Proposer` they are driven by, `run_trial`, the `TrialOutcome` each finished trial becomes, the
`TrialWatcher`) is `search.trial`, which imports neither. Both hand every finished trial to ``on_done(outcome)``
*in the driver process*: the caller logs it to MLflow there, so one process writes the store
(see `scal.study`).
"""

from __future__ import annotations

import functools
import time

from search.trial import FINISHED, ExecutorSettings, OnDone, Proposer, TrialContext, TrialWatcher, run_trial


class LocalExecutor:
    """Trials one after another in this process, each on ``ctx.threads`` torch threads (``--threads``)."""

    name = "local"

    def __init__(self, ctx: TrialContext):
        self.ctx = ctx

    @property
    def concurrency(self) -> int:
        return 1

    def run(self, proposer: Proposer, role: str, on_done: OnDone, keep_models: bool = False,
            watcher: TrialWatcher | None = None) -> None:
        while True:
            spec = proposer.suggest()
            if spec == FINISHED:
                return
            if spec is None:   # nothing runs concurrently here, so a waiting proposer is a bug
                raise RuntimeError("proposer is waiting, but no trial is running")
            live, log = None, None
            if watcher is not None:
                live = watcher.started(spec, int(time.time() * 1000))
                log = functools.partial(watcher.round, live)   # log(metrics, step), the loop's callback
            out = run_trial(self.ctx, spec, keep_models, log=log)
            out.live = live
            proposer.complete(spec, out.result)
            on_done(out)

    def close(self) -> None:
        pass


def make_executor(settings: ExecutorSettings, ctx: TrialContext, max_rounds: int):
    """The executor ``settings`` ask for. Ray is imported here, and only when asked: it takes
    seconds, which every command that never runs a trial would pay."""
    if settings.resolved_kind() == "local":
        return LocalExecutor(ctx)
    from search.ray_executor import RayExecutor

    return RayExecutor(ctx, settings, max_rounds=max_rounds)

"""The Ray Tune executor: every trial a Tune trial with its own resources. The only module importing ray.

One `Tuner.fit` runs for the executor's whole life, in a background thread, so Tune's trial actors
(each a worker process that has imported torch) are reused across every batch of the study; a
Tuner per batch would pay a few seconds of worker start-up for every overfitting probe.

- The search calls ``run(proposer, ...)`` in the main thread, once per batch (a subset's grid,
  one overfitting probe). `_Feed`, the Tuner's `Searcher`, asks the current batch's `Proposer`
  for trials whenever resources free up, so concurrency follows the cluster (``max_concurrent``
  caps it); between batches it answers "nothing yet".
- `_trainable` calls `search.trial.run_trial` on the worker, reporting one Tune result per
  validation round (so ASHA can stop poor trials) and a final result with the trial's summary.
  A grid trial's model goes to `_ModelStore`, an actor beside the driver, so no shared storage is
  needed between nodes.
- `_Collector`, a Tune callback in the driver, gathers each trial's rounds, tells the proposer the
  result and queues the finished `TrialOutcome`; ``run`` hands it to ``on_done`` in the main thread,
  which logs it to MLflow. A trial's start and each of its rounds are queued the same way as they
  happen (`_Live`) and handed to the `TrialWatcher`, so its run shows its curve while it trains.
  One thread of one process writes the store: no "database is locked" with sqlite, and nothing on
  the workers needs the tracking URI.
- ``--scheduler asha`` is ASHA per batch (`_BatchASHA`): trials are only compared with the other
  trials of the same subset's grid, never across subsets whose errors differ by design.

Without ``--ray-address`` a local Ray instance bound to 127.0.0.1 is started (`_start_local_ray`) and shut
down at the end; `search.ray_watchdog` ends its processes should the driver die without closing it.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import math
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

# Before ray is imported: no TensorBoard/CSV/JSON loggers per trial (MLflow is the record), and
# Ctrl-C reaches scal (which marks the study KILLED) instead of Tune's own graceful-stop handler.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler  # noqa: E402
from ray.tune.search import Searcher  # noqa: E402

import domains  # noqa: E402
from domains.loop import round_rank  # noqa: E402
from domains.protocol import TrialResult, TrialSpec  # noqa: E402
from search import ray_watchdog  # noqa: E402
from search.trial import (  # noqa: E402
    FINISHED, ExecutorSettings, OnDone, Proposer, TrialContext, TrialOutcome, TrialWatcher, run_trial,
)

log = logging.getLogger(__name__)

_ROUND_KEYS = ("train_loss", "val_loss", "val_error", "epoch", "lr")
_METRIC = "val_error"


@ray.remote(num_cpus=0)
class _ModelStore:
    """Holds finished grid trials' models until the driver takes them."""

    def __init__(self):
        self.models: dict[str, Any] = {}

    def put(self, key: str, model: Any) -> None:
        self.models[key] = model

    def pop(self, key: str) -> Any:
        return self.models.pop(key, None)


def _trainable(config: dict, ctx: TrialContext, store: Any) -> None:
    spec: TrialSpec = config["spec"]
    node = ray.get_runtime_context().get_node_id()

    def report(metrics: dict[str, float], step: int) -> None:
        tune.report({**{k: float(v) for k, v in metrics.items()}, "step": step, "final": 0, "node": node})

    out = run_trial(ctx, spec, keep_model=config["keep_model"], log=report)
    if out.model is not None:
        ray.get(store.put.remote(spec.trial_hash(), out.model))
    r = out.result
    tune.report({
        _METRIC: r.min_val_error if math.isfinite(r.min_val_error) else 1e30, "final": 1, "node": node,
        "result": r, "threads": out.threads, "start_ms": out.start_ms, "end_ms": out.end_ms,
    })


@dataclass(frozen=True)
class _Live:
    """A running trial's start (``metrics`` None) or one of its validation rounds, on its way to the main thread."""

    trial_id: str
    spec: TrialSpec
    metrics: dict[str, float] | None = None
    step: int = 0
    ms: int = 0


def _round(result: dict) -> tuple[dict[str, float], int]:
    """A Tune result reported by `_trainable` for one round, as the loop logged it: (metrics, step)."""
    return {k: float(result[k]) for k in _ROUND_KEYS if k in result}, int(result["step"])


@dataclass
class _Batch:
    """One ``run`` call: its proposer, and the outcomes (and live events) on their way to the main thread."""

    id: int
    proposer: Proposer
    role: str
    keep_models: bool
    outcomes: "queue.Queue[TrialOutcome | _Live | None]" = field(default_factory=queue.Queue)
    suggested: int = 0
    completed: int = 0
    exhausted: bool = False

    def maybe_done(self) -> None:
        if self.exhausted and self.completed == self.suggested:
            self.outcomes.put(None)


class _Feed(Searcher):
    """The Tuner's searcher: the current batch's proposer, or "nothing yet" between batches."""

    def __init__(self):
        super().__init__(metric=_METRIC, mode="min")
        self.lock = threading.Condition()
        self.batch: _Batch | None = None
        self.closed = False
        self.batches: dict[int, _Batch] = {}

    def set_batch(self, batch: _Batch | None) -> None:
        with self.lock:
            if batch is not None:
                self.batches[batch.id] = batch
            self.batch = batch
            self.lock.notify_all()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.lock.notify_all()

    def _waiting(self) -> bool:
        """No trial of ours runs and the current batch (if any) has nothing more to start."""
        return ((self.batch is None or self.batch.exhausted)
                and all(b.completed == b.suggested for b in self.batches.values()))

    def suggest(self, trial_id: str) -> dict | str | None:
        with self.lock:
            # With no trial running, Tune polls its searcher once a second; waiting here for the
            # next batch instead starts it at once (between a probe and the next, that is the
            # whole difference between a local and a Ray study on one machine).
            if self._waiting() and not self.closed:
                self.lock.wait_for(lambda: self.closed or not self._waiting(), timeout=5.0)
            if self.closed:
                return Searcher.FINISHED
            b = self.batch
            if b is None or b.exhausted:
                return None
            spec = b.proposer.suggest()
            if spec is None:
                return None
            if spec == FINISHED:
                b.exhausted = True
                b.maybe_done()
                return None
            b.suggested += 1
            return {"spec": spec, "keep_model": b.keep_models, "batch": b.id, "role": b.role}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass  # `_Collector` tells the proposer: it also sees stopped and failed trials whole

    def __getstate__(self) -> dict:
        # Tune pickles its searcher into the experiment state; scal resumes through MLflow, so the
        # live batches (locks, queues) are left out.
        return {"_metric": self._metric, "_mode": self._mode}

    def __setstate__(self, state: dict) -> None:
        _Feed.__init__(self)

    def save(self, checkpoint_path: str) -> None:   # resume goes through MLflow, not Tune's state
        pass

    def restore(self, checkpoint_path: str) -> None:
        pass


class _BatchASHA(FIFOScheduler):
    """ASHA within each batch (a subset's grid); every other trial runs to its end."""

    def __init__(self, max_t: int):
        super().__init__()
        self.max_t = max_t
        self.per_batch: dict[int, ASHAScheduler] = {}

    def _asha(self, trial) -> ASHAScheduler | None:
        if trial.config.get("role") != "grid":
            return None
        b = trial.config["batch"]
        if b not in self.per_batch:
            self.per_batch[b] = ASHAScheduler(time_attr="training_iteration", metric=_METRIC, mode="min",
                                              max_t=self.max_t, grace_period=2, reduction_factor=2)
        return self.per_batch[b]

    def on_trial_add(self, tune_controller, trial) -> None:
        if (a := self._asha(trial)) is not None:
            a.on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        a = self._asha(trial)
        return a.on_trial_result(tune_controller, trial, result) if a is not None else self.CONTINUE

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        if (a := self._asha(trial)) is not None:
            a.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        if (a := self._asha(trial)) is not None:
            a.on_trial_remove(tune_controller, trial)


class _Collector(tune.Callback):
    """Driver side: rounds in, one `TrialOutcome` out per trial, to the proposer and the batch's queue."""

    def __init__(self, feed: _Feed, store: Any, ctx: TrialContext | None = None):
        self.feed, self.store, self.ctx = feed, store, ctx
        self.rounds: dict[str, list[dict]] = {}
        self.first_ms: dict[str, int] = {}

    def __getstate__(self) -> dict:
        return {"feed": self.feed, "store": self.store, "ctx": None, "rounds": {}, "first_ms": {}}

    def count_params(self, spec: TrialSpec) -> int:
        """The spec's parameter count by the domain's exact formula (0 if unknown here)."""
        if self.ctx is None:
            return 0
        return int(domains.get(self.ctx.domain).count_params(spec.size, self.ctx.data))

    def _live(self, trial, event: _Live) -> None:
        """Queue a live event for the main thread, unless its batch was abandoned."""
        batch = self.feed.batches.get(trial.config["batch"])
        if batch is not None:
            batch.outcomes.put(event)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.first_ms[trial.trial_id] = int(time.time() * 1000)
        self._live(trial, _Live(trial.trial_id, trial.config["spec"], ms=self.first_ms[trial.trial_id]))

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if not result.get("final"):
            self.rounds.setdefault(trial.trial_id, []).append(result)
            metrics, step = _round(result)
            self._live(trial, _Live(trial.trial_id, trial.config["spec"], metrics, step))

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._finish(trial, error=None)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        text = _read(trial.error_file)
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        self._finish(trial, error=(lines[-1] if lines else "") or "the Ray trial failed", traceback=text)

    def _finish(self, trial, error: str | None, traceback: str = "") -> None:
        spec: TrialSpec = trial.config["spec"]
        batch = self.feed.batches.get(trial.config["batch"])
        rounds = self.rounds.pop(trial.trial_id, [])
        if batch is None:   # its batch was abandoned (interrupted): nobody waits for it
            return
        history = [_round(r) for r in rounds]
        last = trial.last_result or {}
        now = int(time.time() * 1000)
        start = self.first_ms.pop(trial.trial_id, now)
        node = str(last.get("node", rounds[-1]["node"] if rounds else ""))
        if last.get("final") and error is None:
            result: TrialResult = last["result"]
            model = ray.get(self.store.pop.remote(spec.trial_hash())) if trial.config["keep_model"] else None
            out = TrialOutcome(result, history, model, node=node, threads=int(last["threads"]),
                               start_ms=int(last["start_ms"]), end_ms=int(last["end_ms"]))
        else:  # stopped by the scheduler after some rounds, or failed before its summary
            out = TrialOutcome(_partial_result(spec, history, error, self.count_params(spec), traceback), history, None,
                               node=node, start_ms=start, end_ms=now)
        out.key = trial.trial_id
        with self.feed.lock:
            batch.proposer.complete(spec, out.result)
            batch.completed += 1
            batch.outcomes.put(out)
            batch.maybe_done()


def _partial_result(spec: TrialSpec, history, error: str | None, n_params: int = 0, traceback: str = "") -> TrialResult:
    """The summary of a trial that ended without its own: stopped early (ASHA) or failed (with
    Ray's ``traceback`` of it). ``n_params`` comes from the domain's formula (the trial never
    reported its own)."""
    nan = float("nan")
    if error is not None or not history:
        return TrialResult(spec, n_params, nan, nan, nan, 0, nan, 0, 0.0, 0.0, "failed", (error or "no result")[:500],
                           traceback=traceback)
    # The same round the loop would have kept (`domains.loop.round_rank`): the lowest metric.
    best_i = min(range(len(history)), key=lambda i: round_rank(history[i][0].get("val_error", math.inf),
                                                               history[i][0].get("val_loss", math.inf)))
    best, step = history[best_i]
    epochs = history[-1][0].get("epoch", nan)
    min_val_loss = min(r.get("val_loss", math.inf) for r, _ in history)
    return TrialResult(
        spec, n_params, best.get("val_error", nan), min_val_loss, best.get("epoch", nan), step,
        history[-1][0].get("train_loss", nan), history[-1][1], epochs, 0.0, "stopped",
        f"stopped by the scheduler after {len(history)} rounds", extra=_extra(best))


def _extra(round_metrics: dict[str, float]) -> dict[str, float]:
    """A round's further validation metrics (the loop's ``val_*`` keys beyond loss and error)."""
    return {k: v for k, v in round_metrics.items() if k.startswith("val_") and k not in ("val_loss", "val_error")}


def _read(path: str | None) -> str:
    """A Ray trial's error file (its formatted traceback), or "" when there is none."""
    try:
        with open(path) as f:
            return f.read()
    except (OSError, TypeError):
        return ""


@contextlib.contextmanager
def _loopback_node():
    """While the local instance starts, Ray takes this host's address to be the loopback one.

    Ray's servers bind by the node's address: with 127.0.0.1 the GCS, raylet, every worker's and the
    driver's core worker and the agents listen on loopback only; with the host's external address they
    listen on every interface (the RuntimeEnvAgent on that address). But ``ray.init`` replaces a
    loopback ``_node_ip_address`` with the host's external address unless Ray runs without
    multi-node support, as on macOS and Windows: `ray_constants.ENABLE_RAY_CLUSTER`
    (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER, read once when ray is imported, so too late for an env var).
    Only around this ``ray.init``: a driver joining a cluster must find its node by the real address.
    """
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


# Below this much free space in the temp folder a failed start of a local Ray instance is a full
# disk: its session folder (sockets, port files, logs) takes a few MB before anything runs.
RAY_SESSION_MIN_BYTES = 64 * 2**20


def _ray_temp_root() -> str:
    """The folder Ray puts its session folder in, as Ray decides it (RAY_TMPDIR, TMPDIR, /tmp).
    Not `tempfile.gettempdir`, which skips a TMPDIR it cannot write to, such as a full one."""
    try:
        from ray._common.utils import get_default_system_temp_dir
    except ImportError:   # another Ray version keeps it elsewhere
        return tempfile.gettempdir()
    return get_default_system_temp_dir()


@contextlib.contextmanager
def _stop_handlers_kept():
    """The driver's SIGTERM and SIGINT handlers put back after the block (``ray.init``).

    ``ray.init`` installs Ray's C++ failure handler for SIGTERM, which prints a stack trace and
    aborts (exit 134). Python's own record of the handler is unchanged, so setting it again
    reinstates whatever the driver had. A study installs its own handlers (`scal.interrupts`)
    after its executor has started, which would replace Ray's anyway; this is for every other
    driver (`scal search-size`, a script), which then ends on SIGTERM as it would without Ray.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in before.items():
            if handler is not None:
                signal.signal(s, handler)


def _start_local_ray() -> subprocess.Popen:
    """A local Ray instance bound to loopback (a laptop's study is nobody else's business), the
    dashboard off, and a watchdog that ends its processes should this driver die without closing it."""
    before = ray_watchdog.children(os.getpid())
    try:
        with _loopback_node():
            # "local": a new instance even where RAY_ADDRESS or a `ray start` on this host names another
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, _node_ip_address="127.0.0.1",
                     log_to_driver=False, configure_logging=False)
    except Exception as exc:
        ray.shutdown()
        ray_watchdog.end(ray_watchdog.children(os.getpid()) - before)
        # Ray says "Timed out waiting for file .../gcs_server_port_..." when its session folder
        # could not be written: name the cause, so that it reads as the full disk it is.
        tmp = _ray_temp_root()
        if shutil.disk_usage(tmp).free < RAY_SESSION_MIN_BYTES:
            raise OSError(errno.ENOSPC, "no space left to start a local Ray instance", tmp) from exc
        raise
    started = ray_watchdog.children(os.getpid()) - before
    watchdog = ray_watchdog.start(started)
    node_ip = ray.util.get_node_ip_address()
    if not ipaddress.ip_address(node_ip).is_loopback:
        ray.shutdown()
        ray_watchdog.stop(watchdog)
        raise RuntimeError(f"the local Ray instance took node address {node_ip}, not loopback: "
                           "this Ray version decides bind addresses differently (search/ray_executor.py)")
    return watchdog


class RayExecutor:
    """Trials as Ray Tune trials; a local Ray instance unless ``settings.ray_address`` is given."""

    name = "ray"

    def __init__(self, ctx: TrialContext, settings: ExecutorSettings, max_rounds: int):
        self.settings, self.max_rounds = settings, max_rounds
        self.started_ray = False
        self.watchdog: subprocess.Popen | None = None
        for noisy in ("ray", "ray.tune", "ray.train", "ray.air"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        if not ray.is_initialized():
            t0 = time.perf_counter()
            with _stop_handlers_kept():   # not Ray's SIGTERM handler, which aborts with a stack trace
                if settings.ray_address:
                    ray.init(address=settings.ray_address, log_to_driver=False, configure_logging=False)
                else:
                    self.watchdog = _start_local_ray()
                    self.started_ray = True
            log.info("ray: %s in %.1f s, %s", "joined " + settings.ray_address if settings.ray_address
                     else "started a local instance", time.perf_counter() - t0, self._resources_text())
        try:
            self._setup(ctx)
        except BaseException:
            self.close()
            raise

    def _setup(self, ctx: TrialContext) -> None:
        settings, max_rounds = self.settings, self.max_rounds
        self.store = _ModelStore.remote()
        self.tmp = tempfile.mkdtemp(prefix="scal-tune-")
        self.feed = _Feed()
        self._n_batches = 0
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        # Each trial trains on ctx.threads torch threads (`--threads`), as it would locally; the
        # CPUs it reserves (`--cpus-per-trial`, at least that many) only decide how many run at once.
        trainable = tune.with_resources(
            tune.with_parameters(_trainable, ctx=ctx, store=self.store),
            {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial},
        )
        scheduler = _BatchASHA(max_rounds + 1) if settings.scheduler == "asha" else FIFOScheduler()
        self.tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=self.feed, num_samples=-1, scheduler=scheduler, max_concurrent_trials=self.concurrency,
                # On the local instance a warm worker takes the next trial at once (a probe starts
                # in 0.2 s, not 2 s). On a joined cluster every trial gets a fresh worker: with reuse,
                # the warm worker would take every trial shorter than a new worker's start-up and
                # leave the other nodes idle.
                reuse_actors=not settings.ray_address, metric=_METRIC, mode="min",
                trial_dirname_creator=lambda t: t.trial_id),
            run_config=tune.RunConfig(name="scal", storage_path=self.tmp, verbose=0,
                                      callbacks=[_Collector(self.feed, self.store, ctx)]),
        )

    def _resources_text(self) -> str:
        r = ray.cluster_resources()
        return f"{len(ray.nodes())} node(s), {r.get('CPU', 0):g} CPUs, {r.get('GPU', 0):g} GPUs"

    @property
    def concurrency(self) -> int:
        r = ray.cluster_resources()
        slots = r.get("CPU", 0) / self.settings.cpus_per_trial
        if self.settings.gpus_per_trial > 0:
            slots = min(slots, r.get("GPU", 0) / self.settings.gpus_per_trial)
        if self.settings.max_concurrent:
            slots = min(slots, self.settings.max_concurrent)
        return max(1, int(slots))

    def _fit(self) -> None:
        try:
            self.tuner.fit()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread by `run`
            self._error = exc

    def run(self, proposer: Proposer, role: str, on_done: OnDone, keep_models: bool = False,
            watcher: TrialWatcher | None = None) -> None:
        """Run one batch to its end; ``on_done`` (and ``watcher``) are called here, in the caller's thread."""
        self._n_batches += 1
        batch = _Batch(self._n_batches, proposer, role, keep_models)
        self.feed.set_batch(batch)
        if self._thread is None:
            self._thread = threading.Thread(target=self._fit, name="scal-tune", daemon=True)
            self._thread.start()
        live: dict[str, Any] = {}   # Ray trial id -> the watcher's handle of its run
        try:
            while True:
                try:
                    out = batch.outcomes.get(timeout=0.5)
                except queue.Empty:
                    if not self._thread.is_alive():
                        raise RuntimeError(f"the Ray Tune run ended early: {self._error!r}") from self._error
                    continue
                if out is None:
                    return
                if isinstance(out, _Live):
                    if watcher is not None and out.metrics is None:
                        live[out.trial_id] = watcher.started(out.spec, out.ms)
                    elif watcher is not None and out.trial_id in live:
                        watcher.round(live[out.trial_id], out.metrics, out.step)
                    continue
                out.live = live.pop(out.key, None)
                on_done(out)
        finally:
            with self.feed.lock:
                self.feed.batches.pop(batch.id, None)
            self.feed.set_batch(None)

    def close(self) -> None:
        feed, thread = getattr(self, "feed", None), getattr(self, "_thread", None)
        if feed is not None:
            feed.close()
        if thread is not None:
            thread.join(timeout=30)
        if getattr(self, "tmp", None):
            shutil.rmtree(self.tmp, ignore_errors=True)
        try:
            ray.kill(self.store)
        except Exception:  # noqa: BLE001 - the cluster may already be gone, or the store never made
            pass
        if self.started_ray:
            ray.shutdown()
        if self.watchdog is not None:
            ray_watchdog.stop(self.watchdog)
            self.watchdog = None

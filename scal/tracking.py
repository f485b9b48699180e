"""MLflow tracking for a study: the experiment, the parent run, a child run per trial.

Layout in the store (names in `scal.keys`):

- one experiment per study name;
- a parent run per study (tag ``scal.role=study``) holding the subset plan, the search settings,
  the learning curve ``best_val_error`` and model-size curve ``best_n_params`` as metrics whose
  *step is the subset size m*, the fits (JSON) and plots;
- a child run per trial (``mlflow.parentRunId`` = the parent) with params (domain, unit,
  subset size, size knobs, n_params, lr, seed, budget), per-round metrics, the minimum
  validation error and status tags; a failed trial's traceback as ``error/traceback.txt``.
- dataset inputs (`scal.datasets`): the pool on the parent, its subset on each trial; every run
  tagged with the code that made it (`scal.provenance`); descriptions (`scal.story`) on the
  experiment and the parent.

A trial's run is created (RUNNING) when the trial starts (`StudyTracker.start_trial`), each
validation round is logged as it arrives (`log_round`, one `MlflowClient.log_batch` a round), and
`log_trial` adds the summary and ends it: the UI shows a long trial's curve while it trains.
Under ``mlflow run`` the entry point's run (``MLFLOW_RUN_ID``) becomes the parent run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import mlflow
from mlflow.entities import Metric, Param, Run, RunTag
from mlflow.tracking import MlflowClient

from domains.protocol import TrialResult, TrialSpec, trained_flops
from scal import keys, provenance
from scal.datasets import CONTEXT_TRIAL, UnitsDataset
from analysis.jsonsafe import jsonable
from scal.faults import store_init_lock
from scal.interrupts import deferred_interrupt
from scal.names import artifact_location

log = logging.getLogger(__name__)

_MAX_METRICS, _MAX_PARAMS, _MAX_TAGS = 1000, 100, 100  # MLflow's log_batch limits
_MAX_NOTE, _MAX_EXPERIMENT_NOTE = 8000, 20000   # MLflow's longest run / experiment tag values
TRACEBACK_ARTIFACT = "error/traceback.txt"      # a failed trial's traceback, in its run's artifacts
PROJECT_ENTRY_POINT_TAG = "mlflow.project.entryPoint"   # MLflow tags the run `mlflow run` starts with it


def registry_uri(tracking_uri: str) -> str:
    """The model registry of a study on ``tracking_uri``: ``MLFLOW_REGISTRY_URI`` where the
    environment sets it (a shared registry beside private tracking stores), else the tracking
    store itself (MLflow's own default)."""
    return os.environ.get("MLFLOW_REGISTRY_URI") or tracking_uri


def open_client(uri: str) -> MlflowClient:
    """A client on the store ``uri`` (`scal.checks.store_uri` resolves a command's), made once per
    command and passed to everything that reads or writes: nothing sets MLflow's global tracking or
    registry URI, so two stores in one process never mix. A new sqlite store is created and migrated on first use,
    under a file lock: several processes starting at once on one new store would otherwise race
    in MLflow's schema migration (``duplicate column name``)."""
    with store_init_lock(uri):
        client = MlflowClient(uri, registry_uri(uri))     # opens (creates, migrates) the tracking store
        client.search_experiments(max_results=1)          # the tracking tables
        client.search_registered_models(max_results=1)    # the registry's (the same file unless MLFLOW_REGISTRY_URI)
    return client


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != os.getpid()


def result_from_run(spec: TrialSpec, run: Run) -> TrialResult:
    """A finished trial read back from its MLflow run (what a resumed study reuses)."""
    m, nan = run.data.metrics, float("nan")
    return TrialResult(
        spec=spec, n_params=int(run.data.params.get(keys.P_N_PARAMS, 0)),
        min_val_error=m.get(keys.M_MIN_VAL_ERROR, nan), min_val_loss=m.get(keys.M_MIN_VAL_LOSS, nan),
        best_epoch=m.get(keys.M_BEST_EPOCH, nan), best_step=int(m.get(keys.M_BEST_STEP, 0)),
        final_train_loss=m.get(keys.M_FINAL_TRAIN_LOSS, nan), steps=int(m.get(keys.M_STEPS, 0)),
        epochs=m.get(keys.M_EPOCHS, nan), wall_time_s=m.get(keys.M_WALL_TIME_S, 0.0),
        status=run.data.tags.get(keys.STATUS, "ok"), reason=run.data.tags.get(keys.REASON, ""),
        extra={k[len(keys.BEST_EXTRA_PREFIX):]: v for k, v in m.items() if k.startswith(keys.best_extra("val_"))},
    )


def _trained_flops(spec: TrialSpec, result: TrialResult) -> float:
    """The FLOPs the trial trained (`domains.protocol.trained_flops`: every step, k N per unit)."""
    import domains   # the registry (every domain's module): only once a trial is logged

    return trained_flops(domains.get(spec.domain), result.n_params, result.epochs, spec.subset_size)


def _now_ms() -> int:
    return int(time.time() * 1000)


def log_batch(client: MlflowClient, run_id: str, metrics: Iterable[Metric] = (), params: Mapping[str, Any] | None = None,
              tags: Mapping[str, Any] | None = None) -> None:
    """``log_batch`` in chunks that respect MLflow's per-call limits."""
    metrics = list(metrics)
    params_l = [Param(k, str(v)) for k, v in (params or {}).items()]
    tags_l = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    while metrics or params_l or tags_l:
        client.log_batch(run_id, metrics=metrics[:_MAX_METRICS], params=params_l[:_MAX_PARAMS], tags=tags_l[:_MAX_TAGS])
        metrics, params_l, tags_l = metrics[_MAX_METRICS:], params_l[_MAX_PARAMS:], tags_l[_MAX_TAGS:]


def trial_params(spec: TrialSpec, n_params: int | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {
        keys.P_DOMAIN: spec.domain,
        keys.P_UNIT: spec.unit,
        keys.P_SUBSET_SIZE: spec.subset_size,
        keys.P_LR: f"{spec.lr:.6g}",
        keys.P_SEED: spec.seed,
        keys.P_BUDGET: spec.budget,
        "data_seed": spec.data_seed,
    }
    if n_params is not None:
        p[keys.P_N_PARAMS] = n_params
    for k, v in sorted(spec.size.items()):
        p[keys.P_SIZE_PREFIX + k] = v
    for k, v in spec.to_dict()["train"].items():
        p[keys.P_TRAIN_PREFIX + k] = v
    return p


def _project_run_id(client: MlflowClient) -> str | None:
    """The run `mlflow run` started for this entry point (``MLFLOW_RUN_ID``, MLflow's variable), or
    None. A MLFLOW_RUN_ID left over in a shell, or naming a run `mlflow run` did not start, is
    refused in one line: attaching a study to someone else's run would scatter its trials there."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return None
    why = "unset MLFLOW_RUN_ID for a study of its own"
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise LookupError(f"MLFLOW_RUN_ID={run_id} names no run in {client.tracking_uri}; {why}") from None
    if PROJECT_ENTRY_POINT_TAG not in run.data.tags or run.info.status != "RUNNING":
        raise ValueError(f"MLFLOW_RUN_ID={run_id} names a {run.info.status} run that `mlflow run` did not start for this "
                         f"command; {why}")
    return run_id


class StudyTracker:
    """Owns one study's experiment and parent run; logs trials as child runs."""

    def __init__(self, study: str, client: MlflowClient, attach_run_id: str | None = None):
        self.client = client          # the command's one client (`open_client`)
        self.uri = client.tracking_uri
        self.study = study
        self.live: dict[str, int] = {}   # trial runs this tracker opened and has not ended -> rounds logged
        # Under `mlflow run`, the entry point's run (MLFLOW_RUN_ID) is the study's parent run.
        attached = attach_run_id or _project_run_id(client)
        if attached:
            run = self.client.get_run(attached)
            self.experiment_id = run.info.experiment_id
            self.parent_run_id: str | None = attached
            self.owns_parent = False
        else:
            exp = self.client.get_experiment_by_name(study)
            self.experiment_id = exp.experiment_id if exp else self.client.create_experiment(
                study, artifact_location=artifact_location(self.uri, study),
                tags={keys.EXPERIMENT_KIND: keys.EXPERIMENT_KIND_TRAINING})
            self.parent_run_id = None
            self.owns_parent = True

    @classmethod
    def for_run(cls, run_id: str, client: MlflowClient) -> "StudyTracker":
        """A tracker on an existing study run (for `scal analyze`)."""
        try:
            run = client.get_run(run_id)
        except mlflow.exceptions.MlflowException:
            raise LookupError(f"no run {run_id!r} in {client.tracking_uri}") from None
        study = run.data.tags.get(keys.STUDY, client.get_experiment(run.info.experiment_id).name)
        return cls(study, client, attach_run_id=run_id)

    def start(self, params: Mapping[str, Any], run_name: str, tags: Mapping[str, Any] | None = None) -> str:
        """Create the parent run (or take the attached / resumed one) and log the study's settings."""
        # Under `mlflow run` MLflow has tagged the run with its own source commit already.
        tags = {keys.ROLE: keys.ROLE_STUDY, keys.STUDY: self.study, keys.DRIVER: f"{socket.gethostname()}:{os.getpid()}",
                **provenance.code_tags(mlflow_commit=self.owns_parent), **(tags or {})}
        if self.parent_run_id is None:
            run = self.client.create_run(self.experiment_id, tags={keys.RUN_NAME: str(run_name)}, run_name=run_name)
            self.parent_run_id = run.info.run_id
        log_batch(self.client, self.parent_run_id, params=params, tags=tags)
        return self.parent_run_id

    def finish(self, status: str = "FINISHED") -> None:
        if self.owns_parent and self.parent_run_id:
            self.client.set_terminated(self.parent_run_id, status)

    @contextlib.contextmanager
    def closing(self):
        """End the parent run FINISHED, or KILLED on Ctrl-C, or FAILED on any other exception.

        On the way out of a failure, marking the run is best effort: when the store itself is
        what failed (deleted, read-only), the original error is the one to report, and a run
        left RUNNING by a dead driver is resumed by the next identical command anyway."""
        try:
            yield self
        except BaseException as exc:
            try:
                self.finish("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            except Exception as mark:  # noqa: BLE001 - the store may be the fault
                log.debug("could not mark study run %s as ended: %s", self.parent_run_id, str(mark).splitlines()[0])
            raise
        self.finish("FINISHED")

    def _trial_tags(self, spec: TrialSpec, role: str) -> dict[str, str]:
        """The tags a trial's run has from its start: what it is, where it belongs, which code ran it."""
        name = f"m{spec.subset_size}-" + "-".join(f"{k}{v}" for k, v in sorted(spec.size.items())) + f"-lr{spec.lr:.2g}-s{spec.seed}"
        tags = {keys.ROLE: role, keys.TRIAL_HASH: spec.trial_hash(), keys.STUDY: self.study, keys.RUN_NAME: name,
                **provenance.code_tags()}
        if self.parent_run_id:
            tags[keys.PARENT] = self.parent_run_id
        return tags

    def start_trial(self, spec: TrialSpec, role: str, start_ms: int | None = None,
                    dataset: UnitsDataset | None = None) -> str:
        """Open a trial's run as the trial starts: RUNNING, with its params and its subset's dataset
        input, no result yet. `log_round` adds its rounds, `log_trial` ends it. A run left open by a
        crash is marked KILLED when the study resumes (`resume`), and its trial trained again."""
        tags = self._trial_tags(spec, role)
        with deferred_interrupt():   # a Ctrl-C here would leave a run nobody knows to end
            run_id = self.client.create_run(self.experiment_id, tags=tags, run_name=tags[keys.RUN_NAME],
                                            start_time=start_ms).info.run_id
            self.live[run_id] = 0
        log_batch(self.client, run_id, params=trial_params(spec))
        if dataset is not None:
            self.client.log_inputs(run_id, datasets=[dataset.as_input(CONTEXT_TRIAL)])
        return run_id

    def log_round(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        """One validation round of an open trial run, as it arrives (one call)."""
        ts = _now_ms()
        log_batch(self.client, run_id, metrics=[Metric(k, float(v), ts, int(step)) for k, v in metrics.items()])
        self.live[run_id] = self.live.get(run_id, 0) + 1

    def end_live(self, status: str) -> None:
        """End every trial run still open (its trial was training when the study stopped) with
        ``status``, best effort as for the parent (`closing`): its trial has no result, and a
        resumed study trains it again."""
        for run_id in list(self.live):
            try:
                self.client.set_terminated(run_id, status)
            except Exception as mark:  # noqa: BLE001 - the store may be the fault
                log.debug("could not mark trial run %s as ended: %s", run_id, str(mark).splitlines()[0])
            self.live.pop(run_id, None)

    def log_trial(self, spec: TrialSpec, result: TrialResult, history: list[tuple[Mapping[str, float], int]],
                  role: str, extra_tags: Mapping[str, Any] | None = None, start_ms: int | None = None,
                  end_ms: int | None = None, run_id: str | None = None, dataset: UnitsDataset | None = None) -> str:
        """End a trial's run with its result, in a few batched calls: the run `start_trial` opened
        (``run_id``: the rounds it has not logged yet are logged now), or a new one written whole
        (a reference run, or a trial that failed before it started).

        The run's start and end times are the trial's own (under Ray, trials overlap in time
        and the MLflow UI shows it), not the moment the driver logged it. A failed trial's full
        traceback is kept as the artifact `TRACEBACK_ARTIFACT`; the `keys.REASON` tag, its one-line error.
        """
        tags = {keys.STATUS: result.status, **(extra_tags or {})}
        if result.reason:
            tags[keys.REASON] = result.reason[:4000]
        tags = {k: str(v) for k, v in tags.items()}   # the REST store takes strings only
        ts = _now_ms()
        logged = self.live.get(run_id, 0) if run_id else 0
        metrics = [Metric(k, float(v), ts, step) for values, step in history[logged:] for k, v in values.items()]
        summary = {
            keys.M_MIN_VAL_ERROR: result.min_val_error, keys.M_MIN_VAL_LOSS: result.min_val_loss,
            keys.M_BEST_EPOCH: result.best_epoch, keys.M_FINAL_TRAIN_LOSS: result.final_train_loss,
            keys.M_WALL_TIME_S: result.wall_time_s, keys.M_STEPS: result.steps,
            keys.M_BEST_STEP: result.best_step, keys.M_EPOCHS: result.epochs, keys.M_ROUNDS: len(history),
            keys.M_TRAIN_FLOPS: _trained_flops(spec, result),
            **{keys.best_extra(k): v for k, v in result.extra.items()},
        }
        metrics += [Metric(k, float(v), ts, result.steps) for k, v in summary.items()]
        with deferred_interrupt():
            if run_id is None:
                base = self._trial_tags(spec, role)
                run_id = self.client.create_run(self.experiment_id, tags={**base, **tags}, run_name=base[keys.RUN_NAME],
                                                start_time=start_ms).info.run_id
                params = trial_params(spec, result.n_params)
            else:
                params = {keys.P_N_PARAMS: result.n_params}   # the rest were logged when it started
                dataset = None
            try:
                if dataset is not None:
                    self.client.log_inputs(run_id, datasets=[dataset.as_input(CONTEXT_TRIAL)])
                log_batch(self.client, run_id, metrics=metrics, params=params, tags=tags)
                if result.traceback:
                    self.client.log_text(run_id, result.traceback, TRACEBACK_ARTIFACT)
            except Exception:
                self.live.pop(run_id, None)
                self.client.set_terminated(run_id, "FAILED")
                raise
            self.client.set_terminated(run_id, "FINISHED" if result.status != "failed" else "FAILED", end_time=end_ms)
            self.live.pop(run_id, None)
        return run_id

    # --- descriptions and datasets ----------------------------------------------------------------
    def describe_experiment(self, text: str) -> None:
        """The experiment's description (`keys.NOTE`), unless it has one: one written in the UI stays."""
        if not self.client.get_experiment(self.experiment_id).tags.get(keys.NOTE):
            self.client.set_experiment_tag(self.experiment_id, keys.NOTE, text[:_MAX_EXPERIMENT_NOTE])

    def set_note(self, text: str) -> None:
        """The study run's description (`keys.NOTE`): replaced by each analysis."""
        self.client.set_tag(self.parent_run_id, keys.NOTE, text[:_MAX_NOTE])

    def log_input(self, dataset: UnitsDataset, context: str) -> None:
        """A dataset input of the study run (its pool)."""
        self.client.log_inputs(self.parent_run_id, datasets=[dataset.as_input(context)])

    # --- resume ---------------------------------------------------------------------------------
    def find_unfinished(self, fingerprint: str) -> Run | None:
        """The newest study run of this experiment with ``fingerprint`` that did not finish."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{keys.ROLE}` = '{keys.ROLE_STUDY}' and tags.`{keys.FINGERPRINT}` = '{fingerprint}'",
            order_by=["attributes.start_time DESC"], max_results=1)
        return runs[0] if runs and runs[0].info.status != "FINISHED" else None

    def resume(self, run: Run) -> list[Run]:
        """Continue the study run ``run``: returns its finished trial runs (statuses in
        `keys.DONE_STATUSES`), including the reference runs of reused trials.

        Refuses a run whose driver is still alive on this host. Child runs left RUNNING (the
        driver was killed while writing one) are marked KILLED and their trials run again.
        """
        driver = run.data.tags.get(keys.DRIVER, "")
        host, _, pid = driver.rpartition(":")
        if run.info.status == "RUNNING" and host == socket.gethostname() and pid.isdigit() and _alive(int(pid)):
            raise ValueError(f"study run {run.info.run_id} is still running (pid {pid}); stop it first, "
                             "or start a new study with --no-resume")
        self.parent_run_id = run.info.run_id
        self.client.update_run(run.info.run_id, status="RUNNING")
        done: list[Run] = []
        for child in self._children():
            h, status = child.data.tags.get(keys.TRIAL_HASH), child.data.tags.get(keys.STATUS)
            if child.info.status == "RUNNING":
                self.client.set_terminated(child.info.run_id, "KILLED")
            elif h and status in keys.DONE_STATUSES and child.info.status == "FINISHED":
                done.append(child)
        return done

    def _children(self) -> list[Run]:
        out, token = [], None
        while True:
            page = self.client.search_runs([self.experiment_id], f"tags.`{keys.PARENT}` = '{self.parent_run_id}'",
                                           max_results=1000, page_token=token)
            out.extend(page)
            token = page.token
            if not token:
                return out

    def curve_steps(self) -> set[int]:
        """Subset sizes whose learning-curve point the parent run already has."""
        return {m.step for m in self.client.get_metric_history(self.parent_run_id, keys.M_BEST_VAL_ERROR)}

    def log_curve_point(self, subset_size: int, best_val_error: float, best_n_params: int) -> None:
        ts = _now_ms()
        log_batch(self.client, self.parent_run_id, metrics=[
            Metric(keys.M_BEST_VAL_ERROR, float(best_val_error), ts, int(subset_size)),
            Metric(keys.M_BEST_N_PARAMS, float(best_n_params), ts, int(subset_size)),
        ])

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        # NaN and infinity as `analysis.jsonsafe` says: json.dumps alone writes NaN/Infinity, invalid JSON.
        self.client.log_text(self.parent_run_id, json.dumps(jsonable(obj), indent=2, default=float), artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.parent_run_id, str(path), artifact_path)

    def log_summary(self, metrics: Mapping[str, float], params: Mapping[str, Any] | None = None) -> None:
        ts = _now_ms()
        log_batch(self.client, self.parent_run_id, metrics=[Metric(k, float(v), ts, 0) for k, v in metrics.items()],
                  params=params)

"""Read a study back from MLflow (never from memory) into pandas: the analysis's MLflow glue.

`read_trials` returns one row per child run of the study's parent run; `best_fit_points` turns
them into the learning-curve points with the one best-fit rule the study itself used while it ran
(`search.bestfit`), so the curve, the registry and the fit name the same configurations.

Every function reads through the `MlflowClient` it is given (`scal.tracking.open_client`, made
once per command), so what it reads is the store that client names and nothing else.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import numpy as np
import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from domains.protocol import TrainSettings, trained_flops
from scal import keys
from search import bestfit

# Runs per page of a search: MLflow's stores cap one page (50,000 for the SQL store).
PAGE_SIZE = 1000


class StudyNotFound(LookupError):
    """No such run, or the run is not a scal study."""


def read_trials(client: MlflowClient, parent_run_id: str) -> pd.DataFrame:
    """Every trial of the study as a DataFrame (columns ``params.*``, ``metrics.*``, ``tags.*``,
    as `mlflow.search_runs` gives them)."""
    parent = _run(client, parent_run_id)
    if parent.data.tags.get(keys.ROLE) != keys.ROLE_STUDY:
        raise StudyNotFound(f"run {parent_run_id} is not a scal study (tag {keys.ROLE} != {keys.ROLE_STUDY})")
    runs, token = [], None
    while True:
        page = client.search_runs([parent.info.experiment_id], f"tags.`{keys.PARENT}` = '{parent_run_id}'",
                                  max_results=PAGE_SIZE, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs_frame(runs)


def runs_frame(runs: Iterable[Run]) -> pd.DataFrame:
    """Runs as one row each: run_id, experiment_id, status, start_time and end_time (UTC), then
    ``metrics.<name>``, ``params.<name>`` and ``tags.<name>``; NaN where a run lacks one (what
    `mlflow.search_runs` gives under pandas 3, whose string columns hold NaN for None)."""
    rows = [{"run_id": r.info.run_id, "experiment_id": r.info.experiment_id, "status": r.info.status,
             "start_time": pd.to_datetime(r.info.start_time, unit="ms", utc=True),
             "end_time": pd.to_datetime(r.info.end_time, unit="ms", utc=True),
             **{f"metrics.{k}": v for k, v in r.data.metrics.items()},
             **{f"params.{k}": v for k, v in r.data.params.items()},
             **{f"tags.{k}": v for k, v in r.data.tags.items()}} for r in runs]
    return pd.DataFrame(rows)


def study_params(client: MlflowClient, parent_run_id: str) -> dict[str, str]:
    """The params of a study's parent run (study.metric, study.best_guess_error, study.domain, ...)."""
    return dict(_run(client, parent_run_id).data.params)


def _run(client: MlflowClient, run_id: str) -> Run:
    try:
        return client.get_run(run_id)
    except MlflowException:
        raise StudyNotFound(f"no run {run_id!r} in {client.tracking_uri}") from None


def latest_study(client: MlflowClient, experiment: str) -> str:
    """Run id of the newest study run in the experiment named ``experiment``."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise StudyNotFound(f"no experiment {experiment!r} in {client.tracking_uri}")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{keys.ROLE}` = '{keys.ROLE_STUDY}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise StudyNotFound(f"experiment {experiment!r} has no scal study run")
    return runs[0].info.run_id


def config_scores(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (subset, configuration) of the grid, scored by the one best-fit rule
    (`search.bestfit`): ``val_error`` is the configuration's score (median over its counting
    seeds), ``val_error_min``/``val_error_max``/``seed_errors``/``n_seeds`` describe those seeds,
    ``n_trials`` the seeds it was given (any status; a racing search gives raced-out
    configurations one), ``wall_time_s`` and ``epochs`` the medians over its counting seeds, and
    ``best_fit``: whether the rule picks it for its subset."""
    col_role = f"tags.{keys.ROLE}"
    if trials.empty or col_role not in trials:
        return pd.DataFrame()
    grid = trials[trials[col_role] == keys.ROLE_GRID]
    if grid.empty:
        return pd.DataFrame()
    size_cols = sorted(c for c in grid.columns if c.startswith(f"params.{keys.P_SIZE_PREFIX}"))
    rows = []
    for size, sub in grid.groupby(f"params.{keys.P_SUBSET_SIZE}"):
        records = trial_records(sub, size_cols)
        best = bestfit.choose(records)
        for summary in bestfit.summarize(records):
            counted = summary.counted
            if not counted:
                continue
            first = counted[0].ref
            vals = [r.value for r in counted]
            rows.append({
                "size": int(size), **{c.removeprefix("params."): first[c] for c in size_cols},
                "lr": float(first[f"params.{keys.P_LR}"]),
                "val_error": summary.score, "val_error_min": min(vals), "val_error_max": max(vals),
                "n_seeds": len(counted), "seed_errors": vals, "n_params": summary.n_params,
                "n_trials": summary.seeds_given,
                "wall_time_s": _median(f"metrics.{keys.M_WALL_TIME_S}", counted),
                "epochs": _median(f"metrics.{keys.M_EPOCHS}", counted),
                "cut_short": float(np.mean([_cut_short(r.ref) for r in counted])),
                "trial_hash": bestfit.representative(summary).ref[f"tags.{keys.TRIAL_HASH}"],
                "best_fit": best is not None and summary.config == best.config,
            })
    return pd.DataFrame(rows)


def trial_records(sub: pd.DataFrame, size_cols: list[str]) -> list[bestfit.TrialRecord]:
    """A subset's grid runs as the rule's records; a configuration is its size knobs and lr as logged."""
    err, n_params = f"metrics.{keys.M_MIN_VAL_ERROR}", f"params.{keys.P_N_PARAMS}"
    out = []
    for _, row in sub.iterrows():
        value = pd.to_numeric(row.get(err), errors="coerce")
        count = pd.to_numeric(row.get(n_params), errors="coerce")
        out.append(bestfit.TrialRecord(
            config=bestfit.config_key(row[f"params.{keys.P_SUBSET_SIZE}"],
                                      {c.removeprefix(f"params.{keys.P_SIZE_PREFIX}"): row[c] for c in size_cols},
                                      row[f"params.{keys.P_LR}"]),
            seed=int(row[f"params.{keys.P_SEED}"]), status=str(row.get(f"tags.{keys.STATUS}")),
            value=float(value) if pd.notna(value) else float("nan"),
            n_params=int(count) if pd.notna(count) else 0, ref=row))
    return out


def _cut_short(row) -> bool:
    """The trial was still at its best when its budget ran out: its best round is its last one
    and it used all its steps (`TrainSettings.step_budget`, from the logged ``train.*`` params
    and the subset's steps per pass, steps / epochs) or all its rounds. A trial that early
    stopping ended is not cut short even when its error (not its loss) peaked last."""
    metric = {k: pd.to_numeric(row.get(f"metrics.{k}"), errors="coerce")
              for k in (keys.M_STEPS, keys.M_BEST_STEP, keys.M_EPOCHS, keys.M_ROUNDS)}
    if any(pd.isna(v) for v in metric.values()) or metric[keys.M_EPOCHS] <= 0:
        return False
    fields = {f.name: f.type for f in dataclasses.fields(TrainSettings)}
    given = {}
    for name in fields:
        v = pd.to_numeric(row.get(f"params.{keys.P_TRAIN_PREFIX}{name}"), errors="coerce")
        if pd.notna(v):
            given[name] = float(v) if fields[name] == "float" else int(v)
    settings = TrainSettings(**given)
    steps = metric[keys.M_STEPS]
    budget = settings.step_budget(steps / metric[keys.M_EPOCHS])
    out_of_budget = steps >= budget or metric[keys.M_ROUNDS] >= settings.max_rounds
    return bool(metric[keys.M_BEST_STEP] >= steps and out_of_budget)


def _median(col: str, counted) -> float:
    vals = [pd.to_numeric(r.ref.get(col), errors="coerce") for r in counted]
    vals = [float(v) for v in vals if pd.notna(v)]
    return float(np.median(vals)) if vals else float("nan")


def trial_flops(trials: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Each trial's training FLOPs, and whether that number was estimated here: the logged metric
    ``train_flops`` (`domains.protocol.trained_flops`, every step); for a run of a store written
    before scal logged it, the same rule applied to its logged epochs, n_params and subset size
    (estimated). NaN where neither is there (a failed trial)."""
    import domains   # the registry: each trial's own domain's train_flops

    col = f"metrics.{keys.M_TRAIN_FLOPS}"
    logged = pd.to_numeric(trials[col], errors="coerce") if col in trials else pd.Series(np.nan, index=trials.index)
    estimated = pd.Series(False, index=trials.index)
    flops = logged.astype(float).copy()
    for i in trials.index[logged.isna()]:
        row = trials.loc[i]
        vals = [pd.to_numeric(row.get(c), errors="coerce") for c in
                (f"params.{keys.P_N_PARAMS}", f"metrics.{keys.M_EPOCHS}", f"params.{keys.P_SUBSET_SIZE}")]
        dom = domains.REGISTRY.get(str(row.get(f"params.{keys.P_DOMAIN}")))
        if dom is not None and all(pd.notna(v) for v in vals):
            flops[i] = trained_flops(dom, *(float(v) for v in vals))
            estimated[i] = True
    return flops, estimated


def best_fit_points(trials: pd.DataFrame) -> pd.DataFrame:
    """The best-fit configuration of every subset, by the one rule (`search.bestfit.choose`) over
    the same grid trials the study scored while it ran."""
    scores = config_scores(trials)
    if scores.empty:
        return scores
    points = scores[scores["best_fit"]].drop(columns="best_fit")
    return points.sort_values("size").reset_index(drop=True)

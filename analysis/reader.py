"""Read a study back from MLflow (never from memory) into pandas.

`read_trials` returns one row per child run of the study's parent run; `best_fit_points` turns
them into the learning-curve points: for every subset, every grid configuration is scored by
the median over its seeds of the minimum validation error, and the lowest score wins.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd

from scal import keys


class StudyNotFound(LookupError):
    """No such run, or the run is not a scal study."""


def read_trials(tracking_uri: str, parent_run_id: str) -> pd.DataFrame:
    """Every trial of the study as a DataFrame (columns ``params.*``, ``metrics.*``, ``tags.*``)."""
    client = mlflow.tracking.MlflowClient(tracking_uri)
    try:
        parent = client.get_run(parent_run_id)
    except mlflow.exceptions.MlflowException:
        raise StudyNotFound(f"no run {parent_run_id!r} in {tracking_uri}") from None
    if parent.data.tags.get(keys.ROLE) != keys.ROLE_STUDY:
        raise StudyNotFound(f"run {parent_run_id} is not a scal study (tag {keys.ROLE} != {keys.ROLE_STUDY})")
    df = mlflow.search_runs(
        experiment_ids=[parent.info.experiment_id],
        filter_string=f"tags.`{keys.PARENT}` = '{parent_run_id}'",
        output_format="pandas",
        max_results=100_000,
    )
    return df


def study_params(tracking_uri: str, parent_run_id: str) -> dict[str, str]:
    """The params of a study's parent run (study.metric, study.best_guess_error, study.domain, ...)."""
    client = mlflow.tracking.MlflowClient(tracking_uri)
    try:
        return dict(client.get_run(parent_run_id).data.params)
    except mlflow.exceptions.MlflowException:
        raise StudyNotFound(f"no run {parent_run_id!r} in {tracking_uri}") from None


def latest_study(tracking_uri: str, experiment: str) -> str:
    """Run id of the newest study run in the experiment named ``experiment``."""
    client = mlflow.tracking.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise StudyNotFound(f"no experiment {experiment!r} in {tracking_uri}")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{keys.ROLE}` = '{keys.ROLE_STUDY}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise StudyNotFound(f"experiment {experiment!r} has no scal study run")
    return runs[0].info.run_id


def config_scores(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (subset, configuration) of the grid: median, spread, count and the values over
    seeds (``seed_errors``), the median wall time and epochs of its trials, and ``n_trials``, the
    seeds it was given (any status; a racing search gives raced-out configurations one)."""
    col_role, col_status = f"tags.{keys.ROLE}", f"tags.{keys.STATUS}"
    err = f"metrics.{keys.M_MIN_VAL_ERROR}"
    if trials.empty or col_role not in trials:
        return pd.DataFrame()
    grid = trials[trials[col_role] == keys.ROLE_GRID]
    ok = grid[grid[col_status] == "ok"].copy()
    ok = ok[np.isfinite(ok[err].astype(float))]
    if ok.empty:
        return pd.DataFrame()
    size_cols = sorted(c for c in ok.columns if c.startswith(f"params.{keys.P_SIZE_PREFIX}"))
    cfg_cols = [f"params.{keys.P_SUBSET_SIZE}", *size_cols, f"params.{keys.P_LR}"]
    ok[err] = ok[err].astype(float)
    wall, epochs = f"metrics.{keys.M_WALL_TIME_S}", f"metrics.{keys.M_EPOCHS}"
    for col in (wall, epochs):
        ok[col] = ok[col].astype(float) if col in ok else np.nan
    grouped = ok.groupby(cfg_cols, dropna=False).agg(
        val_error=(err, "median"), val_error_min=(err, "min"), val_error_max=(err, "max"),
        n_seeds=(err, "size"), seed_errors=(err, list), n_params=(f"params.{keys.P_N_PARAMS}", "first"),
        wall_time_s=(wall, "median"), epochs=(epochs, "median"),
    ).reset_index()
    # distinct seeds, not rows: a seed re-run after a failure must not count twice
    given = grid.groupby(cfg_cols, dropna=False)[f"params.{keys.P_SEED}"].nunique().rename("n_trials").reset_index()
    grouped = grouped.merge(given, on=cfg_cols, how="left")
    grouped = grouped.rename(columns={f"params.{keys.P_SUBSET_SIZE}": "size", f"params.{keys.P_LR}": "lr",
                                      **{c: c.removeprefix("params.") for c in size_cols}})
    grouped["size"] = grouped["size"].astype(int)
    grouped["n_params"] = grouped["n_params"].astype(int)
    grouped["lr"] = grouped["lr"].astype(float)
    return grouped


def best_fit_points(trials: pd.DataFrame) -> pd.DataFrame:
    """The best-fit configuration of every subset (lowest median; ties: fewer parameters), among
    the configurations given the subset's full number of seeds: one raced out after its first seed
    (`search.refine.RacingProposer`) does not compete on that seed alone."""
    scores = config_scores(trials)
    if scores.empty:
        return scores
    full = scores.groupby("size")["n_trials"].transform("max")
    scores = scores[scores["n_trials"] == full]
    scores = scores.sort_values(["size", "val_error", "n_params"])
    return scores.groupby("size", as_index=False).first().sort_values("size").reset_index(drop=True)

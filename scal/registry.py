"""Best-fit models in the MLflow model registry: one version per subset, an alias for the largest.

Each version is logged from the child run of the trial that produced it (the best seed of the
subset's best-fit configuration, `search.bestfit.representative`), with the weights of the round
of its minimum validation error, and is tagged with the subset size, parameter count and that
minimum validation error (``min_val_error``). Reload with
``mlflow.pytorch.load_model("models:/<name>/<version>")`` or ``"models:/<name>@largest"``; the
model classes live in the ``domains`` package, so scal must be importable where it is loaded.
"""

from __future__ import annotations

import logging
from importlib import metadata

import mlflow
import mlflow.pytorch
import torch
from mlflow.tracking import MlflowClient

from domains.protocol import TrialResult
from scal import keys
from scal.tracking import deferred_interrupt, safe_name

log = logging.getLogger(__name__)


def model_name(study: str) -> str:
    """Registered-model name of a study's best fits (registry names: letters, digits, -_.)."""
    return safe_name(study) + "-best-fit"


def _requirements() -> list[str]:
    # Listing them explicitly skips MLflow's slow requirement inference (6 s -> 1.6 s per model).
    return [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={metadata.version('mlflow')}"]


def register(client: MlflowClient, name: str, run_id: str, model: torch.nn.Module, result: TrialResult,
             metric: str, study_run_id: str) -> str:
    """Log ``model`` in the trial's run, register it as a new version of ``name``, tag it."""
    model = model.to("cpu").eval()
    # A version is written whole (model, registration, tags) or, on Ctrl-C before it starts, not at all.
    # The tags go in with the version itself, so a resumed study always recognises its versions.
    tags = {
        keys.R_SUBSET_SIZE: result.spec.subset_size, keys.R_N_PARAMS: result.n_params,
        keys.R_MIN_VAL_ERROR: repr(result.min_val_error), keys.R_METRIC: metric,
        keys.R_TRIAL_HASH: result.spec.trial_hash(), keys.R_STUDY_RUN: study_run_id,
    }
    with deferred_interrupt():
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pytorch.log_model(model, name="model", serialization_format="pickle",
                                            pip_requirements=_requirements())
        version = str(mlflow.register_model(info.model_uri, name, await_registration_for=60,
                                            tags={k: str(v) for k, v in tags.items()}).version)
    return version


def set_largest(client: MlflowClient, name: str, version: str) -> None:
    client.set_registered_model_alias(name, keys.ALIAS_LARGEST, version)


def study_versions(client: MlflowClient, name: str, study_run_id: str) -> dict[int, str]:
    """Versions already registered by the study run ``study_run_id``, by subset size (resume skips them)."""
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except mlflow.exceptions.MlflowException:
        return {}
    return {int(v.tags[keys.R_SUBSET_SIZE]): v.version for v in versions
            if v.tags.get(keys.R_STUDY_RUN) == study_run_id and keys.R_SUBSET_SIZE in v.tags}

"""Best-fit models in the MLflow model registry: one version per subset, an alias for the largest.

Each version is logged in the child run of the trial that produced it (the best seed of the
subset's best-fit configuration, `search.bestfit.representative`), with the weights of the round
of its minimum validation error. It is an MLflow pyfunc model that works on its own
(`domains.serve`): its signature and an input example of real data, the domain's preprocessing
(vocabulary, sentencepiece models, normalisation, feature settings) in ``data/``, a copy of the
domain's code in ``code/`` and pinned pip requirements, so it loads and serves outside this
repository::

    mlflow.pyfunc.load_model("models:/<name>@largest").predict(pd.DataFrame({"text": ["To be"]}))
    mlflow models serve -m "models:/<name>@largest" --env-manager local -h 127.0.0.1 -p 5001

(inputs and outputs per domain: `domains.serve`; more in docs/models.md). ``.get_raw_model()``
of the loaded model is the torch module. A version is tagged with the subset size, parameter
count, minimum validation error (``min_val_error``), metric, trial hash and study run, and its
description says the same in words.

No global MLflow state: the model is saved to a temporary folder with ``mlflow.pyfunc.save_model``,
uploaded with the study's client (``log_artifacts``) and registered from where it was uploaded.
"""

from __future__ import annotations

import functools
import logging
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import Model, infer_signature
from mlflow.tracking import MlflowClient

from domains import serve
from domains.protocol import TrialResult, TrialSpec
from scal import keys
from scal.interrupts import deferred_interrupt

log = logging.getLogger(__name__)

ARTIFACT_PATH = "model"
# Subset-size units in words, for the version descriptions (the others read as they are).
UNIT_WORDS = {"char": "characters", "word": "word tokens", "tokens": "target tokens"}


@functools.lru_cache(maxsize=None)
def requirements(domain: str) -> tuple[str, ...]:
    """Pinned pip requirements of a model of ``domain``. Listed, not inferred: MLflow's inference
    loads the model in a subprocess (seconds per version, in every study)."""
    def pin(dist: str) -> str:   # 2.11.0+cu130 -> 2.11.0: a local build's label is not on PyPI
        return f"{dist}=={metadata.version(dist).split('+')[0]}"

    return (pin("mlflow"), *(pin(d) for d in serve.requirements(domain)))


def describe(result: TrialResult, metric: str, unit: str, study_run_id: str, study_run_name: str) -> str:
    """A version's description (Markdown): what it was trained on, its size and error, its study."""
    spec = result.spec
    size = ", ".join(f"{k} {v}" for k, v in sorted(spec.size.items()))
    return (f"Best fit for a training subset of **{spec.subset_size:,} {UNIT_WORDS.get(unit, unit)}**: "
            f"{result.n_params:,} parameters ({size}), minimum validation {metric} **{result.min_val_error:.6g}** "
            f"(its weights are that round's). Made by study run `{study_run_name}` (`{study_run_id}`), "
            f"trial `{spec.trial_hash()}`.")


def _model_description(domain: str, unit: str) -> str:
    return (f"Best-fit models of a scal study ({domain}, unit {unit}): one version per training-subset size, "
            f"the alias `@{keys.ALIAS_LARGEST}` on the largest. Each is an MLflow pyfunc model that loads and "
            "serves on its own; see scal's docs/models.md for its inputs and outputs.")


def save(directory: Path, domain: str, unit: str, model: torch.nn.Module, spec: TrialSpec, data: Any,
         run_id: str) -> Path:
    """Save the pyfunc model of ``model`` (trained as ``spec`` says) under ``directory``; returns its folder.

    The model's data folder is loaded back through the same code a user's ``load_model`` runs
    (`domains.serve.load`) and predicts its input example: the output example for the signature,
    and a check that the version works before it is registered.
    """
    # MLflow copies the folder into the model's data/, keeping its name: data/scal/serve.json, ...
    predictor_dir = directory / "scal"
    example = serve.export(domain, unit, spec.size, model, data, predictor_dir)
    code = serve.write_code(directory / "code")
    frame = pd.DataFrame(example)
    served = serve.ServedModel(serve.load(predictor_dir))
    params = served.predictor.params
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # MLflow's hint on integer columns: images and labels are integers
        signature = infer_signature(frame, served.predict(frame), params=dict(params) or None)
    path = directory / ARTIFACT_PATH
    mlflow.pyfunc.save_model(
        str(path), loader_module="domains.serve", data_path=str(predictor_dir), code_paths=[str(code)],
        pip_requirements=list(requirements(domain)), signature=signature, input_example=frame,
        mlflow_model=Model(run_id=run_id, artifact_path=ARTIFACT_PATH),
        metadata={"scal_domain": domain, "scal_unit": unit, "subset_size": spec.subset_size})
    return path


def register(client: MlflowClient, name: str, run_id: str, model: torch.nn.Module, result: TrialResult,
             metric: str, study_run_id: str, *, domain: str, unit: str, data: Any) -> str:
    """Log ``model`` as a pyfunc model in the trial's run ``run_id``, register it as a new version
    of ``name`` with tags and a description; returns the version."""
    model = model.to("cpu").eval()
    tags = {
        keys.R_SUBSET_SIZE: result.spec.subset_size, keys.R_N_PARAMS: result.n_params,
        keys.R_MIN_VAL_ERROR: repr(result.min_val_error), keys.R_METRIC: metric,
        keys.R_TRIAL_HASH: result.spec.trial_hash(), keys.R_STUDY_RUN: study_run_id,
    }
    description = describe(result, metric, unit, study_run_id, client.get_run(study_run_id).info.run_name)
    with tempfile.TemporaryDirectory(prefix="scal-model-") as tmp:
        path = save(Path(tmp), domain, unit, model, result.spec, data, run_id)   # nothing in the store yet
        # A version is written whole (model, registration, tags) or, on Ctrl-C before it starts, not at all.
        # The tags go in with the version itself, so a resumed study always recognises its versions.
        with deferred_interrupt():
            client.log_artifacts(run_id, str(path), ARTIFACT_PATH)
            _ensure_registered(client, name, _model_description(domain, unit))
            # The source is where the files are, as mlflow.register_model resolves a runs:/ URI: a
            # registry reader (MLFLOW_REGISTRY_URI) then loads the model without the tracking store.
            version = client.create_model_version(
                name, f"{client.get_run(run_id).info.artifact_uri}/{ARTIFACT_PATH}", run_id,
                tags={k: str(v) for k, v in tags.items()}, description=description).version
    return str(version)


def _ensure_registered(client: MlflowClient, name: str, description: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=description)


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

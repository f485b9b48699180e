"""Registered best-fit models that work on their own: the code a registered model runs.

A registered model (`scal.registry`) is an MLflow pyfunc model whose ``loader_module`` is this
module. MLflow puts the model's own copy of the domain code first on ``sys.path`` (``code/``,
written by `write_code`; nothing of the repo's working tree is needed), imports this module and
calls `_load_pyfunc` on the model's ``data/scal/`` folder, which `export` wrote:

    serve.json   domain, unit, size knobs, and the domain's preprocessing settings
    weights.pt   the state dict, read with torch.load(weights_only=True): no pickled code
    <file>       the domain's own files (lm: vocab.json; nmt: source.model, target.model)

Inputs and outputs (a pandas DataFrame in and out, one row per item):

    domain         input column                     output columns          params (default)
    lm             text (str)                       loss, continuation      generate (0), seed (0)
    image          image (H x W [x C] ints 0-255)   label, probabilities    -
    nmt            source (str)                     translation             -
    speech(_attn)  audio (float32 mono, 16 kHz)     transcript              -
    toy            x0 .. x7 (float)                 y                       -

Each domain's `Predictor` lives next to the domain (``domains/<d>.py``) and calls the domain's
own preprocessing; `ADAPTERS` is the explicit list of them. Neither this module nor a predictor
imports mlflow (domains never do): a loader-module pyfunc model needs only an object with
``predict(data, params)``. This module imports no domain at import time: a model needs the
requirements of its own domain only (`requirements`).
"""

from __future__ import annotations

import importlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol

import torch

CONFIG = "serve.json"
WEIGHTS = "weights.pt"
FORMAT = 1                     # of serve.json; a loader that meets a newer one says so
PACKAGE = "domains"
PACKAGE_DIR = Path(__file__).resolve().parent
BASE_REQUIREMENTS = ("torch", "numpy", "pandas")   # distributions every model needs (pandas: predict's frames)


@dataclass(frozen=True)
class Export:
    """What a domain adds to a registered model: ``settings`` (JSON, stored in serve.json),
    ``files`` (name -> bytes, stored beside it) and ``example``, one input row of real data as
    columns (the model's input example)."""

    settings: dict[str, Any]
    example: dict[str, list]
    files: dict[str, bytes] = field(default_factory=dict)


class Predictor(Protocol):
    """A domain's side of a registered model (each domain module defines one).

    ``inputs``: the input columns; ``params``: predict parameters (ints) and their defaults;
    ``model``: the torch module. `predict` gets the input columns as lists and the params with
    defaults filled in, and returns the output columns as lists of equal length; bad input is a
    ValueError that names the row's problem.
    """

    inputs: tuple[str, ...]
    params: Mapping[str, int]
    model: torch.nn.Module

    @classmethod
    def export(cls, data: Any) -> Export: ...

    @classmethod
    def load(cls, config: Mapping[str, Any], files: Mapping[str, bytes],
             state: Mapping[str, torch.Tensor]) -> "Predictor": ...

    def predict(self, columns: Mapping[str, list], params: Mapping[str, int]) -> dict[str, list]: ...


@dataclass(frozen=True)
class Adapter:
    """Where a domain's predictor lives, and the distributions (pip names) its modules import at
    module level beyond `BASE_REQUIREMENTS` (plus scipy for speech: featurising imports it)."""

    module: str
    predictor: str
    requirements: tuple[str, ...] = ()


ADAPTERS: dict[str, Adapter] = {
    "lm": Adapter("domains.lm", "LMPredictor"),
    "image": Adapter("domains.image", "ImagePredictor", ("torchvision",)),
    "nmt": Adapter("domains.nmt", "TranslationPredictor", ("sentencepiece", "sacrebleu")),
    "speech": Adapter("domains.speech", "CTCPredictor", ("torchaudio", "scipy")),
    "speech_attn": Adapter("domains.speech_attn", "AttentionPredictor", ("torchaudio", "scipy")),
    "toy": Adapter("domains.toy", "ToyPredictor"),
}


def adapter(domain: str) -> Adapter:
    try:
        return ADAPTERS[domain]
    except KeyError:
        known = ", ".join(sorted(ADAPTERS))
        raise ValueError(f"domain {domain!r} has no registered-model adapter; known: {known}") from None


def predictor_class(domain: str) -> type:
    a = adapter(domain)
    return getattr(importlib.import_module(a.module), a.predictor)


def requirements(domain: str) -> tuple[str, ...]:
    """Distributions a model of ``domain`` needs where it is loaded (mlflow aside)."""
    return BASE_REQUIREMENTS + adapter(domain).requirements


# ---- writing and reading a model's data folder --------------------------------------------------

def export(domain: str, unit: str, size: Mapping[str, int], model: torch.nn.Module, data: Any,
           directory: Path) -> dict[str, list]:
    """Write a model's data folder (see the module doc) into ``directory``; returns the input example."""
    out = predictor_class(domain).export(data)
    directory.mkdir(parents=True, exist_ok=True)
    config = {"format": FORMAT, "domain": domain, "unit": unit, "size": dict(size), "settings": out.settings}
    (directory / CONFIG).write_text(json.dumps(config, indent=1))
    for name, blob in out.files.items():
        (directory / name).write_bytes(blob)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, directory / WEIGHTS)
    return out.example


def load(directory: str | Path) -> Predictor:
    """The predictor of a model's data folder, on the CPU, in eval mode."""
    directory = Path(directory)
    config = json.loads((directory / CONFIG).read_text())
    if config.get("format", 0) > FORMAT:
        raise ValueError(f"{directory / CONFIG} has format {config['format']}; this code reads up to {FORMAT}")
    files = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file() and p.name not in (CONFIG, WEIGHTS)}
    state = torch.load(directory / WEIGHTS, map_location="cpu", weights_only=True)
    predictor = predictor_class(config["domain"]).load(config, files, state)
    predictor.model.eval()
    return predictor


class ServedModel:
    """What MLflow's pyfunc wrapper calls: DataFrame in, DataFrame out (see the module doc)."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor

    def predict(self, model_input, params: Mapping[str, Any] | None = None):
        import pandas as pd   # here, not at the top: domain modules import this module for `Export`

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        inputs = self.predictor.inputs
        missing = [c for c in inputs if c not in frame.columns]
        if missing:
            raise ValueError(f"input lacks column(s) {', '.join(missing)}; this model takes {', '.join(inputs)}")
        unknown = sorted(set(params or {}) - set(self.predictor.params))
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; this model takes "
                             f"{', '.join(self.predictor.params) or 'none'}")
        merged = {**self.predictor.params, **{k: v for k, v in (params or {}).items() if v is not None}}
        with torch.inference_mode():
            out = self.predictor.predict({c: frame[c].tolist() for c in inputs}, merged)
        return pd.DataFrame(out, index=frame.index)

    def get_raw_model(self) -> torch.nn.Module:
        """The torch module (MLflow's ``PyFuncModel.get_raw_model()``)."""
        return self.predictor.model


def _load_pyfunc(data_path: str) -> ServedModel:
    """MLflow's entry point for a loader-module pyfunc model: ``data_path`` is its data/scal/ folder."""
    return ServedModel(load(data_path))


# ---- the code a model carries -----------------------------------------------------------------

_INIT = '''"""scal's domain modules, copied into a registered model when it was registered. The package's
own __init__ (the registry of every domain) is left out: it imports every domain, and so would
need every domain's requirements; `domains.serve` imports only the model's own domain."""
'''


def write_code(directory: Path) -> Path:
    """Copy the package's modules (not its data) into ``directory/domains`` with a bare
    ``__init__``; returns that folder (the model's ``code_paths`` entry).

    Every module goes, not only the model's domain's: Python imports a package once per process,
    so the first model loaded in a process supplies ``domains`` to every model loaded after it.
    The copies are small (~150 KB); importing them costs nothing until `load` asks for a domain.
    """
    target = directory / PACKAGE
    target.mkdir(parents=True)
    (target / "__init__.py").write_text(_INIT)
    for source in sorted(PACKAGE_DIR.glob("*.py")):
        if source.name != "__init__.py":
            shutil.copy2(source, target)
    return target

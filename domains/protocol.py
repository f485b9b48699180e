"""The contract every scal domain fulfils, and the value types that cross it.

A *domain* is one task of Hestness et al. (2017): its data, its model family with explicit size
knobs, its metric, and its "best guess" error (the level of the small-data region). The search
(`search/`) and the MLflow glue (`scal/`) only talk to domains through `Domain`; domains never
import mlflow or ray, they report through a ``log(metrics, step)`` callback.

How each domain of the paper maps onto the protocol
----------------------------------------------------
=================  ==================  ==========================  ======================  ===================
domain / unit      subset size unit    metric (fitted)             best-guess error        size knobs
=================  ==================  ==========================  ======================  ===================
lm, unit=char      characters          bits per character          unigram entropy (bits)  width, layers (LSTM)
lm, unit=word      word tokens         cross-entropy/word (nats)   unigram entropy (nats)  width, layers (LSTM)
nmt                target tokens       cross-entropy/target token  target unigram entropy  width, layers (LSTM
                                                                                           enc-dec + attention)
image              images              top-1 error                 1 - 1/classes           width, layers (ResNet
                                                                                           blocks per stage)
speech             utterances          character error rate        1.0 (empty transcript)  width, layers (conv +
                                                                                           BiGRU, CTC)
speech_attn        utterances          character error rate        1.0 (empty transcript)  width, layers (conv +
                                                                                           BiGRU + attention)
toy                examples            validation MSE              variance of targets     width, layers (MLP)
=================  ==================  ==========================  ======================  ===================

Every domain exposes its training data as a pool of *chunks* (text windows, sentence pairs,
images, utterances) with a size in units each; a `SubsetPlan` takes nested prefixes of one
seeded permutation of that pool. Validation data never enters the pool.

Growth of the model follows one knob (``Domain.grow_knob``, the width in every family here);
the others are searched on a grid around the interpolated centre.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

import numpy as np
import torch

LogFn = Callable[[Mapping[str, float], int], None]
"""``log(metrics, step)``: how a trainer reports per-round metrics without importing mlflow."""


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings shared by every domain (the nuisance hyperparameters except lr).

    A *round* is at least one pass over the training subset and at least ``min_round_steps``
    optimizer steps; validation runs after every round and early stopping counts rounds.

    ``max_epochs`` > 0 makes the step budget grow with the subset (`step_budget`): a trial may
    take ``max_epochs`` passes over its subset, capped at ``max_steps``, so the largest subsets
    are not cut short by a cap sized for the smallest (a compute-limited point fits nothing).
    0 keeps the flat ``max_steps``.
    """

    batch_size: int = 32
    max_steps: int = 2000
    max_rounds: int = 50
    min_round_steps: int = 20
    patience: int = 3
    weight_decay: float = 0.0
    warmup_steps: int = 20
    grad_clip: float = 1.0
    max_epochs: float = 0.0
    min_steps: int = 0

    def step_budget(self, epoch_steps: float) -> int:
        """Optimizer steps a trial may take on a subset of ``epoch_steps`` steps per pass:

            max_steps                                                   if max_epochs == 0
            min(max_steps, max(floor_steps, ceil(max_epochs * epoch_steps)))   otherwise,

        floor_steps = max(min_steps, warmup_steps + (patience + 1) * min_round_steps): small
        subsets take more passes than large ones before their validation loss turns (a
        character LSTM: ~25 passes over 8k characters, ~14 over 32k), and early stopping needs
        rounds after the turn to see it."""
        if self.max_epochs <= 0:
            return self.max_steps
        floor_steps = max(self.min_steps, self.warmup_steps + (self.patience + 1) * self.min_round_steps)
        return int(min(self.max_steps, max(floor_steps, math.ceil(self.max_epochs * epoch_steps))))


@dataclass(frozen=True)
class Scale:
    """A domain's literal numbers for one named budget (smoke / quick / full).

    ``min_subset`` is the smallest training subset in the domain's unit; the search doubles it.
    ``min_width`` / ``max_width`` bound the growth knob in the overfitting search; ``size`` is the
    default value of every size knob; ``lr`` the default peak learning rate.
    """

    min_subset: int
    n_subsets: int
    train: TrainSettings
    size: Mapping[str, int]
    lr: float
    min_width: int
    max_width: int
    max_val_units: int | None = None


@dataclass(frozen=True)
class TrialSpec:
    """Everything that determines one training run; ``trial_hash`` identifies finished work."""

    domain: str
    unit: str
    subset_size: int
    size: Mapping[str, int]
    lr: float
    seed: int
    budget: str
    train: TrainSettings = field(default_factory=TrainSettings)
    data_seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["size"] = dict(sorted(self.size.items()))
        return d

    def trial_hash(self) -> str:
        """First 16 hex digits of sha256 over the canonical JSON of the spec."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TrialResult:
    """What one training run produced.

    ``min_val_error``: the trial's value, the minimum over its validation rounds of the fitted
    metric (`domains.loop.round_rank`); ``best_epoch``/``best_step``: that round. ``min_val_loss``:
    the minimum over rounds of the validation loss, wherever it fell (the overfitting criterion's).
    ``extra``: further validation metrics at the min_val_error round, keyed as logged per round
    (``val_top5_error``, ``val_bleu``); logged, never fitted.

    ``status``: ok; stopped (ended early by a scheduler such as ASHA: its minimum validation
    error is real but an upper bound of what the full run would reach); diverged; failed (then
    ``reason``).
    """

    spec: TrialSpec
    n_params: int
    min_val_error: float
    min_val_loss: float
    best_epoch: float
    best_step: int
    final_train_loss: float
    steps: int
    epochs: float
    wall_time_s: float
    status: str = "ok"
    reason: str = ""
    extra: Mapping[str, float] = field(default_factory=dict)
    # A failed trial's formatted traceback (``reason`` is the one-line error); kept as a run artifact.
    traceback: str = field(default="", repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def trained_flops(domain: "Domain", n_params: float, epochs: float, subset_size: float) -> float:
    """The FLOPs a trial trained: the domain's ``train_flops`` over every unit it processed,

        units = epochs x subset_size,   epochs = optimizer steps / steps per pass over the subset,

    so every step counts, the last partial pass included (a trial takes many passes, not the one
    that C = k N D assumes). The one rule for it: logged per trial (`scal.tracking`) and, for a
    store written before that, applied to the logged epochs when it is read (`scal.reader`)."""
    return float(domain.train_flops(float(n_params), float(epochs) * float(subset_size)))


@dataclass(frozen=True)
class MetricInfo:
    """The fitted metric of a domain/unit: its name (an MLflow metric key) and what it measures."""

    name: str
    description: str
    lower_is_better: bool = True


class DataError(ValueError):
    """Missing, unreadable or too-small data; the CLI prints it as one line."""


def read_text(path: Path, data_path: str) -> str:
    """A user's text file (``--data data_path``, or a file inside it) as UTF-8, or a `DataError`
    naming both: a binary or mis-encoded file is a bad input, not a codec traceback."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        where = "" if str(path) == data_path else f" {path}"
        raise DataError(f"--data {data_path}:{where} not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"--data {data_path}: cannot read {path} ({exc.strerror})") from None


@runtime_checkable
class DomainData(Protocol):
    """A loaded dataset: the training pool as chunks, and the held-out validation data."""

    unit: str

    def chunk_sizes(self) -> np.ndarray:
        """Units in each training chunk (a 1-D integer array), in pool order."""
        ...

    def best_guess_error(self) -> float:
        """Error of the best data-free guess (unigram, majority class, ...): the small-data level."""
        ...


@runtime_checkable
class Domain(Protocol):
    """One task of the paper. Implementations are plain classes listed in ``domains.REGISTRY``."""

    name: str
    units: tuple[str, ...]
    default_data: str   # what load() reads without --data: a file in domains/data, or "synthetic:NAME"
    size_knobs: tuple[str, ...]
    grow_knob: str

    def metric(self, unit: str) -> MetricInfo: ...

    def scale(self, budget: str, unit: str) -> Scale: ...

    def load(self, unit: str, data_path: str | None = None, max_val_units: int | None = None,
             pool_size: int | None = None) -> DomainData:
        """The training pool and validation data: ``data_path`` (``--data``) or the domain's default.

        ``pool_size`` (``--pool-size``): the training pool, in the unit, of a domain whose default
        data is generated (toy's teacher, speech's synthesiser); None: the domain's own default.
        A domain or a ``--data`` that reads its data refuses it (ValueError), and so does every
        domain for a number out of its range, before anything is generated."""
        ...

    def build_model(self, size: Mapping[str, int], data: DomainData) -> torch.nn.Module: ...

    def count_params(self, size: Mapping[str, int], data: DomainData) -> int:
        """Exact parameter count from the size knobs (a formula, checked against the module)."""
        ...

    def train_flops(self, n_params: float, units: float) -> float:
        """Training FLOPs for ``units`` of data (in the study's unit, counting every epoch) through a
        model with ``n_params`` parameters: the planning estimate `scal predict` reports."""
        ...

    def train(
        self,
        spec: TrialSpec,
        data: DomainData,
        chunk_ids: Any,
        log: LogFn,
        device: str = "cpu",
    ) -> tuple[TrialResult, torch.nn.Module]: ...

    def evaluate(self, model: torch.nn.Module, data: DomainData, device: str = "cpu") -> tuple[float, float]:
        """(validation loss in training-loss units, validation error in the metric's units)."""
        ...

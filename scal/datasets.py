"""A study's data as MLflow dataset inputs: the pool on the study run, a subset on each trial run.

The MLflow UI lists a run's dataset inputs in its Datasets column: name, digest, and on click
the source and the profile. Here

- the **pool** (the whole training pool a study draws from) is named ``<domain>-<unit>-pool``;
  its digest is a content hash of the loaded data (`content_digest`): every tensor, array, string
  and number the domain's data object holds, so other data (another file, another
  ``--pool-size``, another tokenisation) gets another digest whatever its path;
- a **subset** is named ``<domain>-<unit>-<m>``; its digest hashes the pool's digest with the
  subset's size and its chunk ids (`search.subsets.SubsetPlan.indices`, a prefix of one seeded
  permutation), so two studies that trained on the same subset of the same data show the same
  digest, and another seed shows another;
- the source is the ``--data`` path (MLflow's ``local`` source), the file shipped with scal that
  a domain reads by default, or, for data made in-process (``synthetic:...``), a ``code`` source;
- the profile gives the size in the domain's unit: ``units`` asked for, ``units_drawn`` (whole
  chunks reach at least m), chunks, and the pool's totals.

Logged with ``MlflowClient.log_inputs``: no active run, no global state.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.dataset import Dataset
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.entities import DatasetInput, InputTag

from scal import keys

DIGEST_CHARS = 16   # MLflow stores at most 36; 16 hex digits like a trial hash

CONTEXT_TRIAL = "training"   # `keys.DATA_CONTEXT` of a trial's subset
CONTEXT_POOL = "pool"        # ... of a study's whole pool


def content_digest(obj: Any) -> str:
    """sha256 (first `DIGEST_CHARS` hex digits) over ``obj``'s content, walked recursively:
    dataclass fields by name, tensors and arrays by dtype, shape and bytes, sequences and dicts
    element by element, scalars by their repr. Other objects (a tokenizer's live processor)
    count by type name only; the data they were built from is hashed where it is stored."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()[:DIGEST_CHARS]


def _feed(h, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:   # numpy has no bfloat16: hash its bits
            t = t.view(torch.int16)
        obj = t.numpy()
    if isinstance(obj, np.ndarray) and obj.dtype == object:   # Python objects: no bytes to hash
        obj = obj.tolist()
    if isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj).reshape(-1)
        h.update(f"array {a.dtype.str} {obj.shape};".encode())
        h.update(a.view(np.uint8))
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(f"{type(obj).__name__}{{".encode())
        for f in dataclasses.fields(obj):
            h.update(f"{f.name}=".encode())
            _feed(h, getattr(obj, f.name))
        h.update(b"}")
    elif isinstance(obj, (bytes, bytearray)):
        h.update(b"bytes %d;" % len(obj))
        h.update(obj)
    elif isinstance(obj, (str, int, float, bool, type(None), np.generic)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, (list, tuple)):
        h.update(f"seq {len(obj)}[".encode())
        for v in obj:
            _feed(h, v)
        h.update(b"]")
    elif isinstance(obj, dict):
        h.update(f"map {len(obj)}{{".encode())
        for k in sorted(obj, key=str):
            _feed(h, k)
            _feed(h, obj[k])
        h.update(b"}")
    else:
        h.update(f"<{type(obj).__module__}.{type(obj).__qualname__}>".encode())


def data_source(domain: str, default_data: str, data: str | None) -> DatasetSource:
    """Where the pool comes from: ``--data`` as given (a path, or a ``synthetic:`` name), else the
    domain's ``default_data`` (`domains.protocol.Domain`)."""
    name = data or default_data
    if name.startswith("synthetic:"):
        return CodeDatasetSource({"data": name, "made_by": f"domains.{domain}"})
    if data is None:   # a file shipped in the domains.data package
        return LocalArtifactDatasetSource(str(Path(str(resources.files("domains.data").joinpath(name))).resolve()))
    return LocalArtifactDatasetSource(str(Path(data).expanduser().resolve()))


class UnitsDataset(Dataset):
    """A dataset that exists as a description only (MLflow keeps no copy of it): its name,
    digest, source and a profile of sizes in the domain's unit."""

    def __init__(self, source: DatasetSource, name: str, digest: str, profile: dict[str, Any]):
        self._profile = profile
        super().__init__(source=source, name=name, digest=digest)

    def _compute_digest(self) -> str:
        # MLflow calls this only when no digest is given; ours always is (the content digests above).
        raise TypeError("a UnitsDataset is built with its content digest")

    @property
    def profile(self) -> dict[str, Any]:
        return self._profile

    @property
    def schema(self) -> None:
        return None

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "profile": json.dumps(self._profile)}

    def as_input(self, context: str) -> DatasetInput:
        """The dataset input a run logs (``MlflowClient.log_inputs``), tagged with its context."""
        return DatasetInput(self._to_mlflow_entity(), tags=[InputTag(keys.DATA_CONTEXT, context)])


@dataclasses.dataclass
class StudyData:
    """One study's pool and its subsets' datasets (each subset's made once, when first asked for)."""

    domain: str
    unit: str
    source: DatasetSource
    plan: Any                   # the study's `search.subsets.SubsetPlan`
    pool_digest: str
    _subsets: dict[int, UnitsDataset] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, domain: Any, unit: str, data_arg: str | None, data: Any, plan) -> "StudyData":
        """``domain``: the `domains.protocol.Domain`; ``data``: its loaded `DomainData`, read from
        ``data_arg`` (``--data``)."""
        return cls(domain.name, unit, data_source(domain.name, domain.default_data, data_arg), plan,
                   content_digest([domain.name, unit, data]))

    def pool(self) -> UnitsDataset:
        sizes = np.asarray(self.plan.chunk_sizes)
        return UnitsDataset(self.source, f"{self.domain}-{self.unit}-pool", self.pool_digest, {
            "unit": self.unit, "units": int(sizes.sum()), "chunks": int(len(sizes))})

    def subset(self, size: int) -> UnitsDataset:
        """The subset of ``size`` units: the pool chunks `SubsetPlan.indices` draws for it."""
        if size not in self._subsets:
            ids = np.asarray(self.plan.indices(size), dtype=np.int64)
            sizes = np.asarray(self.plan.chunk_sizes)
            h = hashlib.sha256(f"{self.pool_digest};{size};".encode())
            h.update(ids.view(np.uint8))
            self._subsets[size] = UnitsDataset(self.source, f"{self.domain}-{self.unit}-{size}",
                                               h.hexdigest()[:DIGEST_CHARS], {
                "unit": self.unit, "units": int(size), "units_drawn": int(sizes[ids].sum()), "chunks": int(len(ids)),
                "pool_units": int(sizes.sum()), "pool_chunks": int(len(sizes)), "pool_digest": self.pool_digest,
                "seed": int(self.plan.seed)})
        return self._subsets[size]

"""Helpers every domain shares: threads, the size of a generated pool, the loop call, tensor batches."""

from __future__ import annotations

import traceback
from typing import Callable

import numpy as np
import torch

from domains import loop
from domains.protocol import LogFn, TrialResult, TrialSpec


def set_threads(n: int) -> int:
    """Train on ``n`` torch threads (``--threads``). A CPU trial's numbers depend on its thread
    count (a matrix product splits its sums across the threads, and float addition is not
    associative), so the count is an input of the study, the same wherever the trial runs."""
    if n < 1:
        raise ValueError(f"--threads must be at least 1, got {n}")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def generated_pool(domain: str, pool_size: int | None, default: int, most: int, data_path: str | None) -> int:
    """The training pool a domain with generated data makes: ``pool_size`` (``--pool-size``) or its
    ``default``. Checked before anything is generated: between 1 and ``most`` (past it, generating
    would take longer, or more memory, than any study here can use), and never with a ``data_path``
    (``--data``), which is read as it is."""
    if pool_size is None:
        return default
    if data_path is not None:
        raise ValueError(f"--pool-size sizes domain {domain}'s generated data; --data {data_path} is read as it is")
    if not 1 <= pool_size <= most:
        raise ValueError(f"--pool-size must be between 1 and {most:,} for domain {domain}, got {pool_size:,}")
    return pool_size


def no_pool(domain: str, pool_size: int | None) -> None:
    """A domain that reads its data (a corpus, images, sentence pairs) has no pool to size."""
    if pool_size is not None:
        raise ValueError(f"--pool-size sizes generated data; domain {domain} reads its data (--data chooses "
                         "other data, --min-subset and --n-subsets how much of it a study uses)")


def train_trial(
    spec: TrialSpec,
    build: Callable[[], tuple[torch.nn.Module, loop.Task]],
    n_params: int,
    log: LogFn,
    device: str,
) -> tuple[TrialResult, torch.nn.Module]:
    """Seed, build the model and task, and run the shared loop (which makes the `TrialResult`).

    Any exception inside training becomes status ``failed`` with the reason, so one broken
    trial does not end a study. Threads are the caller's choice (`search.trial.run_trial`
    sets them per trial: all cores locally, the trial's CPUs on Ray); setting them here would
    undo that and oversubscribe the cores when trials run side by side.
    """
    device = loop.resolve_device(device)
    gen = loop.seed_everything(spec.seed)
    model, task = build()
    try:
        result = loop.run(model, task, spec, n_params, gen, log, device=device)
    except (RuntimeError, ValueError, MemoryError) as exc:
        nan = float("nan")
        return TrialResult(spec, n_params, nan, nan, nan, 0, nan, 0, 0.0, 0.0, "failed", repr(exc)[:500],
                           traceback=traceback.format_exc()), model
    model.to("cpu").eval()
    return result, model


class TensorTask:
    """A trial's training subset of an in-memory (x, y) pool: uniform minibatches with replacement.

    Domains whose data are tensors (toy, image) subclass it and add ``loss`` and ``evaluate``.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, chunk_ids):
        idx = torch.as_tensor(np.asarray(chunk_ids), dtype=torch.int64)
        self.x, self.y = x[idx], y[idx]

    def epoch_steps(self, batch_size: int) -> float:
        return len(self.y) / batch_size

    def sample_batch(self, gen: torch.Generator, batch_size: int, device: str):
        i = torch.randint(0, len(self.y), (min(batch_size, len(self.y)),), generator=gen)
        return self.x[i].to(device), self.y[i].to(device)

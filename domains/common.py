"""Helpers every domain's ``train`` shares: seeding, threads, the loop call, the result record."""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
import torch

from domains import loop
from domains.protocol import LogFn, TrialResult, TrialSpec


def set_threads(n_threads: int | None = None) -> int:
    """Use the machine's cores (or ``SCAL_THREADS``); determinism holds for a fixed thread count."""
    n = n_threads or int(os.environ.get("SCAL_THREADS", "0")) or (os.cpu_count() or 1)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def train_trial(
    spec: TrialSpec,
    build: Callable[[], tuple[torch.nn.Module, loop.Task]],
    n_params: int,
    log: LogFn,
    device: str,
) -> tuple[TrialResult, torch.nn.Module]:
    """Seed, build the model and task, run the shared loop, and package a `TrialResult`.

    Any exception inside training becomes status ``failed`` with the reason, so one broken
    trial does not end a study. Threads are the caller's choice (`search.executor.run_trial`
    sets them per trial: all cores locally, the trial's CPUs on Ray); setting them here would
    undo that and oversubscribe the cores when trials run side by side.
    """
    device = loop.resolve_device(device)
    gen = loop.seed_everything(spec.seed)
    model, task = build()
    try:
        res = loop.run(model, task, spec.train, spec.lr, gen, log, device=device)
    except (RuntimeError, ValueError, MemoryError) as exc:
        nan = float("nan")
        return TrialResult(spec, n_params, nan, nan, nan, 0, nan, 0, 0.0, 0.0, "failed", repr(exc)[:500]), model
    model.to("cpu").eval()
    return (
        TrialResult(
            spec=spec,
            n_params=n_params,
            min_val_error=res.min_val_error,
            min_val_loss=res.min_val_loss,
            best_epoch=res.best_epoch,
            best_step=res.best_step,
            final_train_loss=res.final_train_loss,
            steps=res.steps,
            epochs=res.epochs,
            wall_time_s=res.wall_time_s,
            status=res.status,
            reason=res.reason,
            extra=res.extra,
        ),
        model,
    )


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

"""The one training loop every domain uses.

AdamW with linear warm-up then cosine decay to 10% of the peak learning rate over ``max_steps``;
validation after every *round* (at least one pass over the subset and at least
``min_round_steps`` steps); early stopping when the validation loss has not improved for
``patience`` rounds.

What a trial contributes (`round_rank`): the paper scores a trial by its *minimum validation
error during training*, so a trial's value is the minimum over its validation rounds of the
fitted metric (bits/char, top-1 error, CER, ...), not the metric at the round of lowest loss:
the two differ wherever the metric is not the loss (top-1 error, CER). The weights of that round
are restored at the end, so the registered model is the one whose error is reported. Early
stopping still watches the loss, which is smooth where an error rate moves in steps, so a
noisy error cannot end training early.

A NaN or infinite loss stops the run with status ``diverged`` instead of raising. On CUDA the
forward pass runs under bf16 autocast. The loop never imports mlflow: it reports through
``log(metrics, step)``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from dataclasses import replace
from typing import Any, Protocol

import torch

from domains.protocol import LogFn, TrainSettings, TrialResult, TrialSpec

log_ = logging.getLogger(__name__)


class Task(Protocol):
    """What the loop needs from a domain for one trial."""

    def epoch_steps(self, batch_size: int) -> float:
        """Optimizer steps in one pass over the training subset."""
        ...

    def sample_batch(self, gen: torch.Generator, batch_size: int, device: str) -> Any: ...

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """Mean training loss of the batch (the same units as the validation loss)."""
        ...

    def evaluate(self, model: torch.nn.Module, device: str) -> tuple[float, float] | tuple[float, float, dict[str, float]]:
        """(validation loss, validation error in the metric's units), model in eval mode.

        A third element, a dict of further validation metrics (top-5 error, BLEU, WER), is
        optional: the loop logs each as ``val_<name>`` every round and keeps its value at the
        trial's best round (`round_rank`; `TrialResult.extra`). Only the error is fitted.
        """
        ...


def round_rank(val_error: float, val_loss: float) -> tuple[float, float]:
    """Order of validation rounds: the best round has the lowest fitted metric, ties broken by
    the lower loss. The one rule for which value a trial contributes, used by the loop and by a
    scheduler-stopped trial's summary (`search.ray_executor`)."""
    return (val_error, val_loss)


def resolve_device(device: str) -> str:
    """``auto`` picks cuda when present; asking for cuda without one is an error, not a fallback."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}: use auto, cpu or cuda")
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch's global RNG (weight init, dropout) and return a generator for batch sampling."""
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed + 1_000_003)
    return gen


def lr_at(step: int, peak_lr: float, settings: TrainSettings) -> float:
    """Linear warm-up to ``peak_lr`` over ``warmup_steps``, then cosine to 0.1 * peak at ``max_steps``."""
    if step < settings.warmup_steps:
        return peak_lr * (step + 1) / settings.warmup_steps
    span = max(1, settings.max_steps - settings.warmup_steps)
    progress = min(1.0, (step - settings.warmup_steps) / span)
    return peak_lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def run(
    model: torch.nn.Module,
    task: Task,
    spec: TrialSpec,
    n_params: int,
    gen: torch.Generator,
    log: LogFn,
    device: str = "cpu",
) -> TrialResult:
    """Train ``model`` on ``task`` with ``spec``'s settings and peak learning rate; return the
    trial's result: the minimum validation error and where it occurred (the model ends with that
    round's weights). ``n_params`` is recorded as given (the domain's exact formula)."""
    settings, peak_lr = spec.train, spec.lr
    t0 = time.perf_counter()
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=peak_lr, weight_decay=settings.weight_decay)
    epoch_steps = max(task.epoch_steps(settings.batch_size), 1e-9)
    # The schedule (warm-up, cosine) and the stop both follow the subset's own step budget.
    settings = replace(settings, max_steps=settings.step_budget(epoch_steps), max_epochs=0.0, min_steps=0)
    round_steps = max(settings.min_round_steps, math.ceil(epoch_steps))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext()

    best = dict(loss=math.inf, error=math.inf, step=0)   # the best round by `round_rank`
    min_val_loss = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    bad_rounds, step, train_loss = 0, 0, math.nan
    best_extra: dict[str, float] = {}
    status, reason = "ok", ""

    for round_i in range(settings.max_rounds):
        model.train()
        loss_sum, n = 0.0, 0
        for _ in range(round_steps):
            if step >= settings.max_steps:
                break
            for group in opt.param_groups:
                group["lr"] = lr_at(step, peak_lr, settings)
            batch = task.sample_batch(gen, settings.batch_size, device)
            with autocast:
                loss = task.loss(model, batch)
            if not torch.isfinite(loss):
                status, reason = "diverged", f"non-finite training loss at step {step}"
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if settings.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            opt.step()
            step += 1
            loss_sum += loss.item()
            n += 1
        if status != "ok":
            break
        if n:
            train_loss = loss_sum / n
        val_loss, val_error, *more = task.evaluate(model, device)
        extra = {f"val_{k}": float(v) for k, v in (more[0] if more else {}).items()}
        if not (math.isfinite(val_loss) and math.isfinite(val_error)):
            status, reason = "diverged", f"non-finite validation loss after step {step}"
            break
        log(
            {"train_loss": train_loss, "val_loss": val_loss, "val_error": val_error,
             "epoch": step / epoch_steps, "lr": lr_at(max(step - 1, 0), peak_lr, settings), **extra},
            step,
        )
        if round_rank(val_error, val_loss) < round_rank(best["error"], best["loss"]):
            best = dict(loss=val_loss, error=val_error, step=step)
            best_extra = extra
            best_state = copy.deepcopy(model.state_dict())
        if val_loss < min_val_loss:
            min_val_loss, bad_rounds = val_loss, 0
        else:
            bad_rounds += 1
        if bad_rounds >= settings.patience or step >= settings.max_steps:
            break
        log_.debug("round %d step %d val_loss %.4f", round_i, step, val_loss)

    if best_state is not None:
        model.load_state_dict(best_state)
    return TrialResult(
        spec=spec,
        n_params=int(n_params),
        min_val_error=float(best["error"]),
        min_val_loss=float(min_val_loss),
        best_epoch=best["step"] / epoch_steps,
        best_step=int(best["step"]),
        final_train_loss=float(train_loss),
        steps=step,
        epochs=step / epoch_steps,
        wall_time_s=time.perf_counter() - t0,
        status=status,
        reason=reason,
        extra=best_extra,
    )


"""Benchmark: scal's shared training loop against a bare PyTorch loop, same model, data, threads.

Both train the quick budget's char-LM (LSTM, width 128) on the same 64k-character subset with
AdamW, batch 32 x 64 characters, for the same number of steps, and validate once at the end.
The runs alternate (scal, bare, scal, bare, ...) so drift of the machine hits both alike; the
figure is the ratio of median throughputs (target >= 0.95). A second figure shows what scal's
per-round validation (the quick budget's rounds) costs on top, for information.

    python benchmarks/trainer_throughput.py [--steps 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

import domains
from domains import loop
from domains.common import set_threads
from domains.lm import SEQ_LEN, LMTask, evaluate_lm
from domains.protocol import TrialSpec
from search.subsets import SubsetPlan

SUBSET_CHARS = 65_536
SIZE = {"width": 128, "layers": 1}
LR = 4e-3


def bare_loop(model, task: LMTask, steps: int, batch: int, seed: int) -> float:
    """The plainest loop that trains the same thing: sample, forward, backward, clip, step."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1_000_003)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    ids = task.train_ids
    offsets = torch.arange(SEQ_LEN + 1)
    t0 = time.perf_counter()
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - SEQ_LEN - 1, (batch,), generator=gen)
        b = ids[starts[:, None] + offsets]
        logits = model(b[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), b[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    evaluate_lm(model, task.data)
    return time.perf_counter() - t0


def scal_loop(dom, data, task: LMTask, settings, seed: int) -> float:
    gen = loop.seed_everything(seed)
    model = dom.build_model(SIZE, data)
    spec = TrialSpec("lm", "char", SUBSET_CHARS, SIZE, LR, seed, "quick", settings)
    t0 = time.perf_counter()
    loop.run(model, task, spec, dom.count_params(SIZE, data), gen, lambda m, s: None, "cpu")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    threads = set_threads()
    dom = domains.get("lm")
    data = dom.load("char", max_val_units=32_768)
    plan = SubsetPlan(data.chunk_sizes(), SUBSET_CHARS, 1)
    task = LMTask(data, plan.indices(SUBSET_CHARS))
    quick = dom.scale("quick", "char").train
    # Same work as the bare loop: all steps in one round, one validation at the end.
    one_round = replace(quick, max_steps=args.steps, max_rounds=1, min_round_steps=args.steps, patience=1)
    per_round = replace(quick, max_steps=args.steps, patience=10**6)

    chars = args.steps * quick.batch_size * SEQ_LEN
    bare_loop(dom.build_model(SIZE, data), task, 20, quick.batch_size, 0)      # warm-up
    t_scal, t_bare, t_rounds = [], [], []
    for r in range(args.repeats):
        t_scal.append(scal_loop(dom, data, task, one_round, r))
        t_bare.append(bare_loop(dom.build_model(SIZE, data), task, args.steps, quick.batch_size, r))
        t_rounds.append(scal_loop(dom, data, task, per_round, r))
    s, b, rr = (statistics.median(t) for t in (t_scal, t_bare, t_rounds))
    print(f"model: LSTM char LM width {SIZE['width']}, {dom.count_params(SIZE, data):,} params; "
          f"subset {SUBSET_CHARS:,} chars; {args.steps} steps x batch {quick.batch_size} x {SEQ_LEN}; threads {threads}")
    print(f"bare PyTorch loop          : {chars / b:>10,.0f} chars/s  (median of {args.repeats}: {b:.2f} s)")
    print(f"scal loop, same work       : {chars / s:>10,.0f} chars/s  (median of {args.repeats}: {s:.2f} s)")
    print(f"throughput ratio scal/bare : {b / s:.3f}   (target >= 0.95)")
    n_rounds = math.ceil(args.steps / max(quick.min_round_steps, math.ceil(task.epoch_steps(quick.batch_size))))
    print(f"scal loop, quick rounds    : {chars / rr:>10,.0f} chars/s  ({n_rounds} validations; ratio to bare {b / rr:.3f})")


if __name__ == "__main__":
    main()

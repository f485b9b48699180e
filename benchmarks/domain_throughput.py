"""Training throughput of each domain, in samples (batch items) per second, on this machine's
device: what the issue asks to measure on a GPU machine where one is lent, and the CPU baseline.

Each domain trains its quick budget's default model (``Scale.size``, batch size and learning
rate) on its largest quick subset through the domain's own ``train`` (the path studies take:
bf16 autocast on CUDA). Two runs of the same trial differ only in their step count, ``short``
and ``short + steps``; each validates once, at its end, so the difference of their wall times is
the cost of ``steps`` training steps alone, without model building, validation or CUDA warm-up:

    samples/s = steps * batch_size / (wall(short + steps) - wall(short))

A sample is a 64-character sequence (lm char), an image (image), a sentence pair (nmt) or an
utterance (speech, speech_attn).

    python benchmarks/domain_throughput.py                       # every domain, auto device
    python benchmarks/domain_throughput.py --device cuda --steps 200
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace

import domains
from domains import loop
from domains.common import set_threads
from domains.protocol import TrialSpec
from search.subsets import SubsetPlan


def wall_s(dom, data, unit: str, scale, ids, steps: int, device: str) -> float:
    """Wall time of one trial of exactly ``steps`` training steps and one validation at the end."""
    train = replace(scale.train, max_steps=steps, max_rounds=1, min_round_steps=steps)
    spec = TrialSpec(dom.name, unit, len(ids), dict(scale.size), scale.lr, 0, "quick", train)
    result, _ = dom.train(spec, data, ids, lambda metrics, step: None, device)
    if not result.ok or result.steps != steps:
        raise SystemExit(f"error: {dom.name}: the trial ended with {result.status} after {result.steps} steps ({result.reason})")
    return result.wall_time_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domains", default=",".join(n for n in domains.REGISTRY if n != "toy"))
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--steps", type=int, default=60, help="timed steps (the difference of the two runs)")
    ap.add_argument("--short", type=int, default=10, help="steps of the run that is subtracted")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    device = loop.resolve_device(args.device)
    threads = set_threads()
    print(f"device {device}" + (f" ({threads} CPU threads)" if device == "cpu" else ""))
    print(f"{'domain':<24} {'size':<22} {'params':>9} {'subset':>8} {'batch':>5} {'samples/s':>10}")
    for name in args.domains.split(","):
        dom = domains.get(name)
        unit = domains.default_unit(dom)
        scale = dom.scale("quick", unit)
        data = dom.load(unit, None, scale.max_val_units)
        plan = SubsetPlan(data.chunk_sizes(), scale.min_subset, scale.n_subsets)
        ids = plan.indices(plan.sizes[-1])
        wall_s(dom, data, unit, scale, ids, 2, device)   # warm-up: allocator, kernels, caches
        t_short = wall_s(dom, data, unit, scale, ids, args.short, device)
        t_long = wall_s(dom, data, unit, scale, ids, args.short + args.steps, device)
        rate = args.steps * scale.train.batch_size / max(t_long - t_short, 1e-9)
        size = ", ".join(f"{k} {v}" for k, v in scale.size.items())
        print(f"{name + '/' + unit:<24} {size:<22} {dom.count_params(scale.size, data):>9,} "
              f"{plan.sizes[-1]:>8,} {scale.train.batch_size:>5} {rate:>10.1f}", flush=True)


if __name__ == "__main__":
    main()

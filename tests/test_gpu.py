"""CUDA path (bf16 autocast). Skipped where torch sees no GPU; run these on a GPU machine."""

import math

import pytest
import torch

import domains
from domains.protocol import TrainSettings, TrialSpec
from search.subsets import SubsetPlan

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("name,unit,m", [("toy", "examples", 256), ("lm", "char", 8192), ("image", "images", 256),
                                         ("nmt", "tokens", 4096), ("speech", "utterances", 64),
                                         ("speech_attn", "utterances", 64)])
def test_trains_on_cuda_with_bf16_autocast(name, unit, m):
    dom = domains.get(name)
    data = dom.load(unit, max_val_units=4096)
    plan = SubsetPlan(data.chunk_sizes(), m, 1)
    spec = TrialSpec(name, unit, m, {"width": 32, "layers": 1}, 3e-3, 0, "smoke",
                     TrainSettings(batch_size=16, max_steps=40, max_rounds=2, min_round_steps=20))
    res, model = dom.train(spec, data, plan.indices(m), lambda mm, s: None, device="cuda")
    assert res.ok and math.isfinite(res.min_val_error)
    assert next(model.parameters()).device.type == "cpu"   # handed back on the CPU for the registry

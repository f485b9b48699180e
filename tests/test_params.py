"""Parameter counts from the size knobs are exact: the formula equals the module's numel."""

import pytest

import domains
from domains.lm import LSTMLanguageModel, lstm_lm_params
from domains.toy import MLP, mlp_params


@pytest.mark.parametrize("vocab,width,layers", [(79, 8, 1), (79, 64, 2), (5000, 33, 3)])
def test_lstm_lm_param_formula(vocab, width, layers):
    model = LSTMLanguageModel(vocab, width, layers)
    assert lstm_lm_params(vocab, width, layers) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("width,layers", [(4, 1), (16, 2), (37, 4)])
def test_mlp_param_formula(width, layers):
    assert mlp_params(8, width, layers) == sum(p.numel() for p in MLP(8, width, layers).parameters())


@pytest.mark.parametrize("name,unit", [("lm", "char"), ("lm", "word"), ("toy", "examples")])
def test_domain_count_params_matches_built_model(name, unit):
    dom = domains.get(name)
    data = dom.load(unit, max_val_units=2048)
    for size in ({"width": 8, "layers": 1}, {"width": 24, "layers": 2}):
        model = dom.build_model(size, data)
        assert dom.count_params(size, data) == sum(p.numel() for p in model.parameters())

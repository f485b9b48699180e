"""Parameter-count formulas of the model classes, beyond what domains build (a 5,000-word vocabulary,
a 4-layer MLP). Every domain's own count is checked in test_domain_contract.py."""

import pytest

from domains.lm import LSTMLanguageModel, lstm_lm_params
from domains.toy import MLP, mlp_params


@pytest.mark.parametrize("vocab,width,layers", [(79, 8, 1), (79, 64, 2), (5000, 33, 3)])
def test_lstm_lm_param_formula(vocab, width, layers):
    model = LSTMLanguageModel(vocab, width, layers)
    assert lstm_lm_params(vocab, width, layers) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("width,layers", [(4, 1), (16, 2), (37, 4)])
def test_mlp_param_formula(width, layers):
    assert mlp_params(8, width, layers) == sum(p.numel() for p in MLP(8, width, layers).parameters())

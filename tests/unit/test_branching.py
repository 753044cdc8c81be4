"""Which branching rule a ReLU-splitting search uses (bab/branching.resolve)."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from completeverify import load_onnx
from completeverify.bab.branching import resolve
from completeverify.config import RELU_BRANCHINGS, BabConfig, VerifyConfig
from completeverify.errors import InputError


def _graph(model: nn.Module, shape: tuple[int, ...]):
    buf = io.BytesIO()
    torch.onnx.export(model.eval(), (torch.zeros(*shape),), buf, dynamo=False, opset_version=13)
    return load_onnx(buf.getvalue())


MLP = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
CNN = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 3 * 3, 2))


def test_auto_is_the_default_and_splits_mlps_by_fsb_and_cnns_by_babsr():
    assert BabConfig().branching == "auto"
    assert resolve("auto", _graph(MLP, (1, 4))) == "fsb"
    assert resolve("auto", _graph(CNN, (1, 1, 5, 5))) == "babsr"


@pytest.mark.parametrize("rule", [r for r in RELU_BRANCHINGS if r != "auto"])
def test_an_explicit_rule_is_kept(rule):
    for graph in (_graph(MLP, (1, 4)), _graph(CNN, (1, 1, 5, 5))):
        assert resolve(rule, graph) == rule


def test_cnns_take_their_own_beta_crown_steps():
    mlp, cnn = _graph(MLP, (1, 4)), _graph(CNN, (1, 1, 5, 5))
    assert not mlp.has_convolutions() and cnn.has_convolutions()
    cfg = BabConfig()
    assert cfg.bound_iters_for(cnn.has_convolutions()) == cfg.bound_iters_conv == 3
    assert cfg.bound_iters_for(mlp.has_convolutions()) == cfg.bound_iters == 10
    cfg = BabConfig(bound_iters=7, bound_iters_conv=2)
    assert (cfg.bound_iters_for(True), cfg.bound_iters_for(False)) == (2, 7)


@pytest.mark.parametrize("bad", [{"bound_iters": -1}, {"bound_iters_conv": -1}])
def test_negative_beta_crown_steps_are_input_errors(bad):
    with pytest.raises(InputError, match="bound_iters"):
        VerifyConfig(bab=BabConfig(**bad))

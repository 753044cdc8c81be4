"""ReLU splitting on a convolutional network against the brute-force oracle.

A network with convolutions takes its own search defaults (BaBSR branching,
``bab.bound_iters_conv`` beta-CROWN steps per batch); the verdicts must not depend on them.
The oracle (tests/nets.exact_min) sees the same network as an MLP: the convolution written
out as its dense matrix.
"""

from __future__ import annotations

import dataclasses
import functools
import io

import numpy as np
import pytest
import torch
from torch import nn

import completeverify as cv
from completeverify.bab import relu_split as rs
from completeverify.bab.types import BabVerdict
from completeverify.bounds import BoundEngine, compute_bounds
from completeverify.config import BabConfig

from nets import exact_min, forward_np, search_context

C = np.array([[1.0, -1.0]])


@functools.lru_cache(maxsize=None)
def instance(seed: int):
    """(ONNX bytes, dense layers, lower, upper, exact minimum of (C y) over the box) of a
    Conv(1->2, 3x3) -> ReLU -> Linear(8, 4) -> ReLU -> Linear(4, 2) net on a 1x4x4 input."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2)
    ).eval()
    buf = io.BytesIO()
    torch.onnx.export(model, (torch.zeros(1, 1, 4, 4),), buf, dynamo=False, opset_version=13)
    model = model.double()  # the float32 weights, exactly, for the oracle
    conv, lin1, lin2 = model[0], model[3], model[5]
    with torch.no_grad():
        basis = torch.eye(16, dtype=torch.float64).reshape(16, 1, 4, 4)
        w_conv = (conv(basis) - conv.bias[None, :, None, None]).reshape(16, 8).T
        b_conv = conv.bias.repeat_interleave(4)
        layers = [
            (w_conv.numpy(), b_conv.numpy()),
            (lin1.weight.numpy(), lin1.bias.numpy()),
            (lin2.weight.numpy(), lin2.bias.numpy()),
        ]
    rng = np.random.default_rng(seed)
    lower = rng.uniform(-1.5, 0.0, size=16).round(3)
    upper = (lower + rng.uniform(0.5, 1.5, size=16)).round(3)
    m = exact_min(layers, lower, upper, [(C, np.zeros(1))])
    return buf.getvalue(), layers, lower, upper, m


def solve(seed: int, gap: float, bab: BabConfig):
    """relu_split on the instance whose threshold sits gap above the exact minimum."""
    onnx_bytes, layers, lower, upper, m = instance(seed)
    d = np.array([m + gap])
    net = cv.load_onnx(onnx_bytes)
    run = search_context(net, lower, upper, [(C, d)], dataclasses.replace(bab, race_milp=False))
    out = rs.relu_split(run, 0, 0, None, run.deadline)
    if m - d[0] <= 0:
        assert out.verdict == BabVerdict.FALSIFIED, (out.verdict, out.note)
        x = np.asarray(out.counterexample.input, dtype=np.float64).reshape(-1)
        assert np.all(x >= lower) and np.all(x <= upper)
        y = np.asarray(out.counterexample.output, dtype=np.float64).reshape(-1)
        assert np.all(C @ y <= d)
        assert np.allclose(forward_np(layers, x), y, atol=1e-4)
    else:
        assert out.verdict == BabVerdict.PROVEN, (out.verdict, out.note)
    return out


@pytest.mark.parametrize("iters", [0, 3, 10])
@pytest.mark.parametrize("gap", [-0.02, 0.02])
def test_cnn_search_agrees_with_oracle(iters, gap):
    for seed in range(4):
        solve(seed, gap, BabConfig(bound_iters_conv=iters))


def test_the_unsat_side_needs_branching():
    """The bounds alone leave most of these instances open, so the search is what decides."""
    open_ = 0
    for seed in range(4):
        onnx_bytes, _, lower, upper, m = instance(seed)
        lb, _ = compute_bounds(cv.load_onnx(onnx_bytes), lower, upper, "alpha-crown", C)
        open_ += float(lb[0]) - (m - 0.02) <= 0
    assert open_ >= 2


def test_a_cnn_search_bounds_with_bound_iters_conv(monkeypatch):
    """The search's engines take bab.bound_iters_conv on a CNN, not bab.bound_iters."""
    seen = []
    real = BoundEngine.__init__

    def spy(self, graph, config=None, *args, **kwargs):
        if config is not None:
            seen.append(config.alpha_iters)
            real(self, graph, config, *args, **kwargs)
        else:
            real(self, graph, *args, **kwargs)

    monkeypatch.setattr(BoundEngine, "__init__", spy)
    solve(0, 0.02, BabConfig(bound_iters=10, bound_iters_conv=4))
    assert 4 in seen and 10 not in seen

"""A backward walk bounds its own float rounding (bounds/rounding.py).

The networks here sum large weights that cancel: 2^30 x + 2^-30 x - 2^30 x.  In float64 the
first two terms round to 2^30 x, so a walk that trusts its products computes the coefficient 0
where the real one is 2^-30.  A margin relative to the final coefficients only is then far too
small, and the bounds exclude every real output: a false `unsat`.  Each test fails without the
walk's rounding bound.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import completeverify as cv
from completeverify.bounds import BoundConfig, BoundEngine
from completeverify.bounds.forward import forward_pre_bounds
from completeverify.bounds.mixed import MixedPrecision
from completeverify.onnx_import import load_onnx
from tests.nets import mlp_onnx, random_mlp, vnnlib_text

BIG, SMALL = 2.0**30, 2.0**-30
LO, HI = 1.0, 2.0  # the input box; every hidden ReLU is active on it

# y = 2^30 x + 2^-30 x - 2^30 x = 2^-30 x: real range [2^-30, 2^-29]
FINAL = [
    (np.ones((3, 1)), np.zeros(3)),
    (np.array([[BIG, SMALL, -BIG]]), np.zeros(1)),
]
# the same sum minus 2^-31 feeds a ReLU: p = 2^-30 x - 2^-31 in [2^-31, 3 * 2^-31], so y = p
INTERMEDIATE = [
    (np.ones((3, 1)), np.zeros(3)),
    (np.array([[BIG, SMALL, -BIG]]), np.array([-(2.0**-31)])),
    (np.ones((1, 1)), np.zeros(1)),
]
RANGES = {"final": (SMALL, 2 * SMALL), "intermediate": (2.0**-31, 3 * 2.0**-31)}
NETS = {"final": FINAL, "intermediate": INTERMEDIATE}


def _graph(layers):
    n_in = layers[0][0].shape[1]
    return load_onnx(mlp_onnx(layers, input_shape=(1, n_in)).SerializeToString())


def _box():
    return torch.tensor([[LO]], dtype=torch.float64), torch.tensor([[HI]], dtype=torch.float64)


def _y_bounds(engine: BoundEngine, method: str) -> tuple[float, float]:
    lo, hi = _box()
    res = engine.compute(lo, hi, torch.ones(1, 1, dtype=torch.float64), method=method, need_ub=True)
    return float(res.lb[0, 0]), float(res.ub[0, 0])


@pytest.mark.parametrize("which", ["final", "intermediate"])
@pytest.mark.parametrize("method", ["crown", "alpha-crown"])
def test_bounds_contain_the_real_range_when_large_terms_cancel(which, method):
    true_lo, true_hi = RANGES[which]
    lower, upper = _y_bounds(BoundEngine(_graph(NETS[which]), BoundConfig(alpha_iters=5)), method)
    assert lower <= true_lo and upper >= true_hi, (lower, upper, true_lo, true_hi)


@pytest.mark.parametrize("which", ["final", "intermediate"])
def test_the_float64_evaluation_of_a_float32_search_contains_the_real_range(which):
    graph = _graph(NETS[which])
    cfg = BoundConfig(alpha_iters=5)
    mixed = MixedPrecision(BoundEngine(graph, cfg), BoundEngine(graph, cfg, dtype=torch.float32))
    lo, hi = _box()
    rows = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    res = mixed.compute(lo, hi, rows)
    true_lo, true_hi = RANGES[which]
    assert float(res.lb[0, 0]) <= true_lo and -float(res.lb[0, 1]) >= true_hi


def test_forward_symbolic_bounds_contain_the_real_range_when_large_terms_cancel():
    """Input splitting's intermediate bounds (bounds/forward.py) carry their rounding too."""
    graph = _graph(INTERMEDIATE)
    lo, hi = _box()
    pre = forward_pre_bounds(graph, lo, hi)
    last = max(pre)  # the node feeding the second ReLU
    true_lo, true_hi = RANGES["intermediate"]
    assert float(pre[last][0][0, 0]) <= true_lo and float(pre[last][1][0, 0]) >= true_hi


def test_the_walks_margin_stays_tiny_without_cancellation():
    """On an ordinary network the rounding bound moves a bound by far less than 1e-9."""
    layers = random_mlp(np.random.default_rng(3), [4, 32, 32, 3])
    graph = _graph(layers)
    lo = torch.full((1, 4), -0.5, dtype=torch.float64)
    hi = torch.full((1, 4), 0.5, dtype=torch.float64)
    rows = torch.eye(3, dtype=torch.float64)
    engine = BoundEngine(graph, BoundConfig())
    with_margin = engine.compute(lo, hi, rows, method="crown").lb
    engine.gamma = 0.0  # the walk without its rounding bound
    without = engine.compute(lo, hi, rows, method="crown").lb
    gap = (without - with_margin).abs().max()
    assert bool((with_margin <= without).all()) and float(gap) < 1e-9


def test_verify_never_proves_a_property_the_real_network_violates(tmp_path):
    """y >= 2^-31 holds at every real point of the box; the float32 model computes 0 there, so
    no witness replays.  The only wrong answer is unsat."""
    net = tmp_path / "net.onnx"
    net.write_bytes(mlp_onnx(FINAL, input_shape=(1, 1)).SerializeToString())
    prop = tmp_path / "prop.vnnlib"
    # unsafe: -y <= -2^-31, i.e. y >= 2^-31
    prop.write_text(vnnlib_text([LO], [HI], [(np.array([[-1.0]]), np.array([-(2.0**-31)]))]))
    result = cv.verify(str(net), str(prop), timeout=20)
    assert result.status != cv.Status.UNSAT, result


def _conv_net():
    """x -> Gemm to 3 equal features -> Reshape (1, 1, 1, 3) -> Relu -> Conv [2^30, 2^-30,
    -2^30] -> Flatten: y = 2^-30 x, the cancellation inside a convolution's backward step."""
    from onnx import TensorProto, helper, numpy_helper

    inits = [
        numpy_helper.from_array(np.ones((3, 1), np.float32), "W"),
        numpy_helper.from_array(np.zeros(3, np.float32), "B"),
        numpy_helper.from_array(np.array([1, 1, 1, 3], np.int64), "S"),
        numpy_helper.from_array(np.array([[[[BIG, SMALL, -BIG]]]], np.float32), "K"),
        numpy_helper.from_array(np.zeros(1, np.float32), "KB"),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "W", "B"], ["h"], transB=1),
        helper.make_node("Reshape", ["h", "S"], ["r"]),
        helper.make_node("Relu", ["r"], ["a"]),
        helper.make_node("Conv", ["a", "K", "KB"], ["c"], kernel_shape=[1, 3]),
        helper.make_node("Flatten", ["c"], ["y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_cancel",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return load_onnx(model.SerializeToString())


@pytest.mark.parametrize("method", ["crown", "alpha-crown"])
def test_a_convolutions_step_bounds_its_rounding_too(method):
    lower, upper = _y_bounds(BoundEngine(_conv_net(), BoundConfig(alpha_iters=5)), method)
    assert lower <= SMALL and upper >= 2 * SMALL, (lower, upper)

"""Models whose nodes are not listed in topological order are read as onnxruntime runs them."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import completeverify as cv
from completeverify.errors import ModelError
from completeverify.onnx_order import evaluation_order

from nets import forward_np, mlp_onnx, random_mlp


def _shuffled(model: onnx.ModelProto, perm: list[int]) -> onnx.ModelProto:
    """The same model with its node list permuted."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = [out.graph.node[k] for k in perm]
    copies = [onnx.NodeProto() for _ in nodes]
    for c, n in zip(copies, nodes):
        c.CopyFrom(n)
    del out.graph.node[:]
    out.graph.node.extend(copies)
    return out


def test_reversed_node_list_imports_and_verifies_like_the_sorted_one():
    rng = np.random.default_rng(3)
    layers = random_mlp(rng, [3, 8, 8, 2])
    model = mlp_onnx(layers, input_shape=(1, 3))
    n = len(model.graph.node)
    reversed_model = _shuffled(model, list(range(n))[::-1])
    a, b = cv.load_onnx(model), cv.load_onnx(reversed_model)
    assert [node.name for node in a.nodes] == [node.name for node in b.nodes]
    lo, hi = -np.ones(3), np.ones(3)
    la, ua = cv.compute_bounds(a, lo, hi, method="crown")
    lb, ub = cv.compute_bounds(b, lo, hi, method="crown")
    assert np.array_equal(np.asarray(la), np.asarray(lb)) and np.array_equal(
        np.asarray(ua), np.asarray(ub)
    )
    x = rng.uniform(-1, 1, size=3)
    y = forward_np(layers, x)
    assert np.all(np.asarray(lb).reshape(-1) <= y + 1e-9) and np.all(
        y <= np.asarray(ub).reshape(-1) + 1e-9
    )


def test_order_keeps_the_file_order_where_dependencies_allow():
    nodes = [
        onnx.helper.make_node("Relu", ["x"], ["a"], name="p"),
        onnx.helper.make_node("Relu", ["x"], ["b"], name="q"),
        onnx.helper.make_node("Add", ["c", "a"], ["y"], name="r"),
        onnx.helper.make_node("Relu", ["b"], ["c"], name="s"),
    ]
    assert evaluation_order(nodes, ["p", "q", "r", "s"], "m") == [0, 1, 3, 2]


def test_cycle_names_its_nodes():
    nodes = [
        onnx.helper.make_node("Relu", ["x"], ["a"], name="first"),
        onnx.helper.make_node("Add", ["a", "c"], ["b"], name="left"),
        onnx.helper.make_node("Relu", ["b"], ["c"], name="right"),
    ]
    with pytest.raises(ModelError, match=r"cycle \('left' -> 'right' -> 'left'\)"):
        evaluation_order(nodes, ["first", "left", "right"], "m.onnx")

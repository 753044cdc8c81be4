"""The state of one ONNX-to-Graph conversion and the helpers every converter shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np
import onnx
from onnx import numpy_helper

from .errors import ModelError
from .graph import Add, Gather, Linear, Node, Reshape, Scale, Shape, numel

DENSE_LIMIT = 50_000_000  # entries of a dense matrix we accept for a linear op


@dataclass
class Var:
    """A variable tensor: the output of graph node ``index``, with its ONNX shape."""

    index: int
    shape: Shape


Value = Union[Var, np.ndarray]


class Builder:
    """Accumulates graph nodes while converting one ONNX graph."""

    def __init__(self, source: str, opset: int) -> None:
        self.source = source
        self.opset = opset
        self.nodes: list[Node] = []

    def add(self, name: str, op, inputs: list[Var], shape: Shape) -> Var:
        """Append a node and return it as a Var."""
        name = name or f"node{len(self.nodes)}"
        self.nodes.append(
            Node(name, op, tuple(v.index for v in inputs), tuple(int(s) for s in shape))
        )
        return Var(len(self.nodes) - 1, tuple(int(s) for s in shape))

    def error(self, node: onnx.NodeProto, message: str) -> ModelError:
        """A ModelError naming the node and its op."""
        return ModelError(f"{self.source}: node '{node.name}' ({node.op_type}): {message}")

    def gather(self, name: str, x: Var, index: np.ndarray) -> Var:
        """Gather by flat index (index has the output's shape, -1 = zero); skipped when identity."""
        flat = index.reshape(-1)
        if index.shape == x.shape and np.array_equal(flat, np.arange(numel(x.shape))):
            return x
        return self.add(
            name, Gather(np.ascontiguousarray(index.astype(np.int64))), [x], index.shape
        )

    def broadcast(self, name: str, x: Var, shape: Shape) -> Var:
        """Broadcast a variable to a larger shape with a Gather."""
        if tuple(x.shape) == tuple(shape):
            return x
        return self.gather(name + "/broadcast", x, np.broadcast_to(index_of(x), shape).copy())

    def scale(self, name: str, x: Var, mul, add) -> Var:
        """Elementwise affine map with broadcastable constants."""
        shape = np.broadcast_shapes(x.shape, np.shape(mul), np.shape(add))
        x = self.broadcast(name, x, shape)
        mul = np.broadcast_to(np.asarray(mul, dtype=np.float64), shape).copy()
        add = np.broadcast_to(np.asarray(add, dtype=np.float64), shape).copy()
        return self.add(name, Scale(mul, add), [x], shape)

    def linear(self, name: str, x: Var, weight: np.ndarray, bias: np.ndarray, shape: Shape) -> Var:
        """Dense linear map on the flat view."""
        return self.add(
            name,
            Linear(
                np.ascontiguousarray(weight, dtype=np.float64),
                np.ascontiguousarray(bias, dtype=np.float64).reshape(-1),
            ),
            [x],
            shape,
        )

    def reshape(self, name: str, x: Var, shape: Shape) -> Var:
        """A shape-only node (none when the shape is unchanged)."""
        if numel(shape) != numel(x.shape):
            raise ModelError(
                f"{self.source}: node '{name}': cannot reshape {x.shape} to {tuple(shape)}"
            )
        return x if tuple(shape) == tuple(x.shape) else self.add(name, Reshape(), [x], shape)


def node_attrs(node: onnx.NodeProto) -> dict:
    """Node attributes as Python values (strings decoded)."""
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def fold_constant(node: onnx.NodeProto, inputs: list, opset: int, source: str) -> list[np.ndarray]:
    """Evaluate a node whose inputs are all constants with onnx's reference implementation."""
    from .onnx_reference import reference_evaluator

    names = [f"i{k}" if n else "" for k, n in enumerate(node.input)]
    outs = [f"o{k}" for k in range(len(node.output))]
    inits = [
        numpy_helper.from_array(np.asarray(v), names[k]) for k, v in enumerate(inputs) if names[k]
    ]
    single = onnx.helper.make_node(node.op_type, names, outs, domain=node.domain)
    single.attribute.extend(node.attribute)
    graph = onnx.helper.make_graph(
        [single], "fold", [], [onnx.helper.make_empty_tensor_value_info(o) for o in outs], inits
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    try:
        return [np.asarray(v) for v in reference_evaluator(model).run(None, {})]
    except Exception as exc:
        raise ModelError(
            f"{source}: node '{node.name}' ({node.op_type}): cannot evaluate constant: {exc}"
        ) from None


# --------------------------------------------------------------------------- converters
# Each converter gets (builder, node, inputs, attrs) with inputs a list of Var | ndarray | None
# (at least one of them a Var) and returns the list of outputs (None: not produced).

Converter = Callable[[Builder, onnx.NodeProto, list, dict], list]


def index_of(x: Var) -> np.ndarray:
    """Flat positions of x's entries, in x's shape."""
    return np.arange(numel(x.shape)).reshape(x.shape)


def data_var(b: Builder, node, ins) -> Var:
    """The variable data input (input 0) of a unary-style op."""
    if not isinstance(ins[0], Var):
        raise b.error(node, "only the data input may depend on the network input")
    return ins[0]


def const_input(b: Builder, node, ins, k: int, what: str) -> Optional[np.ndarray]:
    """Constant input k (None when absent); a variable there is an error."""
    if len(ins) <= k or ins[k] is None:
        return None
    if isinstance(ins[k], Var):
        raise b.error(node, f"{what} (input {k}) must be constant")
    return np.asarray(ins[k])


def int_list(b: Builder, node, ins, at, k: int, name: str) -> Optional[list[int]]:
    """An int list given as attribute ``name`` (old opsets) or as constant input k (new opsets)."""
    if name in at:
        return [int(v) for v in at[name]]
    v = const_input(b, node, ins, k, name)
    return None if v is None else [int(a) for a in v.reshape(-1)]


def normalize_axis(b: Builder, node, axis: int, rank: int) -> int:
    """A non-negative axis, checked against the rank."""
    if not -rank <= axis < rank:
        raise b.error(node, f"axis {axis} out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def var_and_const(b: Builder, node, ins) -> tuple[Var, np.ndarray, bool]:
    """Split a binary op's inputs into (variable, constant, variable_first)."""
    x, y = ins[0], ins[1]
    if isinstance(x, Var) and isinstance(y, Var):
        raise b.error(
            node,
            "product or quotient of two variable tensors is not piecewise linear (unsupported)",
        )
    if isinstance(x, Var):
        return x, np.asarray(y, dtype=np.float64), True
    return y, np.asarray(x, dtype=np.float64), False


def add_vars(b: Builder, name: str, x: Var, y: Var) -> Var:
    """x + y for two variables, broadcasting both."""
    shape = np.broadcast_shapes(x.shape, y.shape)
    return b.add(
        name, Add(), [b.broadcast(name + "/a", x, shape), b.broadcast(name + "/b", y, shape)], shape
    )

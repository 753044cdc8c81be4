"""ONNX -> Graph: a table from ONNX op type to one small converter.

Constant subgraphs (Shape, Constant, arithmetic on initializers, ...) are folded
at import time with onnx's reference implementation.  Every unsupported
operator in the model is reported in one error before any work starts.
Opsets 7 to 21 are accepted; converters read both the attribute form (old
opsets) and the input form (new opsets) of axes, pads, bounds and shapes.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Union

import numpy as np
import onnx
from onnx import numpy_helper

from .errors import ModelError, UnsupportedOperatorError
from .graph import Graph, Input, Node, Reshape, Shape, numel
from .graph_opt import simplify
from .onnx_builder import Builder, Value, Var, fold_constant, node_attrs
from .onnx_ops import CONSTANT_ONLY, CONVERTERS, SHAPE_OPS

MIN_OPSET, MAX_OPSET = 7, 21
DEFAULT_DOMAINS = ("", "ai.onnx")


def read_model(source: Union[str, os.PathLike, bytes, onnx.ModelProto]) -> tuple[onnx.ModelProto, str]:
    """Load an ONNX model from a path (.onnx or gzipped), bytes, or a ModelProto."""
    if isinstance(source, onnx.ModelProto):
        return source, "<model>"
    if isinstance(source, bytes):
        data, name = source, "<bytes>"
    else:
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise ModelError(f"{name}: file not found")
        data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ModelError(f"{name}: corrupt gzip file ({exc})") from None
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # protobuf raises its own DecodeError types
        raise ModelError(f"{name}: not a valid ONNX file ({exc.__class__.__name__})") from None
    if not model.graph.node and not model.graph.output:
        raise ModelError(f"{name}: not a valid ONNX file (empty graph)")
    return model, name



def _node_names(g: onnx.GraphProto) -> list[str]:
    """Each node's name, or '<op>_<k>' for unnamed nodes (the model itself is not changed)."""
    return [n.name or f"{n.op_type}_{k}" for k, n in enumerate(g.node)]


def _unsupported(g: onnx.GraphProto, names: list[str], variables: set[str]) -> list[tuple[str, str]]:
    """(op, node name) of every node we cannot convert, found by one pass over the graph."""
    variables = set(variables)
    bad = []
    for node, name in zip(g.node, names):
        on_var = any(i in variables for i in node.input)
        known = node.op_type in CONVERTERS or node.op_type in CONSTANT_ONLY or node.op_type in SHAPE_OPS
        if node.domain not in DEFAULT_DOMAINS or not known or (on_var and node.op_type in CONSTANT_ONLY):
            bad.append((node.op_type, name))
        if on_var and node.op_type not in SHAPE_OPS:
            variables.update(node.output)
    return bad


def _input_shape(vi: onnx.ValueInfoProto, source: str) -> Shape:
    """The ONNX input shape; a symbolic or zero batch dimension (the first) is read as 1."""
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        raise ModelError(f"{source}: input '{vi.name}' has no declared shape")
    dims = []
    for k, d in enumerate(tt.shape.dim):
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        elif k == 0:
            dims.append(1)
        else:
            raise ModelError(f"{source}: input '{vi.name}': dimension {k} is not static "
                             f"('{d.dim_param or d.dim_value}'); only the batch dimension may be dynamic")
    return tuple(dims)


def _check_output_shape(vi: onnx.ValueInfoProto, shape: Shape, source: str) -> None:
    """Refuse when the declared static output shape disagrees with the computed one."""
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return
    declared = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim]
    if len(declared) != len(shape) or any(d is not None and d != s for d, s in zip(declared, shape)):
        raise ModelError(f"{source}: output '{vi.name}' is declared with shape "
                         f"{tuple(d or '?' for d in declared)} but the graph computes shape {shape}")


def _opset(model: onnx.ModelProto, source: str) -> int:
    """The default-domain opset, checked against the supported range."""
    opset = next((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), None)
    if opset is None:
        raise ModelError(f"{source}: model declares no default-domain opset")
    if not (MIN_OPSET <= opset <= MAX_OPSET):
        raise ModelError(f"{source}: opset {opset} is not supported (supported: {MIN_OPSET}-{MAX_OPSET})")
    return opset


def _convert_node(b: Builder, node: onnx.NodeProto, ins: list, opset: int) -> list:
    """Outputs of one node: folded when constant, else through its converter."""
    if node.op_type in SHAPE_OPS and isinstance(ins[0], Var):
        shape = np.asarray(ins[0].shape, dtype=np.int64)
        if node.op_type == "Size":
            return [np.asarray(numel(ins[0].shape), dtype=np.int64)]
        at = node_attrs(node)  # Shape(start, end) from opset 15
        return [shape[at.get("start", 0):at.get("end", len(shape))]]
    if all(not isinstance(v, Var) for v in ins):
        return fold_constant(node, ins, opset, b.source)
    return CONVERTERS[node.op_type](b, node, ins, node_attrs(node))


def import_model(model: onnx.ModelProto, source: str = "<model>", simplify_graph: bool = True) -> Graph:
    """Convert a loaded ONNX model to a Graph (raises ModelError / UnsupportedOperatorError)."""
    g = model.graph
    opset = _opset(model, source)
    env: dict[str, Value] = {init.name: numpy_helper.to_array(init) for init in g.initializer}
    real_inputs = [vi for vi in g.input if vi.name not in env]
    names = _node_names(g)
    unsupported = _unsupported(g, names, {vi.name for vi in real_inputs})
    if unsupported:
        raise UnsupportedOperatorError(unsupported, source)
    if len(real_inputs) != 1:
        raise ModelError(f"{source}: expected exactly one network input, found {len(real_inputs)}")
    if len(g.output) != 1:
        raise ModelError(f"{source}: expected exactly one network output, found {len(g.output)}")
    inp = real_inputs[0]
    elem = inp.type.tensor_type.elem_type
    if elem not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE):
        raise ModelError(f"{source}: input '{inp.name}' must be float32 or float64")
    b = Builder(source, opset)
    env[inp.name] = b.add(inp.name, Input(), [], _input_shape(inp, source))

    for node, name in zip(g.node, names):
        if node.name != name:
            node = onnx.NodeProto(op_type=node.op_type, domain=node.domain, name=name,
                                  input=node.input, output=node.output, attribute=node.attribute)
        for i in node.input:
            if i and i not in env:
                raise b.error(node, f"input '{i}' is not produced by any node")
        outs = _convert_node(b, node, [env[i] if i else None for i in node.input], opset)
        for out_name, val in zip(node.output, outs):
            if out_name and val is not None:
                env[out_name] = val
    out = env.get(g.output[0].name)
    if not isinstance(out, Var):
        raise ModelError(f"{source}: the output '{g.output[0].name}' does not depend on the input")
    _check_output_shape(g.output[0], out.shape, source)
    if out.index != len(b.nodes) - 1 or out.index == 0:
        b.add(g.output[0].name, Reshape(), [out], out.shape)
    graph = Graph(tuple(b.nodes), input_name=inp.name, output_name=g.output[0].name,
                  input_dtype="float64" if elem == onnx.TensorProto.DOUBLE else "float32",
                  onnx_model=model, source=source)
    graph = _prune(graph)
    return simplify(graph) if simplify_graph else graph


def _prune(graph: Graph) -> Graph:
    """Drop nodes the output does not depend on."""
    live = {len(graph.nodes) - 1}
    for i in range(len(graph.nodes) - 1, -1, -1):
        if i in live:
            live.update(graph.nodes[i].inputs)
    live.add(0)
    keep = sorted(live)
    remap = {old: new for new, old in enumerate(keep)}
    nodes = tuple(
        Node(graph.nodes[i].name, graph.nodes[i].op, tuple(remap[j] for j in graph.nodes[i].inputs), graph.nodes[i].shape)
        for i in keep
    )
    return graph.with_nodes(nodes)


def load_onnx(source: Union[str, os.PathLike, bytes, onnx.ModelProto], simplify_graph: bool = True) -> Graph:
    """Read and convert an ONNX model (path, .onnx.gz, bytes or ModelProto) to a Graph."""
    model, name = read_model(source)
    return import_model(model, name, simplify_graph)

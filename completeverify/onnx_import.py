"""ONNX -> Graph: a table from ONNX op type to one small converter.

Constant subgraphs (Shape, Constant, arithmetic on initializers, ...) are folded
at import time with onnx's reference implementation.  Every unsupported
operator in the model is reported in one error before any work starts.
Opsets 7 to 21 are accepted; converters read both the attribute form (old
opsets) and the input form (new opsets) of axes, pads, bounds and shapes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np
import onnx
from onnx import numpy_helper

from .config import Limits
from .errors import CompleteVerifyError, ModelError, UnsupportedOperatorError
from .graph import Graph, Input, Reshape, Shape, numel
from .graph_opt import simplify
from .onnx_builder import Builder, Value, Var, fold_constant, node_attrs
from .onnx_guard import (
    check_finite,
    check_tensor,
    declared_elements,
    is_float_tensor,
    predicted_elements,
)
from .onnx_ops import CONSTANT_ONLY, CONVERTERS, SHAPE_OPS
from .onnx_order import evaluation_order
from .safe_read import GZIP_MAGIC, flatten_error, gunzip_limited, one_line, read_limited

MIN_OPSET, MAX_OPSET = 7, 21
DEFAULT_DOMAINS = ("", "ai.onnx")


def read_model(
    source: Union[str, os.PathLike, bytes, onnx.ModelProto], limits: Limits | None = None
) -> tuple[onnx.ModelProto, str]:
    """Load an ONNX model from a path (.onnx or gzipped), bytes, or a ModelProto.

    File and decompressed sizes are checked against ``limits`` while reading.
    """
    limits = limits or Limits()
    if isinstance(source, onnx.ModelProto):
        return source, "<model>"
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), "<bytes>"

        def error(message: str) -> ModelError:
            """A ModelError about the in-memory model."""
            return ModelError(f"{name}: {message}")

        if len(data) > limits.max_file_bytes:
            raise error(f"model is {len(data)} bytes, over limits.max_file_bytes")
        if data[:2] == GZIP_MAGIC:
            data = gunzip_limited(
                data,
                error,
                max_decompressed_bytes=limits.max_decompressed_bytes,
                max_compression_ratio=limits.max_compression_ratio,
            )
    else:
        name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else repr(source)
        if not isinstance(name, str):
            raise ModelError(f"{name!r}: a model path must be text")

        def error(message: str) -> ModelError:
            """A ModelError about the model file."""
            return ModelError(f"{name}: {message}")

        data = read_limited(
            name,
            "model",
            error,
            max_file_bytes=limits.max_file_bytes,
            max_decompressed_bytes=limits.max_decompressed_bytes,
            max_compression_ratio=limits.max_compression_ratio,
        )
    if not data:
        raise ModelError(f"{name}: the file is empty, not an ONNX model")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # protobuf raises its own DecodeError types
        raise ModelError(
            f"{name}: not a valid ONNX file ({exc.__class__.__name__}: {_first_line(exc)})"
        ) from None
    if not model.graph.node and not model.graph.output:
        raise ModelError(f"{name}: not a valid ONNX file (empty graph)")
    return model, name


def _first_line(exc: BaseException) -> str:
    """An exception's message as one short line, for one-line errors."""
    return one_line(str(exc), 200) or exc.__class__.__name__


def _node_names(g: onnx.GraphProto) -> list[str]:
    """Each node's name, or '<op>_<k>' for unnamed nodes (the model itself is not changed)."""
    return [n.name or f"{n.op_type}_{k}" for k, n in enumerate(g.node)]


def _unsupported(
    g: onnx.GraphProto, names: list[str], variables: set[str], order: list[int]
) -> list[tuple[str, str]]:
    """(op, node name) of every node we cannot convert, found by one pass in evaluation order."""
    variables = set(variables)
    bad = []
    for k in order:
        node, name = g.node[k], names[k]
        on_var = any(i in variables for i in node.input)
        known = (
            node.op_type in CONVERTERS or node.op_type in CONSTANT_ONLY or node.op_type in SHAPE_OPS
        )
        if (
            node.domain not in DEFAULT_DOMAINS
            or not known
            or (on_var and node.op_type in CONSTANT_ONLY)
        ):
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
            raise ModelError(
                f"{source}: input '{vi.name}': dimension {k} is not static "
                f"('{d.dim_param or d.dim_value}'); only the batch dimension may be dynamic"
            )
    return tuple(dims)


def _check_output_shape(vi: onnx.ValueInfoProto, shape: Shape, source: str) -> None:
    """Refuse when the declared static output shape disagrees with the computed one."""
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return
    declared = [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim
    ]
    if len(declared) != len(shape) or any(
        d is not None and d != s for d, s in zip(declared, shape)
    ):
        raise ModelError(
            f"{source}: output '{vi.name}' is declared with shape "
            f"{tuple(d or '?' for d in declared)} but the graph computes shape {shape}"
        )


def _opset(model: onnx.ModelProto, source: str) -> int:
    """The default-domain opset, checked against the supported range."""
    opset = next((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), None)
    if opset is None:
        raise ModelError(f"{source}: model declares no default-domain opset")
    if not (MIN_OPSET <= opset <= MAX_OPSET):
        raise ModelError(
            f"{source}: opset {opset} is not supported (supported: {MIN_OPSET}-{MAX_OPSET})"
        )
    return opset


def _convert_node(b: Builder, node: onnx.NodeProto, ins: list, opset: int) -> list:
    """Outputs of one node: folded when constant, else through its converter."""
    if node.op_type in SHAPE_OPS and isinstance(ins[0], Var):
        shape = np.asarray(ins[0].shape, dtype=np.int64)
        if node.op_type == "Size":
            return [np.asarray(numel(ins[0].shape), dtype=np.int64)]
        at = node_attrs(node)  # Shape(start, end) from opset 15
        return [shape[at.get("start", 0) : at.get("end", len(shape))]]
    if all(not isinstance(v, Var) for v in ins):
        return fold_constant(node, ins, opset, b.source)
    return CONVERTERS[node.op_type](b, node, ins, node_attrs(node))


def _check_initializers(
    g: onnx.GraphProto, source: str, limits: Limits, folder: Path | None
) -> dict[str, Value]:
    """Every initializer validated (size, data, finiteness) and converted to numpy."""
    env: dict[str, Value] = {}
    total = 0
    for k, init in enumerate(g.initializer):
        what = f"initializer '{init.name or k}'"
        total += check_tensor(init, what, source, limits, folder)
        if total > limits.max_parameters:
            raise ModelError(
                f"{source}: the initializers hold more than {limits.max_parameters} "
                "values in total (limits.max_parameters)"
            )
        try:
            array = numpy_helper.to_array(init)
        except Exception as exc:  # noqa: BLE001 - malformed tensor data of any kind
            raise ModelError(f"{source}: {what} cannot be read: {_first_line(exc)}") from None
        if is_float_tensor(init):
            check_finite(array, what, source, allow_inf=True)  # inf: see _check_node_inputs
        env[init.name] = array
    return env


def _check_names(g: onnx.GraphProto, source: str) -> None:
    """Refuse tensor, node and operator names with control characters (they would break
    one-line messages and are not valid ONNX identifiers)."""

    def bad(text: str) -> bool:
        """True when ``text`` holds a control character."""
        return any(ord(c) < 32 or ord(c) == 127 for c in text)

    groups = [
        ("graph input", [vi.name for vi in g.input]),
        ("graph output", [vi.name for vi in g.output]),
        ("initializer", [t.name for t in g.initializer]),
    ]
    for k, node in enumerate(g.node):
        groups.append(
            (
                f"node #{k}",
                [
                    node.name,
                    node.op_type,
                    node.domain,
                    *node.input,
                    *node.output,
                    *(a.name for a in node.attribute),
                ],
            )
        )
    for what, names in groups:
        for name in names:
            if bad(name):
                raise ModelError(
                    f"{source}: {what} uses the name {name[:60]!r}, which holds "
                    "control characters; rename it"
                )


def _node_error(source: str, node: onnx.NodeProto, message: str) -> ModelError:
    """A ModelError naming the node and its op."""
    return ModelError(f"{source}: node '{node.name}' ({node.op_type}): {message}")


def _check_attributes(source: str, node: onnx.NodeProto, opset: int) -> None:
    """Refuse attributes the operator's ONNX schema does not define, or of the wrong type
    (the reference evaluator used to replay counterexamples would refuse them later)."""
    if node.domain not in DEFAULT_DOMAINS:
        return
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, "")
    except Exception:  # noqa: BLE001 - no schema at this opset: the converter decides
        return
    for attr in node.attribute:
        spec = schema.attributes.get(attr.name)
        if spec is None:
            known = ", ".join(sorted(schema.attributes)) or "none"
            raise _node_error(
                source,
                node,
                f"unknown attribute '{attr.name}' for {node.op_type} "
                f"at opset {opset} (known: {known})",
            )
        want = str(getattr(spec.type, "name", spec.type))  # AttributeProto type names
        got = onnx.AttributeProto.AttributeType.Name(attr.type)
        if attr.type != onnx.AttributeProto.UNDEFINED and got != want:
            raise _node_error(source, node, f"attribute '{attr.name}' must be {want}, not {got}")


def _check_node_inputs(
    source: str, node: onnx.NodeProto, env: dict[str, Value], limits: Limits, opset: int
) -> None:
    """Refuse inputs that no node produces and outputs whose size is over the limits."""
    for i in node.input:
        if i and i not in env:
            raise _node_error(
                source, node, f"input '{i}' is not produced by any node, initializer or graph input"
            )
    _check_attributes(source, node, opset)
    for attr in node.attribute:
        if attr.HasField("t"):
            check_tensor(
                attr.t,
                f"node '{node.name}' ({node.op_type}) attribute '{attr.name}'",
                source,
                limits,
                None,
            )
        if attr.HasField("g") or len(attr.graphs):
            raise _node_error(source, node, "subgraphs (If, Loop, Scan) are not supported")
    ins = [env[i] if i else None for i in node.input]
    if any(isinstance(v, Var) for v in ins):  # constants that reach the network need finite values
        for k, (i, v) in enumerate(zip(node.input, ins)):
            if isinstance(v, np.ndarray) and not (node.op_type == "Clip" and k > 0):
                check_finite(v, f"node '{node.name}' ({node.op_type}): input '{i}'", source)
    count = predicted_elements(node.op_type, ins)
    if count is not None:
        limit = limits.max_tensor_elements
        if any(isinstance(v, Var) for v in ins):
            limit = min(limit, limits.max_activation_elements)
        if count > limit:
            raise _node_error(
                source, node, f"output would have {count} elements, over the limit of {limit}"
            )


def _check_outputs(source: str, node: onnx.NodeProto, outs: list, limits: Limits) -> None:
    """Refuse oversized activations and non-finite folded constants."""
    for out in outs:
        if isinstance(out, Var):
            if numel(out.shape) > limits.max_activation_elements:
                raise _node_error(
                    source,
                    node,
                    f"output shape {out.shape} has "
                    f"{numel(out.shape)} elements, over limits."
                    f"max_activation_elements ({limits.max_activation_elements})",
                )
        elif isinstance(out, np.ndarray):
            if out.size > limits.max_tensor_elements:
                raise _node_error(
                    source,
                    node,
                    f"constant output has {out.size} elements, over "
                    f"limits.max_tensor_elements ({limits.max_tensor_elements})",
                )
            if node.op_type not in ("Shape", "Size"):
                check_finite(
                    out,
                    f"node '{node.name}' ({node.op_type}): constant output",
                    source,
                    allow_inf=True,
                )


def import_model(
    model: onnx.ModelProto,
    source: str = "<model>",
    simplify_graph: bool = True,
    limits: Limits | None = None,
    folder: Path | None = None,
) -> Graph:
    """Convert a loaded ONNX model to a Graph (raises ModelError / UnsupportedOperatorError).

    ``folder``: where external tensor data is looked up (the model file's folder; None
    refuses external data).  Any failure inside is reported as a ModelError naming the node.
    """
    limits = limits or Limits()
    g = model.graph
    if len(g.node) > limits.max_nodes:
        raise ModelError(
            f"{source}: the graph has {len(g.node)} nodes, over limits.max_nodes "
            f"({limits.max_nodes})"
        )
    opset = _opset(model, source)
    _check_names(g, source)
    env = _check_initializers(g, source, limits, folder)
    real_inputs = [vi for vi in g.input if vi.name not in env]
    names = _node_names(g)
    order = evaluation_order(g.node, names, source)  # data order, the file's where free
    unsupported = _unsupported(g, names, {vi.name for vi in real_inputs}, order)
    if unsupported:
        raise UnsupportedOperatorError(unsupported, source)
    if len(real_inputs) != 1:
        raise ModelError(
            f"{source}: expected exactly one network input, found {len(real_inputs)}"
            f" ({', '.join(repr(vi.name) for vi in real_inputs) or 'none'})"
        )
    if len(g.output) != 1:
        raise ModelError(f"{source}: expected exactly one network output, found {len(g.output)}")
    inp = real_inputs[0]
    elem = inp.type.tensor_type.elem_type
    if elem not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE):
        raise ModelError(f"{source}: input '{inp.name}' must be float32 or float64")
    b = Builder(source, opset)
    in_shape = _input_shape(inp, source)
    declared_elements(in_shape, f"input '{inp.name}'", source, limits.max_activation_elements)
    env[inp.name] = b.add(inp.name, Input(), [], in_shape)

    for k in order:
        node, name = g.node[k], names[k]
        if node.name != name:
            node = onnx.NodeProto(
                op_type=node.op_type,
                domain=node.domain,
                name=name,
                input=node.input,
                output=node.output,
                attribute=node.attribute,
            )
        _check_node_inputs(source, node, env, limits, opset)
        try:
            outs = _convert_node(b, node, [env[i] if i else None for i in node.input], opset)
        except CompleteVerifyError:
            raise
        except Exception as exc:  # noqa: BLE001 - the error boundary of one node
            raise _node_error(
                source,
                node,
                f"cannot convert ({exc.__class__.__name__}: "
                f"{_first_line(exc)}); check its inputs, attributes and shapes",
            ) from None
        _check_outputs(source, node, outs, limits)
        for out_name, val in zip(node.output, outs):
            if out_name and val is not None:
                env[out_name] = val
    out = env.get(g.output[0].name)
    if not isinstance(out, Var):
        raise ModelError(f"{source}: the output '{g.output[0].name}' does not depend on the input")
    _check_output_shape(g.output[0], out.shape, source)
    if out.index != len(b.nodes) - 1 or out.index == 0:
        b.add(g.output[0].name, Reshape(), [out], out.shape)
    graph = Graph(
        tuple(b.nodes),
        input_name=inp.name,
        output_name=g.output[0].name,
        input_dtype="float64" if elem == onnx.TensorProto.DOUBLE else "float32",
        onnx_model=model,
        source=source,
    )
    graph = _prune(graph)
    return simplify(graph) if simplify_graph else graph


def _prune(graph: Graph) -> Graph:
    """Drop nodes the output does not depend on."""
    return graph.restricted(graph.live_nodes())


def load_onnx(
    source: Union[str, os.PathLike, bytes, onnx.ModelProto],
    simplify_graph: bool = True,
    limits: Limits | None = None,
) -> Graph:
    """Read and convert an ONNX model (path, .onnx.gz, bytes or ModelProto) to a Graph.

    The error boundary of the ONNX reader: nothing but CompleteVerifyError subclasses
    leaves it.  External data is read from the model file's folder.
    """
    name = "<model>"
    try:
        model, name = read_model(source, limits)
        folder = None
        if isinstance(source, (str, os.PathLike)):
            folder = Path(os.fspath(source)).parent
        return import_model(model, name, simplify_graph, limits, folder)
    except CompleteVerifyError as exc:
        flatten_error(exc)  # names and messages from the file may hold line breaks
        raise
    except RecursionError:
        raise ModelError(f"{name}: the model is nested too deeply to import") from None
    except MemoryError:
        raise ModelError(
            f"{name}: out of memory while importing the model (lower its size or the limits)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the reader's error boundary
        raise ModelError(
            f"{name}: cannot import the model ({exc.__class__.__name__}: {_first_line(exc)})"
        ) from None

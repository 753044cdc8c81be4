"""ONNX -> Graph: a table from ONNX op type to one small converter.

Constant subgraphs (Shape, Constant, arithmetic on initializers, ...) are folded
at import time with onnx's reference implementation.  Every unsupported
operator in the model is reported in one error before any work starts.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

import numpy as np
import onnx
from onnx import numpy_helper

from .errors import ModelError, UnsupportedOperatorError
from .graph import (
    Add,
    Concat,
    Conv,
    Gather,
    Graph,
    Input,
    Linear,
    MaxPool,
    Node,
    Relu,
    Reshape,
    Scale,
    Shape,
    Sigmoid,
    Tanh,
    numel,
)
from .graph_opt import simplify

MIN_OPSET, MAX_OPSET = 7, 21
DENSE_LIMIT = 50_000_000  # entries of a dense matrix we accept for a linear op


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
        except OSError as exc:
            raise ModelError(f"{name}: corrupt gzip file ({exc})") from None
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # protobuf raises its own DecodeError types
        raise ModelError(f"{name}: not a valid ONNX file ({exc.__class__.__name__})") from None
    if not model.graph.node and not model.graph.output:
        raise ModelError(f"{name}: not a valid ONNX file (empty graph)")
    return model, name


@dataclass
class Var:
    """A variable tensor: the output of graph node ``index``, with its ONNX shape."""

    index: int
    shape: Shape


Value = Union[Var, np.ndarray]


class _Builder:
    """Accumulates graph nodes while converting one ONNX graph."""

    def __init__(self, source: str, opset: int) -> None:
        self.source = source
        self.opset = opset
        self.nodes: list[Node] = []

    def add(self, name: str, op, inputs: list[Var], shape: Shape) -> Var:
        """Append a node and return it as a Var."""
        name = name or f"node{len(self.nodes)}"
        self.nodes.append(Node(name, op, tuple(v.index for v in inputs), tuple(int(s) for s in shape)))
        return Var(len(self.nodes) - 1, tuple(int(s) for s in shape))

    def error(self, node: onnx.NodeProto, message: str) -> ModelError:
        """A ModelError naming the node."""
        return ModelError(f"{self.source}: node '{node.name}' ({node.op_type}): {message}")

    def gather(self, name: str, x: Var, index: np.ndarray) -> Var:
        """Gather by flat index (index has the output's shape); skipped when identity."""
        flat = index.reshape(-1)
        if index.shape == x.shape and np.array_equal(flat, np.arange(numel(x.shape))):
            return x
        return self.add(name, Gather(np.ascontiguousarray(index.astype(np.int64))), [x], index.shape)

    def broadcast(self, name: str, x: Var, shape: Shape) -> Var:
        """Broadcast a variable to a larger shape with a Gather."""
        if tuple(x.shape) == tuple(shape):
            return x
        idx = np.arange(numel(x.shape)).reshape(x.shape)
        return self.gather(name + "/broadcast", x, np.broadcast_to(idx, shape).copy())

    def scale(self, name: str, x: Var, mul, add) -> Var:
        """Elementwise affine map with broadcastable constants."""
        shape = np.broadcast_shapes(x.shape, np.shape(mul), np.shape(add))
        x = self.broadcast(name, x, shape)
        mul = np.broadcast_to(np.asarray(mul, dtype=np.float64), shape).copy()
        add = np.broadcast_to(np.asarray(add, dtype=np.float64), shape).copy()
        return self.add(name, Scale(mul, add), [x], shape)

    def linear(self, name: str, x: Var, weight: np.ndarray, bias: np.ndarray, shape: Shape) -> Var:
        """Dense linear map on the flat view."""
        return self.add(name, Linear(np.ascontiguousarray(weight, dtype=np.float64),
                                     np.ascontiguousarray(bias, dtype=np.float64).reshape(-1)), [x], shape)


def _attrs(node: onnx.NodeProto) -> dict:
    """Node attributes as Python values."""
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _fold_constant(node: onnx.NodeProto, inputs: list, opset: int, source: str) -> list[np.ndarray]:
    """Evaluate a node whose inputs are all constants with onnx's reference implementation."""
    from onnx.reference import ReferenceEvaluator

    names = [f"i{k}" if n else "" for k, n in enumerate(node.input)]
    outs = [f"o{k}" for k in range(len(node.output))]
    inits = [numpy_helper.from_array(np.asarray(v), names[k]) for k, v in enumerate(inputs) if names[k]]
    single = onnx.helper.make_node(node.op_type, names, outs, domain=node.domain, **_attrs(node))
    graph = onnx.helper.make_graph(
        [single], "fold", [], [onnx.helper.make_empty_tensor_value_info(o) for o in outs], inits
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    try:
        return [np.asarray(v) for v in ReferenceEvaluator(model).run(None, {})]
    except Exception as exc:
        raise ModelError(f"{source}: node '{node.name}' ({node.op_type}): cannot evaluate constant: {exc}") from None


# --------------------------------------------------------------------------- converters
# Each converter gets (builder, node, inputs, attrs) with inputs a list of Var | ndarray | None
# and returns the list of outputs.

Converter = Callable[[_Builder, onnx.NodeProto, list, dict], list]


def _var_and_const(b: _Builder, node, ins) -> tuple[Var, np.ndarray, bool]:
    """Split a binary op's inputs into (variable, constant, variable_first)."""
    x, y = ins[0], ins[1]
    if isinstance(x, Var) and not isinstance(y, Var):
        return x, np.asarray(y, dtype=np.float64), True
    if isinstance(y, Var) and not isinstance(x, Var):
        return y, np.asarray(x, dtype=np.float64), False
    raise b.error(node, "internal: expected exactly one variable input")


def _conv_add(b, node, ins, at):
    x, y = ins[0], ins[1]
    if isinstance(x, Var) and isinstance(y, Var):
        shape = np.broadcast_shapes(x.shape, y.shape)
        return [b.add(node.name, Add(), [b.broadcast(node.name + "/a", x, shape),
                                         b.broadcast(node.name + "/b", y, shape)], shape)]
    v, c, _ = _var_and_const(b, node, ins)
    return [b.scale(node.name, v, 1.0, c)]


def _conv_sub(b, node, ins, at):
    x, y = ins[0], ins[1]
    if isinstance(x, Var) and isinstance(y, Var):
        shape = np.broadcast_shapes(x.shape, y.shape)
        neg = b.scale(node.name + "/neg", y, -1.0, 0.0)
        return [b.add(node.name, Add(), [b.broadcast(node.name + "/a", x, shape),
                                         b.broadcast(node.name + "/b", neg, shape)], shape)]
    v, c, first = _var_and_const(b, node, ins)
    return [b.scale(node.name, v, 1.0, -c) if first else b.scale(node.name, v, -1.0, c)]


def _conv_mul(b, node, ins, at):
    if isinstance(ins[0], Var) and isinstance(ins[1], Var):
        raise b.error(node, "product of two variable tensors is not piecewise linear (unsupported)")
    v, c, _ = _var_and_const(b, node, ins)
    return [b.scale(node.name, v, c, 0.0)]


def _conv_div(b, node, ins, at):
    v, c, first = _var_and_const(b, node, ins) if not (isinstance(ins[0], Var) and isinstance(ins[1], Var)) else (None, None, False)
    if v is None or not first:
        raise b.error(node, "division by a variable tensor is not piecewise linear (unsupported)")
    if np.any(c == 0):
        raise b.error(node, "division by zero constant")
    return [b.scale(node.name, v, 1.0 / c, 0.0)]


def _conv_neg(b, node, ins, at):
    return [b.scale(node.name, ins[0], -1.0, 0.0)]


def _matmul_right(b: _Builder, name: str, x: Var, w: np.ndarray, bias, out_name: str) -> Var:
    """x (..., M, K) @ w (K, N) + bias, as one Linear on the flat view."""
    xs = x.shape if len(x.shape) >= 1 else (1,)
    vec = len(xs) == 1
    k, n = w.shape
    if xs[-1] != k:
        raise ModelError(f"{b.source}: node '{name}': shape mismatch {tuple(xs)} @ {tuple(w.shape)}")
    out_shape = (n,) if vec else tuple(xs[:-1]) + (n,)
    p = numel(xs[:-1]) if not vec else 1
    if p * p * k * n > DENSE_LIMIT:
        raise ModelError(f"{b.source}: node '{name}': MatMul too large to expand ({out_shape})")
    weight = w.T if p == 1 else np.kron(np.eye(p), w.T)
    bias_full = np.broadcast_to(np.asarray(bias, dtype=np.float64), out_shape).reshape(-1)
    return b.linear(out_name, x, weight, bias_full, out_shape)


def _matmul_left(b: _Builder, name: str, w: np.ndarray, x: Var) -> Var:
    """w (M, K) @ x (..., K, N) as one Linear (x of shape (K,) gives (M,))."""
    if len(x.shape) == 1 and w.ndim == 2 and w.shape[1] == x.shape[0]:
        return b.linear(name, x, w, np.zeros(w.shape[0]), (w.shape[0],))
    if len(x.shape) < 2 or x.shape[-2] != w.shape[1] or w.ndim != 2:
        raise ModelError(f"{b.source}: node '{name}': unsupported MatMul shapes {w.shape} @ {x.shape}")
    m, _ = w.shape
    n = x.shape[-1]
    p = numel(x.shape[:-2])
    weight = np.kron(np.eye(p), np.kron(w, np.eye(n)))
    if weight.size > DENSE_LIMIT:
        raise ModelError(f"{b.source}: node '{name}': MatMul too large to expand")
    out_shape = tuple(x.shape[:-2]) + (m, n)
    return b.linear(name, x, weight, np.zeros(numel(out_shape)), out_shape)


def _conv_matmul(b, node, ins, at):
    x, y = ins[0], ins[1]
    if isinstance(x, Var) and isinstance(y, Var):
        raise b.error(node, "product of two variable tensors is not piecewise linear (unsupported)")
    if isinstance(x, Var):
        w = np.asarray(y, dtype=np.float64)
        if w.ndim != 2:
            raise b.error(node, f"constant operand of rank {w.ndim} is not supported")
        return [_matmul_right(b, node.name, x, w, 0.0, node.name)]
    return [_matmul_left(b, node.name, np.asarray(x, dtype=np.float64), y)]


def _conv_gemm(b, node, ins, at):
    a, w = ins[0], ins[1]
    c = ins[2] if len(ins) > 2 and ins[2] is not None else 0.0
    alpha, beta = at.get("alpha", 1.0), at.get("beta", 1.0)
    if not isinstance(a, Var) or isinstance(w, Var) or isinstance(c, Var):
        raise b.error(node, "only Gemm(variable, constant, constant) is supported")
    if at.get("transA", 0):
        raise b.error(node, "transA=1 on a variable input is not supported")
    w = np.asarray(w, dtype=np.float64)
    if at.get("transB", 0):
        w = w.T
    if len(a.shape) != 2:
        raise b.error(node, f"input must be 2-D, got shape {a.shape}")
    bias = beta * np.asarray(c, dtype=np.float64)
    return [_matmul_right(b, node.name, a, alpha * w, bias, node.name)]


def _conv_unary(op_cls):
    def convert(b, node, ins, at):
        return [b.add(node.name, op_cls(), [ins[0]], ins[0].shape)]

    return convert


def _conv_identity(b, node, ins, at):
    return [ins[0]] + [None] * (len(node.output) - 1)


def _conv_cast(b, node, ins, at):
    to = at.get("to")
    if to not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
        raise b.error(node, "cast of a variable tensor to a non-float type is not supported")
    return [ins[0]]


def _reshape_to(b, name, x: Var, shape: Shape) -> Var:
    """A shape-only node."""
    if numel(shape) != numel(x.shape):
        raise ModelError(f"{b.source}: node '{name}': cannot reshape {x.shape} to {tuple(shape)}")
    if tuple(shape) == tuple(x.shape):
        return x
    return b.add(name, Reshape(), [x], shape)


def _conv_flatten(b, node, ins, at):
    x = ins[0]
    axis = at.get("axis", 1)
    axis = axis + len(x.shape) if axis < 0 else axis
    return [_reshape_to(b, node.name, x, (numel(x.shape[:axis]), numel(x.shape[axis:])))]


def _conv_reshape(b, node, ins, at):
    x = ins[0]
    if len(ins) < 2 or isinstance(ins[1], Var):
        raise b.error(node, "reshape target must be a constant")
    target = [int(s) for s in np.asarray(ins[1]).reshape(-1)]
    allowzero = at.get("allowzero", 0)
    out = []
    for i, s in enumerate(target):
        out.append(x.shape[i] if (s == 0 and not allowzero) else s)
    if out.count(-1) > 1:
        raise b.error(node, "more than one -1 in reshape target")
    if -1 in out:
        known = numel(tuple(s for s in out if s != -1))
        out[out.index(-1)] = numel(x.shape) // max(known, 1)
    return [_reshape_to(b, node.name, x, tuple(out))]


def _axes(b, node, ins, at) -> list[int] | None:
    """Axes from the attribute (old opsets) or the second input (opset >= 13)."""
    if "axes" in at:
        return list(at["axes"])
    if len(ins) > 1 and ins[1] is not None:
        if isinstance(ins[1], Var):
            raise b.error(node, "axes must be constant")
        return [int(a) for a in np.asarray(ins[1]).reshape(-1)]
    return None


def _conv_squeeze(b, node, ins, at):
    x = ins[0]
    axes = _axes(b, node, ins, at)
    if axes is None:
        shape = tuple(s for s in x.shape if s != 1)
    else:
        axes = [a + len(x.shape) if a < 0 else a for a in axes]
        shape = tuple(s for i, s in enumerate(x.shape) if i not in axes)
    return [_reshape_to(b, node.name, x, shape)]


def _conv_unsqueeze(b, node, ins, at):
    x = ins[0]
    axes = _axes(b, node, ins, at) or []
    rank = len(x.shape) + len(axes)
    axes = sorted(a + rank if a < 0 else a for a in axes)
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return [_reshape_to(b, node.name, x, tuple(shape))]


def _index_of(x: Var) -> np.ndarray:
    """Flat positions of x's entries, in x's shape."""
    return np.arange(numel(x.shape)).reshape(x.shape)


def _conv_transpose(b, node, ins, at):
    x = ins[0]
    perm = at.get("perm", list(range(len(x.shape)))[::-1])
    return [b.gather(node.name, x, _index_of(x).transpose(perm))]


def _conv_slice(b, node, ins, at):
    x = ins[0]
    if "starts" in at:
        starts, ends = at["starts"], at["ends"]
        axes, steps = at.get("axes"), None
    else:
        if any(isinstance(v, Var) for v in ins[1:]):
            raise b.error(node, "slice parameters must be constant")
        starts, ends = list(np.asarray(ins[1]).reshape(-1)), list(np.asarray(ins[2]).reshape(-1))
        axes = list(np.asarray(ins[3]).reshape(-1)) if len(ins) > 3 and ins[3] is not None else None
        steps = list(np.asarray(ins[4]).reshape(-1)) if len(ins) > 4 and ins[4] is not None else None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    sl = [slice(None)] * len(x.shape)
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = int(a) + len(x.shape) if a < 0 else int(a)
        dim = x.shape[a]
        s, e, st = int(s), int(e), int(st)
        s = max(min(s, dim), -dim - 1) if st < 0 else max(min(s, dim), -dim)
        e = max(min(e, dim), -dim - 1)
        sl[a] = slice(s, e, st)
    idx = _index_of(x)[tuple(sl)]
    return [b.gather(node.name, x, idx)]


def _conv_gather(b, node, ins, at):
    x = ins[0]
    if isinstance(ins[1], Var):
        raise b.error(node, "gather indices must be constant")
    axis = at.get("axis", 0)
    return [b.gather(node.name, x, np.take(_index_of(x), np.asarray(ins[1]).astype(np.int64), axis=axis))]


def _conv_concat(b, node, ins, at):
    vals = [v for v in ins if v is not None]
    if not all(isinstance(v, Var) for v in vals):
        raise b.error(node, "concatenation of variable and constant tensors is not supported")
    axis = at["axis"]
    axis = axis + len(vals[0].shape) if axis < 0 else axis
    offsets = np.cumsum([0] + [numel(v.shape) for v in vals])
    parts = [np.arange(numel(v.shape)).reshape(v.shape) + off for v, off in zip(vals, offsets)]
    idx = np.concatenate(parts, axis=axis)
    cat = b.add(node.name + "/flat", Concat(), vals, (int(offsets[-1]),))
    return [b.gather(node.name, cat, idx)]


def _conv_pad(b, node, ins, at):
    x = ins[0]
    mode = at.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode != "constant":
        raise b.error(node, f"pad mode '{mode}' is not supported")
    if "pads" in at:
        pads, value = list(at["pads"]), float(at.get("value", 0.0))
    else:
        pads = [int(p) for p in np.asarray(ins[1]).reshape(-1)]
        value = float(np.asarray(ins[2]).reshape(-1)[0]) if len(ins) > 2 and ins[2] is not None else 0.0
        if len(ins) > 3 and ins[3] is not None:
            raise b.error(node, "Pad with axes input is not supported")
    r = len(x.shape)
    if any(p < 0 for p in pads):
        raise b.error(node, "negative pads are not supported")
    width = [(pads[i], pads[i + r]) for i in range(r)]
    idx = np.pad(_index_of(x), width, constant_values=-1)
    out = b.gather(node.name, x, idx)
    if value != 0.0:
        out = b.scale(node.name + "/value", out, 1.0, np.where(idx < 0, value, 0.0))
    return [out]


def _spatial(x: Var, b, node) -> tuple[int, int, int, bool]:
    """(C, H, W, is_1d) of an (N=1, C, H, W) or (N=1, C, L) input."""
    if len(x.shape) == 4 and x.shape[0] == 1:
        return x.shape[1], x.shape[2], x.shape[3], False
    if len(x.shape) == 3 and x.shape[0] == 1:
        return x.shape[1], 1, x.shape[2], True
    raise b.error(node, f"expected input of shape (1, C, H, W) or (1, C, L), got {x.shape}")


def _pool_geometry(at, kernel, h, w, one_d) -> tuple:
    """Strides, pads (t, l, b, r), dilations and output size for conv/pool attributes."""
    if one_d:
        kernel = (1, kernel[0])
    stride = list(at.get("strides", [1] * (1 if one_d else 2)))
    dil = list(at.get("dilations", [1] * (1 if one_d else 2)))
    pads = list(at.get("pads", [0] * (2 if one_d else 4)))
    if one_d:
        stride, dil, pads = [1] + stride, [1] + dil, [0, pads[0], 0, pads[1]]
    auto = at.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    ek = [(kernel[i] - 1) * dil[i] + 1 for i in range(2)]
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0, 0, 0, 0]
        for i, n in enumerate((h, w)):
            out = -(-n // stride[i])
            total = max((out - 1) * stride[i] + ek[i] - n, 0)
            small, big = total // 2, total - total // 2
            pads[i], pads[i + 2] = (small, big) if auto == "SAME_UPPER" else (big, small)
    elif auto == "VALID":
        pads = [0, 0, 0, 0]
    ceil = at.get("ceil_mode", 0)
    outs = []
    for i, n in enumerate((h, w)):
        span = n + pads[i] + pads[i + 2] - ek[i]
        outs.append((-(-span // stride[i]) if ceil else span // stride[i]) + 1)
    return tuple(stride), tuple(pads), tuple(dil), tuple(kernel), tuple(outs)


def _conv_conv(b, node, ins, at):
    x = ins[0]
    if not isinstance(x, Var) or isinstance(ins[1], Var):
        raise b.error(node, "only convolutions of a variable input with constant weights are supported")
    c, h, w, one_d = _spatial(x, b, node)
    weight = np.asarray(ins[1], dtype=np.float64)
    if one_d:
        weight = weight[:, :, None, :]
    cout = weight.shape[0]
    bias = np.asarray(ins[2], dtype=np.float64) if len(ins) > 2 and ins[2] is not None else np.zeros(cout)
    groups = at.get("group", 1)
    stride, pads, dil, _, (ho, wo) = _pool_geometry(at, list(weight.shape[2:]) if not one_d else [weight.shape[3]], h, w, one_d)
    if weight.shape[1] * groups != c:
        raise b.error(node, f"weight shape {weight.shape} does not fit {c} input channels")
    shape = (1, cout, wo) if one_d else (1, cout, ho, wo)
    op = Conv(weight, bias, stride, pads, dil, groups, (c, h, w))
    return [b.add(node.name, op, [x], shape)]


def _conv_batchnorm(b, node, ins, at):
    x = ins[0]
    if any(isinstance(v, Var) for v in ins[1:5]):
        raise b.error(node, "batch-norm parameters must be constant")
    s, bias, mean, var = (np.asarray(v, dtype=np.float64) for v in ins[1:5])
    eps = at.get("epsilon", 1e-5)
    mul = s / np.sqrt(var + eps)
    add = bias - mean * mul
    extra = (1,) * (len(x.shape) - 2)
    return [b.scale(node.name, x, mul.reshape((-1,) + extra), add.reshape((-1,) + extra))] + [None] * (len(node.output) - 1)


def _windows(c, h, w, kernel, stride, pads, dil, outs) -> np.ndarray:
    """(C*Ho*Wo, kh*kw) flat input indices of each pooling window; -1 for padding."""
    ho, wo = outs
    kh, kw = kernel
    oy = np.arange(ho)[:, None] * stride[0] - pads[0] + np.arange(kh)[None, :] * dil[0]  # (ho, kh)
    ox = np.arange(wo)[:, None] * stride[1] - pads[1] + np.arange(kw)[None, :] * dil[1]  # (wo, kw)
    yy = oy[:, None, :, None]
    xx = ox[None, :, None, :]
    valid = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)  # (ho, wo, kh, kw)
    base = yy * w + xx
    ch = np.arange(c)[:, None, None, None, None] * (h * w)
    idx = np.where(valid[None], ch + base[None], -1)
    return idx.reshape(c * ho * wo, kh * kw).astype(np.int64)


def _conv_maxpool(b, node, ins, at):
    x = ins[0]
    if len(node.output) > 1 and node.output[1]:
        raise b.error(node, "MaxPool indices output is not supported")
    c, h, w, one_d = _spatial(x, b, node)
    stride, pads, dil, kernel, outs = _pool_geometry(at, list(at["kernel_shape"]), h, w, one_d)
    win = _windows(c, h, w, kernel, stride, pads, dil, outs)
    if np.any(np.all(win < 0, axis=1)):
        raise b.error(node, "a pooling window lies entirely in the padding")
    shape = (1, c, outs[1]) if one_d else (1, c) + outs
    return [b.add(node.name, MaxPool(win), [x], shape)]


def _avgpool_linear(b, name, x, c, h, w, kernel, stride, pads, dil, outs, include_pad, one_d):
    """Average pooling as a sparse-in-spirit dense Linear (exact divisor semantics)."""
    win = _windows(c, h, w, kernel, stride, pads, dil, outs)
    n_out, n_in = win.shape[0], c * h * w
    if n_out * n_in > DENSE_LIMIT:
        raise ModelError(f"{b.source}: node '{name}': AveragePool too large to expand")
    weight = np.zeros((n_out, n_in))
    valid = win >= 0
    counts = np.full(n_out, float(win.shape[1])) if include_pad else valid.sum(axis=1).astype(np.float64)
    rows = np.repeat(np.arange(n_out), win.shape[1])[valid.reshape(-1)]
    np.add.at(weight, (rows, win[valid]), 1.0 / counts[rows])
    shape = (1, c, outs[1]) if one_d else (1, c) + tuple(outs)
    return b.linear(name, x, weight, np.zeros(n_out), shape)


def _conv_avgpool(b, node, ins, at):
    x = ins[0]
    c, h, w, one_d = _spatial(x, b, node)
    stride, pads, dil, kernel, outs = _pool_geometry(at, list(at["kernel_shape"]), h, w, one_d)
    include_pad = at.get("count_include_pad", 0)
    if include_pad or not any(pads):
        if at.get("ceil_mode", 0) and not include_pad:
            return [_avgpool_linear(b, node.name, x, c, h, w, kernel, stride, pads, dil, outs, include_pad, one_d)]
        weight = np.zeros((c, 1) + kernel)
        weight[:] = 1.0 / (kernel[0] * kernel[1])
        op = Conv(weight, np.zeros(c), stride, pads, dil, c, (c, h, w))
        shape = (1, c, outs[1]) if one_d else (1, c) + outs
        return [b.add(node.name, op, [x], shape)]
    return [_avgpool_linear(b, node.name, x, c, h, w, kernel, stride, pads, dil, outs, include_pad, one_d)]


def _conv_global_avgpool(b, node, ins, at):
    x = ins[0]
    c, h, w, one_d = _spatial(x, b, node)
    weight = np.full((c, 1, h, w), 1.0 / (h * w))
    op = Conv(weight, np.zeros(c), (1, 1), (0, 0, 0, 0), (1, 1), c, (c, h, w))
    return [b.add(node.name, op, [x], (1, c, 1) if one_d else (1, c, 1, 1))]


def _conv_clip(b, node, ins, at):
    x = ins[0]
    lo = at.get("min", None)
    hi = at.get("max", None)
    if len(ins) > 1 and ins[1] is not None:
        lo = float(np.asarray(ins[1]))
    if len(ins) > 2 and ins[2] is not None:
        hi = float(np.asarray(ins[2]))
    if lo is None or not np.isfinite(lo):
        raise b.error(node, "Clip without a finite lower bound is not supported")
    # clip(x, lo, hi) = lo + relu(x - lo) - relu(x - hi)
    shifted = b.scale(node.name + "/lo", x, 1.0, -lo)
    r1 = b.add(node.name + "/relu_lo", Relu(), [shifted], x.shape)
    if hi is None or not np.isfinite(hi):
        return [b.scale(node.name, r1, 1.0, lo)]
    # relu(x - lo) - relu(x - hi) = relu(t) - relu(t - (hi - lo)) with t = x - lo
    t2 = b.scale(node.name + "/hi", r1, -1.0, hi - lo)       # (hi-lo) - relu(t)
    r2 = b.add(node.name + "/relu_hi", Relu(), [t2], x.shape)  # relu((hi-lo) - relu(t)) = (hi-lo) - min(relu t, hi-lo)
    return [b.scale(node.name, r2, -1.0, hi)]                   # hi - r2 = lo + min(relu(t), hi - lo)


CONVERTERS: dict[str, Converter] = {
    "Add": _conv_add,
    "Sub": _conv_sub,
    "Mul": _conv_mul,
    "Div": _conv_div,
    "Neg": _conv_neg,
    "MatMul": _conv_matmul,
    "Gemm": _conv_gemm,
    "Relu": _conv_unary(Relu),
    "Sigmoid": _conv_unary(Sigmoid),
    "Tanh": _conv_unary(Tanh),
    "Flatten": _conv_flatten,
    "Reshape": _conv_reshape,
    "Squeeze": _conv_squeeze,
    "Unsqueeze": _conv_unsqueeze,
    "Transpose": _conv_transpose,
    "Slice": _conv_slice,
    "Gather": _conv_gather,
    "Concat": _conv_concat,
    "Pad": _conv_pad,
    "Identity": _conv_identity,
    "Dropout": _conv_identity,
    "Cast": _conv_cast,
    "Conv": _conv_conv,
    "BatchNormalization": _conv_batchnorm,
    "MaxPool": _conv_maxpool,
    "AveragePool": _conv_avgpool,
    "GlobalAveragePool": _conv_global_avgpool,
    "Clip": _conv_clip,
}

# Ops that are only accepted when every input is constant (folded away).
CONSTANT_ONLY = {
    "Constant", "Shape", "ConstantOfShape", "Range", "Size", "Equal", "Where", "Expand",
    "ReduceProd", "ReduceSum", "Floor", "Ceil", "Sqrt", "Pow", "Exp", "Log", "Min", "Max",
}


def _static_shape(vi: onnx.ValueInfoProto) -> Shape:
    """The ONNX input shape with symbolic or zero dimensions read as 1."""
    dims = vi.type.tensor_type.shape.dim
    return tuple(int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in dims)


def _unsupported_nodes(g: onnx.GraphProto) -> list[tuple[str, str]]:
    """(op_type, node name) of every node we cannot convert, found before any conversion."""
    init = {i.name for i in g.initializer}
    variable = {vi.name for vi in g.input if vi.name not in init}
    bad = []
    for k, n in enumerate(g.node):
        on_variable = any(name in variable for name in n.input) and n.op_type != "Shape"
        if on_variable:
            variable.update(n.output)
        known = n.op_type in CONVERTERS or (n.op_type in CONSTANT_ONLY and not on_variable)
        if n.domain not in ("", "ai.onnx") or not known:
            bad.append((n.op_type, n.name or f"{n.op_type}_{k}"))
    return bad


def import_model(model: onnx.ModelProto, source: str = "<model>", simplify_graph: bool = True) -> Graph:
    """Convert a loaded ONNX model to a Graph (raises ModelError / UnsupportedOperatorError)."""
    g = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise ModelError(f"{source}: model declares no default-domain opset")
    if not (MIN_OPSET <= opset <= MAX_OPSET):
        raise ModelError(f"{source}: opset {opset} is not supported (supported: {MIN_OPSET}-{MAX_OPSET})")
    unsupported = _unsupported_nodes(g)
    if unsupported:
        raise UnsupportedOperatorError(unsupported, source)

    env: dict[str, Value] = {}
    for init in g.initializer:
        env[init.name] = numpy_helper.to_array(init)
    real_inputs = [vi for vi in g.input if vi.name not in env]
    if len(real_inputs) != 1:
        raise ModelError(f"{source}: expected exactly one network input, found {len(real_inputs)}")
    if len(g.output) != 1:
        raise ModelError(f"{source}: expected exactly one network output, found {len(g.output)}")
    inp = real_inputs[0]
    elem = inp.type.tensor_type.elem_type
    if elem not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE):
        raise ModelError(f"{source}: input '{inp.name}' must be float32 or float64")
    b = _Builder(source, opset)
    env[inp.name] = b.add(inp.name, Input(), [], _static_shape(inp))

    for k, node in enumerate(g.node):
        if not node.name:
            node.name = f"{node.op_type}_{k}"
        ins = [env.get(name) if name else None for name in node.input]
        for name, val in zip(node.input, ins):
            if name and val is None and name not in env:
                raise b.error(node, f"input '{name}' is not produced by any node")
        at = _attrs(node)
        if node.op_type == "Shape" and isinstance(ins[0], Var):
            outs: list = [np.asarray(ins[0].shape, dtype=np.int64)]
        elif all(not isinstance(v, Var) for v in ins):
            outs = _fold_constant(node, ins, opset, source)
        elif node.op_type in CONSTANT_ONLY:
            raise UnsupportedOperatorError([(node.op_type, node.name)], source)
        else:
            outs = CONVERTERS[node.op_type](b, node, ins, at)
        for name, val in zip(node.output, outs):
            if name:
                env[name] = val
    out = env.get(g.output[0].name)
    if not isinstance(out, Var):
        raise ModelError(f"{source}: the output '{g.output[0].name}' does not depend on the input")
    if out.index != len(b.nodes) - 1 or out.index == 0:
        b.add(g.output[0].name, Reshape(), [out], out.shape)
    nodes = b.nodes
    graph = Graph(tuple(nodes), input_name=inp.name, output_name=g.output[0].name,
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

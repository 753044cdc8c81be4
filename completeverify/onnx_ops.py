"""The converter table: ONNX op type -> one small function building Graph nodes.

Each converter gets (builder, node, inputs, attributes), inputs being Var (a
variable tensor), numpy arrays (constants) or None (absent optional inputs),
and returns the node's outputs.  Converters read both the attribute form (old
opsets) and the input form (new opsets) of axes, pads, bounds and shapes.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import onnx

from .graph import Concat, Conv, LeakyRelu, MaxPool, Relu, Shape, Sigmoid, Tanh, numel
from .onnx_builder import (
    DENSE_LIMIT,
    Builder,
    Converter,
    Var,
    add_vars,
    const_input,
    data_var,
    index_of,
    int_list,
    normalize_axis,
    var_and_const,
)

FLT_MAX = float(np.finfo(np.float32).max)  # Clip's "no bound" default before opset 11


def _conv_add(b, node, ins, at):
    if isinstance(ins[0], Var) and isinstance(ins[1], Var):
        return [add_vars(b, node.name, ins[0], ins[1])]
    v, c, _ = var_and_const(b, node, ins)
    return [b.scale(node.name, v, 1.0, c)]


def _conv_sub(b, node, ins, at):
    if isinstance(ins[0], Var) and isinstance(ins[1], Var):
        return [add_vars(b, node.name, ins[0], b.scale(node.name + "/neg", ins[1], -1.0, 0.0))]
    v, c, first = var_and_const(b, node, ins)
    return [b.scale(node.name, v, 1.0, -c) if first else b.scale(node.name, v, -1.0, c)]


def _conv_mul(b, node, ins, at):
    v, c, _ = var_and_const(b, node, ins)
    return [b.scale(node.name, v, c, 0.0)]


def _conv_div(b, node, ins, at):
    v, c, first = var_and_const(b, node, ins)
    if not first:
        raise b.error(node, "division by a variable tensor is not piecewise linear (unsupported)")
    if np.any(c == 0):
        raise b.error(node, "division by a zero constant")
    return [b.scale(node.name, v, 1.0 / c, 0.0)]


def _conv_neg(b, node, ins, at):
    return [b.scale(node.name, data_var(b, node, ins), -1.0, 0.0)]


def _matmul_right(b: Builder, node, x: Var, w: np.ndarray, bias) -> Var:
    """x (..., M, K) @ w (K, N) + bias, as one Linear on the flat view (x may be (K,))."""
    k, n = w.shape
    if not x.shape or x.shape[-1] != k:
        raise b.error(node, f"shape mismatch {tuple(x.shape)} @ {tuple(w.shape)}")
    out_shape = tuple(x.shape[:-1]) + (n,)
    p = numel(x.shape[:-1])
    if p * p * k * n > DENSE_LIMIT:
        raise b.error(node, f"MatMul too large to expand ({out_shape})")
    weight = w.T if p == 1 else np.kron(np.eye(p), w.T)
    bias_full = np.broadcast_to(np.asarray(bias, dtype=np.float64), out_shape).reshape(-1)
    return b.linear(node.name, x, weight, bias_full, out_shape)


def _matmul_left(b: Builder, node, w: np.ndarray, x: Var) -> Var:
    """w (M, K) @ x (..., K, N) as one Linear (x of shape (K,) gives (M,))."""
    if len(x.shape) == 1 and w.shape[1] == x.shape[0]:
        return b.linear(node.name, x, w, np.zeros(w.shape[0]), (w.shape[0],))
    if len(x.shape) < 2 or x.shape[-2] != w.shape[1]:
        raise b.error(node, f"shape mismatch {tuple(w.shape)} @ {tuple(x.shape)}")
    m, n, p = w.shape[0], x.shape[-1], numel(x.shape[:-2])
    if (p * m * n) * (p * w.shape[1] * n) > DENSE_LIMIT:
        raise b.error(node, "MatMul too large to expand")
    weight = np.kron(np.eye(p), np.kron(w, np.eye(n)))
    out_shape = tuple(x.shape[:-2]) + (m, n)
    return b.linear(node.name, x, weight, np.zeros(numel(out_shape)), out_shape)


def _conv_matmul(b, node, ins, at):
    v, w, var_first = var_and_const(b, node, ins)
    if w.ndim == 1 and var_first:  # (..., K) @ (K,) -> (...)
        out = _matmul_right(b, node, v, w[:, None], 0.0)
        return [b.reshape(node.name + "/vec", out, out.shape[:-1])]
    if w.ndim == 1:  # (K,) @ (..., K, N) -> (..., N)
        out = _matmul_left(b, node, w[None, :], v)
        return [b.reshape(node.name + "/vec", out, out.shape[:-2] + out.shape[-1:])]
    if w.ndim != 2:
        raise b.error(node, f"constant operand of rank {w.ndim} is not supported")
    return [_matmul_right(b, node, v, w, 0.0) if var_first else _matmul_left(b, node, w, v)]


def _conv_gemm(b, node, ins, at):
    a = data_var(b, node, ins)
    w = const_input(b, node, ins, 1, "weight B").astype(np.float64)
    c = const_input(b, node, ins, 2, "bias C")
    if len(a.shape) != 2:
        raise b.error(node, f"input must be 2-D, got shape {a.shape}")
    if at.get("transA", 0):
        a = b.gather(node.name + "/transA", a, index_of(a).T)
    w = w.T if at.get("transB", 0) else w
    bias = 0.0 if c is None else at.get("beta", 1.0) * c.astype(np.float64)
    return [_matmul_right(b, node, a, at.get("alpha", 1.0) * w, bias)]


def _conv_unary(op_cls):
    """Converter for an elementwise activation."""

    def convert(b, node, ins, at):
        x = data_var(b, node, ins)
        return [b.add(node.name, op_cls(), [x], x.shape)]

    return convert


def _conv_identity(b, node, ins, at):
    return [data_var(b, node, ins)]


def _conv_dropout(b, node, ins, at):
    x = data_var(b, node, ins)
    training = const_input(b, node, ins, 2, "training_mode")
    if training is not None and bool(training.reshape(-1)[0]):
        raise b.error(node, "Dropout in training mode is random (unsupported)")
    return [x, np.ones(x.shape, dtype=bool)]  # inference: identity, mask all true


def _conv_cast(b, node, ins, at):
    if at.get("to") not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE):
        raise b.error(
            node, "cast of a variable tensor to a type other than float32/float64 is not supported"
        )
    return [data_var(b, node, ins)]


def _conv_flatten(b, node, ins, at):
    x = data_var(b, node, ins)
    axis = at.get("axis", 1)
    axis = axis + len(x.shape) if axis < 0 else axis
    return [b.reshape(node.name, x, (numel(x.shape[:axis]), numel(x.shape[axis:])))]


def _conv_reshape(b, node, ins, at):
    x = data_var(b, node, ins)
    target = int_list(b, node, ins, at, 1, "shape")
    if target is None:
        raise b.error(node, "missing target shape")
    out = [
        x.shape[i] if (s == 0 and not at.get("allowzero", 0)) else s for i, s in enumerate(target)
    ]
    if out.count(-1) > 1:
        raise b.error(node, "more than one -1 in reshape target")
    if -1 in out:
        known = numel(tuple(s for s in out if s != -1))
        if known == 0 or numel(x.shape) % known:
            raise b.error(node, f"cannot reshape {x.shape} to {tuple(target)}")
        out[out.index(-1)] = numel(x.shape) // known
    return [b.reshape(node.name, x, tuple(out))]


def _conv_squeeze(b, node, ins, at):
    x = data_var(b, node, ins)
    axes = int_list(b, node, ins, at, 1, "axes")
    if axes is None:
        axes = [i for i, s in enumerate(x.shape) if s == 1]
    axes = [normalize_axis(b, node, a, len(x.shape)) for a in axes]
    if any(x.shape[a] != 1 for a in axes):
        raise b.error(node, f"cannot squeeze axes {axes} of shape {x.shape}")
    return [b.reshape(node.name, x, tuple(s for i, s in enumerate(x.shape) if i not in axes))]


def _conv_unsqueeze(b, node, ins, at):
    x = data_var(b, node, ins)
    axes = int_list(b, node, ins, at, 1, "axes") or []
    rank = len(x.shape) + len(axes)
    shape = list(x.shape)
    for a in sorted(normalize_axis(b, node, a, rank) for a in axes):
        shape.insert(a, 1)
    return [b.reshape(node.name, x, tuple(shape))]


def _conv_transpose(b, node, ins, at):
    x = data_var(b, node, ins)
    perm = at.get("perm", list(range(len(x.shape)))[::-1])
    return [b.gather(node.name, x, index_of(x).transpose(perm))]


def _slice_positions(dim: int, start: int, end: int, step: int) -> np.ndarray:
    """The positions ONNX Slice keeps on one axis of length dim (clamping as the spec says)."""
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return np.arange(start, end, step)


def _conv_slice(b, node, ins, at):
    x = data_var(b, node, ins)
    starts, ends = int_list(b, node, ins, at, 1, "starts"), int_list(b, node, ins, at, 2, "ends")
    axes = int_list(b, node, ins, at, 3, "axes") or list(range(len(starts)))
    steps = int_list(b, node, ins, at, 4, "steps") or [1] * len(starts)
    idx = index_of(x)
    for s, e, a, st in zip(starts, ends, axes, steps):
        if st == 0:
            raise b.error(node, "slice step 0")
        a = normalize_axis(b, node, a, len(x.shape))
        idx = np.take(idx, _slice_positions(x.shape[a], s, e, st), axis=a)
    return [b.gather(node.name, x, idx)]


def _conv_gather(b, node, ins, at):
    x = data_var(b, node, ins)
    index = const_input(b, node, ins, 1, "indices").astype(np.int64)
    axis = normalize_axis(b, node, at.get("axis", 0), len(x.shape))
    if np.any(index >= x.shape[axis]) or np.any(index < -x.shape[axis]):
        raise b.error(node, "index out of range")
    return [b.gather(node.name, x, np.take(index_of(x), index, axis=axis))]


def _conv_concat(b, node, ins, at):
    vals = [v for v in ins if v is not None]
    variables = [v for v in vals if isinstance(v, Var)]
    axis = normalize_axis(b, node, at["axis"], len(variables[0].shape))
    parts, consts, offset = [], [], 0
    for v in vals:
        if isinstance(v, Var):
            parts.append(index_of(v) + offset)
            consts.append(np.zeros(v.shape))
            offset += numel(v.shape)
        else:
            parts.append(np.full(np.shape(v), -1))
            consts.append(np.asarray(v, dtype=np.float64))
    cat = (
        variables[0]
        if len(variables) == 1
        else b.add(node.name + "/flat", Concat(), variables, (offset,))
    )
    out = b.gather(node.name, cat, np.concatenate(parts, axis=axis))
    if len(variables) < len(vals):
        out = b.scale(node.name + "/const", out, 1.0, np.concatenate(consts, axis=axis))
    return [out]


def _conv_pad(b, node, ins, at):
    x = data_var(b, node, ins)
    mode, r = at.get("mode", "constant"), len(x.shape)
    if mode not in ("constant", "edge", "reflect", "wrap"):
        raise b.error(node, f"pad mode '{mode}' is not supported")
    pads = int_list(b, node, ins, at, 1, "pads")
    value = const_input(b, node, ins, 2, "constant_value")
    value = (
        float(at.get("value", 0.0))
        if value is None or value.size == 0
        else float(value.reshape(-1)[0])
    )
    axes = [
        normalize_axis(b, node, a, r) for a in (int_list(b, node, ins, at, 3, "axes") or range(r))
    ]
    if pads is None or len(pads) != 2 * len(axes):
        raise b.error(node, f"expected {2 * len(axes)} pads, got {pads}")
    width = [(0, 0)] * r
    for k, a in enumerate(axes):
        width[a] = (pads[k], pads[k + len(axes)])
    idx = index_of(x)  # crop (negative pads) first, then pad, as onnxruntime does
    idx = idx[tuple(slice(-min(lo, 0), n + min(hi, 0)) for (lo, hi), n in zip(width, idx.shape))]
    grow = [(max(lo, 0), max(hi, 0)) for lo, hi in width]
    if mode == "constant":
        idx = np.pad(idx, grow, constant_values=-1)
    elif any(lo > 0 or hi > 0 for lo, hi in grow):
        if idx.size == 0 or (
            mode == "reflect" and any(max(g) >= n for g, n in zip(grow, idx.shape) if max(g))
        ):
            raise b.error(node, f"cannot pad shape {idx.shape} by {grow} in mode '{mode}'")
        idx = np.pad(idx, grow, mode=mode)
    out = b.gather(node.name, x, idx)
    if value != 0.0 and np.any(idx < 0):
        out = b.scale(node.name + "/value", out, 1.0, np.where(idx < 0, value, 0.0))
    return [out]


def _spatial(b, node, x: Var) -> tuple[int, int, int, bool]:
    """(C, H, W, is_1d) of an (N=1, C, H, W) or (N=1, C, L) input."""
    if len(x.shape) == 4 and x.shape[0] == 1:
        return x.shape[1], x.shape[2], x.shape[3], False
    if len(x.shape) == 3 and x.shape[0] == 1:
        return x.shape[1], 1, x.shape[2], True
    raise b.error(node, f"expected input of shape (1, C, H, W) or (1, C, L), got {x.shape}")


def _window_geometry(at, kernel, h, w, one_d) -> tuple:
    """Strides, pads (t, l, b, r), dilations, kernel and output size for conv/pool attributes.

    With ceil_mode, a last window that would start in the end padding is dropped
    (the rule of onnxruntime, the reference evaluator and torch).
    """
    if one_d:
        kernel = [1, kernel[0]]
    stride = list(at.get("strides", [1] * (1 if one_d else 2)))
    dil = list(at.get("dilations", [1] * (1 if one_d else 2)))
    pads = list(at.get("pads", [0] * (2 if one_d else 4)))
    if one_d:
        stride, dil, pads = [1] + stride, [1] + dil, [0, pads[0], 0, pads[1]]
    auto = at.get("auto_pad", "NOTSET")
    ek = [(kernel[i] - 1) * dil[i] + 1 for i in range(2)]
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0, 0, 0, 0]
        for i, n in enumerate((h, w)):
            total = max((-(-n // stride[i]) - 1) * stride[i] + ek[i] - n, 0)
            small, big = total // 2, total - total // 2
            pads[i], pads[i + 2] = (small, big) if auto == "SAME_UPPER" else (big, small)
    elif auto == "VALID":
        pads = [0, 0, 0, 0]
    outs = []
    for i, n in enumerate((h, w)):
        span = n + pads[i] + pads[i + 2] - ek[i]
        if not at.get("ceil_mode", 0):
            outs.append(span // stride[i] + 1)
            continue
        out = -(-span // stride[i]) + 1
        outs.append(out - 1 if (out - 1) * stride[i] >= n + pads[i] else out)
    return tuple(stride), tuple(pads), tuple(dil), tuple(kernel), tuple(outs)


def _out_shape(c: int, outs, one_d: bool) -> Shape:
    """ONNX output shape of a 1-D or 2-D conv/pool."""
    return (1, c, outs[1]) if one_d else (1, c) + tuple(outs)


def _conv_conv(b, node, ins, at):
    x = data_var(b, node, ins)
    c, h, w, one_d = _spatial(b, node, x)
    weight = const_input(b, node, ins, 1, "weight").astype(np.float64)
    if weight.ndim != (3 if one_d else 4):
        raise b.error(node, f"weight of shape {weight.shape} does not fit input {x.shape}")
    weight = weight[:, :, None, :] if one_d else weight
    bias = const_input(b, node, ins, 2, "bias")
    bias = np.zeros(weight.shape[0]) if bias is None else bias.astype(np.float64)
    groups = at.get("group", 1)
    if weight.shape[1] * groups != c or weight.shape[0] % groups:
        raise b.error(
            node, f"weight shape {weight.shape} does not fit {c} input channels in {groups} groups"
        )
    kernel = [weight.shape[3]] if one_d else list(weight.shape[2:])
    stride, pads, dil, _, outs = _window_geometry(at, kernel, h, w, one_d)
    op = Conv(weight, bias, stride, pads, dil, groups, (c, h, w))
    return [b.add(node.name, op, [x], _out_shape(weight.shape[0], outs, one_d))]


def _conv_batchnorm(b, node, ins, at):
    x = data_var(b, node, ins)
    if at.get("training_mode", 0) or any(
        node.output[1:]
    ):  # before opset 14: extra outputs = training
        raise b.error(
            node, "BatchNormalization in training mode (batch statistics) is not supported"
        )
    s, bias, mean, var = (
        const_input(b, node, ins, k, n).astype(np.float64)
        for k, n in enumerate(("scale", "B", "mean", "var"), start=1)
    )
    mul = s / np.sqrt(var + at.get("epsilon", 1e-5))
    add = bias - mean * mul
    if mul.ndim == 1:  # per channel; spatial=0 (opsets 7-8) gives (C, D1, ...) already
        mul, add = (v.reshape((-1,) + (1,) * (len(x.shape) - 2)) for v in (mul, add))
    return [b.scale(node.name, x, mul, add)]


def _window_taps(c, h, w, kernel, stride, pads, dil, outs) -> tuple[np.ndarray, np.ndarray]:
    """Per window (C*Ho*Wo rows, kh*kw taps): flat input index (-1 outside the input) and
    whether the tap lies inside the padded input (what count_include_pad counts)."""
    (ho, wo), (kh, kw) = outs, kernel
    oy = np.arange(ho)[:, None] * stride[0] - pads[0] + np.arange(kh)[None, :] * dil[0]  # (ho, kh)
    ox = np.arange(wo)[:, None] * stride[1] - pads[1] + np.arange(kw)[None, :] * dil[1]  # (wo, kw)
    yy, xx = oy[:, None, :, None], ox[None, :, None, :]
    valid = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)  # (ho, wo, kh, kw)
    padded = (yy < h + pads[2]) & (xx < w + pads[3]) & np.ones_like(valid)
    ch = np.arange(c)[:, None, None, None, None] * (h * w)
    idx = np.where(valid[None], ch + (yy * w + xx)[None], -1)
    padded = np.broadcast_to(padded[None], idx.shape)
    return idx.reshape(c * ho * wo, kh * kw).astype(np.int64), padded.reshape(c * ho * wo, kh * kw)


def _conv_maxpool(b, node, ins, at):
    x = data_var(b, node, ins)
    if len(node.output) > 1 and node.output[1]:
        raise b.error(node, "MaxPool indices output is not supported")
    c, h, w, one_d = _spatial(b, node, x)
    stride, pads, dil, kernel, outs = _window_geometry(at, list(at["kernel_shape"]), h, w, one_d)
    win, _ = _window_taps(c, h, w, kernel, stride, pads, dil, outs)
    if np.any(np.all(win < 0, axis=1)):
        raise b.error(node, "a pooling window lies entirely in the padding")
    return [b.add(node.name, MaxPool(win), [x], _out_shape(c, outs, one_d))]


def _conv_avgpool(b, node, ins, at):
    x = data_var(b, node, ins)
    c, h, w, one_d = _spatial(b, node, x)
    stride, pads, dil, kernel, outs = _window_geometry(at, list(at["kernel_shape"]), h, w, one_d)
    win, padded = _window_taps(c, h, w, kernel, stride, pads, dil, outs)
    valid = win >= 0
    counts = (padded if at.get("count_include_pad", 0) else valid).sum(axis=1).astype(np.float64)
    shape = _out_shape(c, outs, one_d)
    if np.all(counts == win.shape[1]):  # every window divides by the kernel size: a conv
        weight = np.full((c, 1) + kernel, 1.0 / win.shape[1])
        return [
            b.add(node.name, Conv(weight, np.zeros(c), stride, pads, dil, c, (c, h, w)), [x], shape)
        ]
    n_out = win.shape[0]
    if n_out * c * h * w > DENSE_LIMIT:
        raise b.error(node, "AveragePool too large to expand")
    weight = np.zeros((n_out, c * h * w))
    rows = np.repeat(np.arange(n_out), win.shape[1]).reshape(win.shape)
    np.add.at(weight, (rows[valid], win[valid]), 1.0 / counts[rows[valid]])
    return [b.linear(node.name, x, weight, np.zeros(n_out), shape)]


def _conv_global_avgpool(b, node, ins, at):
    x = data_var(b, node, ins)
    c, h, w, one_d = _spatial(b, node, x)
    weight = np.full((c, 1, h, w), 1.0 / (h * w))
    op = Conv(weight, np.zeros(c), (1, 1), (0, 0, 0, 0), (1, 1), c, (c, h, w))
    return [b.add(node.name, op, [x], (1, c, 1) if one_d else (1, c, 1, 1))]


def _conv_leaky_relu(b, node, ins, at):
    """LeakyRelu with its alpha attribute (ONNX default 0.01); 0 <= alpha <= 1 is supported."""
    x = data_var(b, node, ins)
    alpha = float(at.get("alpha", 0.01))
    if not 0.0 <= alpha <= 1.0:
        raise b.error(node, f"LeakyRelu alpha {alpha} is not supported (need 0 <= alpha <= 1)")
    return [b.add(node.name, LeakyRelu(alpha), [x], x.shape)]


def _clip_bound(value) -> Optional[float]:
    """A finite Clip bound, or None for no bound (absent, infinite or +-FLT_MAX)."""
    if value is None or np.size(value) == 0:
        return None
    v = float(np.asarray(value).reshape(-1)[0])
    return v if np.isfinite(v) and abs(v) < FLT_MAX else None


def _conv_clip(b, node, ins, at):
    x = data_var(b, node, ins)
    lo = _clip_bound(at.get("min", const_input(b, node, ins, 1, "min")))
    hi = _clip_bound(at.get("max", const_input(b, node, ins, 2, "max")))
    if lo is None and hi is None:
        return [x]
    if hi is None:  # lo + relu(x - lo)
        r = b.add(node.name + "/relu", Relu(), [b.scale(node.name + "/lo", x, 1.0, -lo)], x.shape)
        return [b.scale(node.name, r, 1.0, lo)]
    if lo is None:  # hi - relu(hi - x)
        r = b.add(node.name + "/relu", Relu(), [b.scale(node.name + "/hi", x, -1.0, hi)], x.shape)
        return [b.scale(node.name, r, -1.0, hi)]
    # hi - relu((hi - lo) - relu(x - lo)) = lo + min(relu(x - lo), hi - lo); = hi when lo > hi
    r1 = b.add(node.name + "/relu_lo", Relu(), [b.scale(node.name + "/lo", x, 1.0, -lo)], x.shape)
    r2 = b.add(
        node.name + "/relu_hi", Relu(), [b.scale(node.name + "/hi", r1, -1.0, hi - lo)], x.shape
    )
    return [b.scale(node.name, r2, -1.0, hi)]


CONVERTERS: dict[str, Converter] = {
    "Add": _conv_add,
    "Sub": _conv_sub,
    "Mul": _conv_mul,
    "Div": _conv_div,
    "Neg": _conv_neg,
    "MatMul": _conv_matmul,
    "Gemm": _conv_gemm,
    "Relu": _conv_unary(Relu),
    "LeakyRelu": _conv_leaky_relu,
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
    "Dropout": _conv_dropout,
    "Cast": _conv_cast,
    "Conv": _conv_conv,
    "BatchNormalization": _conv_batchnorm,
    "MaxPool": _conv_maxpool,
    "AveragePool": _conv_avgpool,
    "GlobalAveragePool": _conv_global_avgpool,
    "Clip": _conv_clip,
}

# Ops whose output depends only on the input's static shape.
SHAPE_OPS = {"Shape", "Size"}

# Ops that are only accepted when every input is constant (folded away).
CONSTANT_ONLY = {
    "Constant",
    "ConstantOfShape",
    "Range",
    "Equal",
    "Where",
    "Expand",
    "ReduceProd",
    "ReduceSum",
    "Floor",
    "Ceil",
    "Sqrt",
    "Pow",
    "Exp",
    "Log",
    "Min",
    "Max",
}

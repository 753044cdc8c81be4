"""Planted-witness verdict fuzzing: random networks and properties that are violated by
construction, so that any `unsat` is a wrong verdict, with no exact oracle needed.

usage: python tests/property/fuzz/planted.py OUT_DIR [--seconds S] [--timeout T] [--first N]
       [--large] [--scaled] [--config NAME ...]

For each seed: a random ONNX network (an MLP or a small CNN, drawn from the operators
completeverify imports: Gemm, MatMul + Add, Conv, BatchNormalization, MaxPool, AveragePool,
Relu, LeakyRelu, Sigmoid, Tanh, Clip, residual Add, Concat, Sub / Div normalisation, Pad, Mul,
Neg, Transpose, Slice, GlobalAveragePool), a box,
and an output condition whose threshold sits at ``gap`` from the value of the network at a
point x* of the box that PGD found near the minimum. The truth at x* comes from onnx's
reference evaluator on a float64 copy of the model (real-valued semantics up to 1e-15), not
from completeverify. Two directions:

- planted (gap > 0): x* violates the property, so `unsat` is wrong. `sat` and `unknown` /
  `timeout` are right (a violation of 1e-9 may not survive the float32 replay).
- knife (gap < 0): the threshold lies just below what PGD found. No verdict is known, but a
  `sat` must replay: its input lies in its box and the float32 model's output, computed here by
  the backend the verifier replayed with (onnxruntime, or the reference evaluator), meets the
  property with zero tolerance.

Each instance runs under one of several configurations (attack off, forced modes, bound
methods, solvers) so that the proof stages, not PGD, meet the planted point. About a third of
the properties are written in VNN-LIB 2.0 (when the PyPI vnnlib package is installed). A wrong
verdict writes the model and property to OUT_DIR/wrong-SEED.{onnx,vnnlib} and is counted; the
campaign prints a summary line per instance and a table at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import completeverify as cv
from completeverify.config import AttackConfig, BabConfig, VerifyConfig

GAPS = (1e-9, 1e-7, 1e-5, 1e-3, 1e-1)


class NetBuilder:
    """Builds an ONNX graph and, alongside, the same function on float64 torch tensors."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, ...]) -> None:
        """Start from a network input of ``shape`` (batch 1 included)."""
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.steps: list = []  # (out, fn(env) -> tensor)
        self.shape = shape
        self.input_shape = shape
        self.cur = "x"
        self.count = 0

    def _name(self, op: str) -> str:
        self.count += 1
        return f"{op.lower()}{self.count}"

    def const(self, value: np.ndarray) -> tuple[str, torch.Tensor]:
        """A float32 initializer and its exact float64 value."""
        name = self._name("c")
        v32 = np.asarray(value, dtype=np.float32)
        self.inits.append(numpy_helper.from_array(v32, name))
        return name, torch.from_numpy(v32.astype(np.float64))

    def node(self, op: str, inputs: list[str], fn, shape, **attrs) -> str:
        """Append one node reading ``inputs``; ``fn`` maps the env of tensors to its output."""
        out = self._name(op)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out + "_n", **attrs))
        self.steps.append((out, fn))
        self.shape = shape
        self.cur = out
        return out

    # layers ------------------------------------------------------------------------------
    def dense(self, n_out: int, scale: float = 1.0) -> None:
        """Gemm (transB) or MatMul + Add."""
        x, n_in = self.cur, self.shape[-1]
        w = self.rng.normal(size=(n_out, n_in)) * scale / np.sqrt(n_in)
        b = self.rng.normal(size=n_out) * 0.3
        if self.rng.random() < 0.6:
            wn, wt = self.const(w)
            bn, bt = self.const(b)
            self.node("Gemm", [x, wn, bn], lambda e: e[x] @ wt.T + bt, (1, n_out), transB=1)
        else:
            wn, wt = self.const(w.T)
            bn, bt = self.const(b)
            mm = self.node("MatMul", [x, wn], lambda e: e[x] @ wt, (1, n_out))
            self.node("Add", [mm, bn], lambda e: e[mm] + bt, (1, n_out))

    def activation(self, smooth: bool) -> None:
        """A piecewise-linear activation, or (when ``smooth``) sometimes Sigmoid / Tanh."""
        x, shape = self.cur, self.shape
        kinds = ["relu", "relu", "relu", "leaky", "clip"] + (["sigmoid", "tanh"] if smooth else [])
        kind = kinds[self.rng.integers(len(kinds))]
        if kind == "relu":
            self.node("Relu", [x], lambda e: torch.relu(e[x]), shape)
        elif kind == "leaky":
            a = float(np.float32(self.rng.choice([0.01, 0.1, 0.3, 0.5])))
            self.node("LeakyRelu", [x], lambda e: F.leaky_relu(e[x], a), shape, alpha=a)
        elif kind == "clip":
            lo = float(np.float32(self.rng.uniform(-1.0, 0.0)))
            hi = float(np.float32(lo + self.rng.uniform(0.3, 2.0)))
            ln, _ = self.const(np.array(lo))
            hn, _ = self.const(np.array(hi))
            self.node("Clip", [x, ln, hn], lambda e: torch.clamp(e[x], lo, hi), shape)
        elif kind == "sigmoid":
            self.node("Sigmoid", [x], lambda e: torch.sigmoid(e[x]), shape)
        else:
            self.node("Tanh", [x], lambda e: torch.tanh(e[x]), shape)

    def normalise(self) -> None:
        """(x - mean) / std, per feature or channel, as exported preprocessing."""
        x, shape = self.cur, self.shape
        k = shape[1]
        cshape = (1, k) + (1,) * (len(shape) - 2)
        mn, mt = self.const(self.rng.uniform(-0.5, 0.5, size=cshape))
        sn, st = self.const(self.rng.uniform(0.2, 2.0, size=cshape))
        sub = self.node("Sub", [x, mn], lambda e: e[x] - mt, shape)
        self.node("Div", [sub, sn], lambda e: e[sub] / st, shape)

    def conv(self, c_out: int) -> None:
        """Conv with random kernel, stride, padding and dilation."""
        x, (_, c, h, w) = self.cur, self.shape
        k = int(self.rng.choice([1, 2, 3]))
        s = int(self.rng.choice([1, 1, 2]))
        p = int(self.rng.integers(0, k))
        d = int(self.rng.choice([1, 1, 2])) if k > 1 else 1
        ho = (h + 2 * p - d * (k - 1) - 1) // s + 1
        wo = (w + 2 * p - d * (k - 1) - 1) // s + 1
        if ho < 1 or wo < 1:
            k, s, p, d, ho, wo = 1, 1, 0, 1, h, w
        wt_np = self.rng.normal(size=(c_out, c, k, k)) / np.sqrt(c * k * k)
        wn, wt = self.const(wt_np)
        bn, bt = self.const(self.rng.normal(size=c_out) * 0.3)
        self.node(
            "Conv",
            [x, wn, bn],
            lambda e: F.conv2d(e[x], wt, bt, stride=s, padding=p, dilation=d),
            (1, c_out, ho, wo),
            kernel_shape=[k, k],
            strides=[s, s],
            pads=[p, p, p, p],
            dilations=[d, d],
        )

    def batchnorm(self) -> None:
        """Inference-mode BatchNormalization with random statistics."""
        x, shape = self.cur, self.shape
        c = shape[1]
        scale, bias = self.rng.uniform(0.5, 1.5, c), self.rng.normal(size=c) * 0.2
        mean, var = self.rng.normal(size=c) * 0.2, self.rng.uniform(0.5, 1.5, c)
        names, ts = zip(*(self.const(v) for v in (scale, bias, mean, var)))
        eps = 1e-5
        view = (1, c) + (1,) * (len(shape) - 2)

        def fn(e):
            sc, bi, mu, va = (t.reshape(view) for t in ts)
            return (e[x] - mu) / torch.sqrt(va + np.float32(eps).item()) * sc + bi

        self.node("BatchNormalization", [x, *names], fn, shape, epsilon=eps)

    def pool(self) -> None:
        """MaxPool or AveragePool with a 2x2 window, stride 1 or 2, maybe padded."""
        x, (_, c, h, w) = self.cur, self.shape
        if h < 2 or w < 2:
            return
        s = int(self.rng.choice([1, 2]))
        p = int(self.rng.integers(0, 2))
        ho, wo = (h + 2 * p - 2) // s + 1, (w + 2 * p - 2) // s + 1
        shape = (1, c, ho, wo)
        attrs = dict(kernel_shape=[2, 2], strides=[s, s], pads=[p, p, p, p])
        if self.rng.random() < 0.5:
            self.node("MaxPool", [x], lambda e: F.max_pool2d(e[x], 2, s, p), shape, **attrs)
        else:
            inc = int(self.rng.integers(0, 2))
            self.node(
                "AveragePool",
                [x],
                lambda e: F.avg_pool2d(e[x], 2, s, p, count_include_pad=bool(inc)),
                shape,
                count_include_pad=inc,
                **attrs,
            )

    def residual(self, body) -> None:
        """x + body(x), where ``body`` keeps the shape."""
        x, shape = self.cur, self.shape
        body()
        y = self.cur
        self.node("Add", [y, x], lambda e: e[y] + e[x], shape)

    def concat(self, branch_a, branch_b) -> None:
        """Concat(branch_a(x), branch_b(x)) on axis 1; both branches must keep the other axes."""
        x, shape_x = self.cur, self.shape
        branch_a()
        a, sa = self.cur, self.shape
        self.cur, self.shape = x, shape_x
        branch_b()
        b, sb = self.cur, self.shape
        shape = (1, sa[1] + sb[1]) + tuple(sa[2:])
        self.node("Concat", [a, b], lambda e: torch.cat([e[a], e[b]], 1), shape, axis=1)

    def shape_op(self) -> None:
        """One of Pad, Mul (+ Neg), Transpose (H <-> W) or Slice (drop the first row)."""
        x, (_, c, h, w) = self.cur, self.shape
        kind = ["pad", "scale", "transpose", "slice"][int(self.rng.integers(4))]
        if kind == "pad":
            p = int(self.rng.integers(1, 3))
            pn = self._name("pads")
            self.inits.append(numpy_helper.from_array(np.array([0, 0, p, p] * 2, np.int64), pn))
            shape = (1, c, h + 2 * p, w + 2 * p)
            self.node("Pad", [x, pn], lambda e: F.pad(e[x], (p, p, p, p)), shape, mode="constant")
        elif kind == "scale":
            sn, st = self.const(self.rng.uniform(-2, 2, size=(1, c, 1, 1)))
            mul = self.node("Mul", [x, sn], lambda e: e[x] * st, self.shape)
            if self.rng.random() < 0.5:
                self.node("Neg", [mul], lambda e: -e[mul], self.shape)
        elif kind == "transpose":
            shape = (1, c, w, h)
            self.node("Transpose", [x], lambda e: e[x].transpose(2, 3), shape, perm=[0, 1, 3, 2])
        elif h > 2:
            names = []
            for v in ([1], [h], [2]):
                names.append(self._name("slc"))
                self.inits.append(numpy_helper.from_array(np.array(v, np.int64), names[-1]))
            self.node("Slice", [x, *names], lambda e: e[x][:, :, 1:], (1, c, h - 1, w))

    def scalar_mul(self, factor: float) -> None:
        """Multiply by a scalar constant (input scaling, output units)."""
        x = self.cur
        fn_, ft = self.const(np.array(factor))
        self.node("Mul", [x, fn_], lambda e: e[x] * ft, self.shape)

    def global_pool(self) -> None:
        """GlobalAveragePool to (1, C, 1, 1)."""
        x, (_, c, _, _) = self.cur, self.shape
        self.node("GlobalAveragePool", [x], lambda e: e[x].mean((2, 3), keepdim=True), (1, c, 1, 1))

    def flatten(self) -> None:
        """Flatten to (1, n)."""
        x, shape = self.cur, self.shape
        n = int(np.prod(shape[1:]))
        self.node("Flatten", [x], lambda e: e[x].reshape(len(e[x]), n), (1, n), axis=1)

    # products ----------------------------------------------------------------------------
    def model(self, dtype: int = TensorProto.FLOAT, opset: int = 15) -> onnx.ModelProto:
        """The ONNX model (float32), or its float64 twin for the reference truth.

        The truth is computed at opset 15: onnx's reference evaluator runs BatchNormalization
        before opset 14 in training mode (completeverify/onnx_reference.py).
        """
        inits = self.inits
        if dtype == TensorProto.DOUBLE:
            inits = [
                numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64), t.name)
                if t.data_type == TensorProto.FLOAT
                else t
                for t in self.inits
            ]
        graph = helper.make_graph(
            self.nodes,
            "planted",
            [helper.make_tensor_value_info("x", dtype, list(self.input_shape))],
            [helper.make_tensor_value_info(self.cur, dtype, list(self.shape))],
            inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network on float64 tensors (for PGD only; the truth is the reference evaluator)."""
        env = {"x": x}
        for out, fn in self.steps:
            env[out] = fn(env)
        return env[self.cur]


def random_net(
    rng: np.random.Generator, large: bool = False, scale: tuple[float, float] = (1.0, 1.0)
) -> tuple[NetBuilder, str]:
    """An MLP (input size 1-24, widths 3-12) or a small CNN (1-2 channels, 4x4 to 7x7, 1-3
    filters); ``large`` draws widths 16-48 and CNNs of up to 3 channels, 10x10 and 6 filters,
    where the root bounds rarely decide and branch and bound has to. ``scale`` (s_in, s_out):
    the network divides its input by s_in first and multiplies its output by s_out last
    (inputs in raw units, as exported preprocessing; outputs in other units)."""
    b, kind = _random_body(rng, large, scale[0])
    if scale[1] != 1.0:
        b.scalar_mul(scale[1])
    return b, kind


def _random_body(rng: np.random.Generator, large: bool, s_in: float) -> tuple[NetBuilder, str]:
    """random_net without the output scaling."""
    smooth = rng.random() < 0.2
    if rng.random() < 0.55:
        n_in = int(rng.choice([1, 2, 3, 5, 8, 12, 24]))
        b = NetBuilder(rng, (1, n_in))
        if s_in != 1.0:
            b.scalar_mul(1.0 / s_in)
        if rng.random() < 0.3:
            b.normalise()
        for _ in range(int(rng.integers(1, 4))):
            width = int(rng.integers(16, 49) if large else rng.integers(3, 13))
            u = rng.random()
            if u < 0.2 and b.shape[1] >= 2:
                n = b.shape[1]
                b.residual(lambda n=n: (b.dense(n), b.activation(smooth), b.dense(n)))
            elif u < 0.35:
                b.concat(lambda w=width: b.dense(w), lambda w=width: b.dense(w // 2 + 1))
            else:
                b.dense(width, scale=float(rng.choice([1.0, 1.0, 3.0])))
            b.activation(smooth)
        b.dense(int(rng.integers(2, 5)))
        return b, "mlp"
    c, h = int(rng.integers(1, 4 if large else 3)), int(rng.integers(4, 11 if large else 8))
    b = NetBuilder(rng, (1, c, h, h))
    if s_in != 1.0:
        b.scalar_mul(1.0 / s_in)
    if rng.random() < 0.3:
        b.normalise()
    for _ in range(int(rng.integers(1, 3))):
        u = rng.random()
        if u < 0.2:
            ch = b.shape[1]
            b.residual(lambda ch=ch: (_same_conv(b, ch), b.activation(smooth), _same_conv(b, ch)))
        else:
            b.conv(int(rng.integers(2, 7) if large else rng.integers(1, 4)))
        if rng.random() < 0.3:
            b.batchnorm()
        b.activation(smooth)
        if rng.random() < 0.35:
            b.pool()
        if rng.random() < 0.3:
            b.shape_op()
    if rng.random() < 0.15:
        b.global_pool()
    b.flatten()
    if rng.random() < 0.5:
        b.dense(int(rng.integers(8, 25) if large else rng.integers(3, 9)))
        b.activation(smooth)
    b.dense(int(rng.integers(2, 5)))
    return b, "cnn"


def _same_conv(b: NetBuilder, ch: int) -> None:
    """A 3x3 or 1x1 conv that keeps the shape (for a residual body)."""
    x, shape = b.cur, b.shape
    k = int(b.rng.choice([1, 3]))
    wn, wt = b.const(b.rng.normal(size=(ch, ch, k, k)) / np.sqrt(ch * k * k))
    bn, bt = b.const(b.rng.normal(size=ch) * 0.3)
    p = k // 2
    b.node(
        "Conv",
        [x, wn, bn],
        lambda e: F.conv2d(e[x], wt, bt, padding=p),
        shape,
        kernel_shape=[k, k],
        pads=[p, p, p, p],
    )


# the property -----------------------------------------------------------------------------
@dataclasses.dataclass
class Planted:
    """One instance: boxes (list of (lo, hi)), polytopes (list of (C, d)), what is known."""

    boxes: list
    polytopes: list
    direction: str  # "planted": violated at x*; "knife": unknown truth
    gap: float
    x_star: np.ndarray


def pgd_min(b: NetBuilder, c: np.ndarray, lo: np.ndarray, hi: np.ndarray, rng) -> np.ndarray:
    """A point of the box near the minimum of c . f(x) (float64 PGD, random restarts)."""
    shape = b.input_shape
    lo_t, hi_t = torch.tensor(lo).reshape(shape), torch.tensor(hi).reshape(shape)
    ct = torch.tensor(c)
    n = 16
    x = lo_t + (hi_t - lo_t) * torch.tensor(rng.random((n,) + shape[1:])).reshape((n,) + shape[1:])
    x = x.reshape((n,) + shape[1:])
    width = (hi_t - lo_t).reshape((1,) + shape[1:])
    best, best_v = None, np.inf
    for step in range(60):
        x.requires_grad_(True)
        vals = b.forward(x).reshape(n, -1) @ ct
        (g,) = torch.autograd.grad(vals.sum(), x)
        with torch.no_grad():
            i = int(torch.argmin(vals))
            if float(vals[i]) < best_v:
                best_v, best = float(vals[i]), x[i : i + 1].detach().clone()
            size = 0.25 * (1 - step / 60) + 0.01
            x = x.detach() - size * width * torch.sign(g)
            x = torch.max(torch.min(x, hi_t), lo_t)
    return best.reshape(-1).numpy()


def truth(model64: onnx.ModelProto, b: NetBuilder, x: np.ndarray) -> np.ndarray:
    """The float64 reference evaluator's output at x (the real-valued network, to 1e-15)."""
    out = ReferenceEvaluator(model64).run(None, {"x": x.reshape(b.input_shape)})[0]
    return np.asarray(out, dtype=np.float64).reshape(-1)


def random_property(b, f64, rng, in_scale: float = 1.0) -> Planted:
    """A box around a random centre, and an output condition planted at PGD's point.

    ``b`` has ``input_shape``, ``shape`` (its output's) and a float64 ``forward`` for PGD;
    ``f64(x)`` is the truth at a flat point x (float64, computed outside completeverify)."""
    n = int(np.prod(b.input_shape))
    centre = rng.uniform(-1, 1, n) * in_scale
    half = rng.choice([0.01, 0.05, 0.1, 0.3, 1.0]) * rng.uniform(0.2, 1.0, n) * in_scale
    half[rng.random(n) < 0.1] = 0.0  # some constant inputs
    lo = np.asarray(centre - half, np.float64)
    hi = np.asarray(centre + half, np.float64)
    m = b.shape[-1]
    if rng.random() < 0.5:
        i, j = rng.choice(m, 2, replace=False)
        c = np.zeros(m)
        c[i], c[j] = 1.0, -1.0
    else:
        c = rng.normal(size=m).round(3)
    x_star = pgd_min(b, c, lo, hi, rng)
    y_star = f64(x_star)
    value = float(c @ y_star)
    scale = 1.0 + float(np.abs(c) @ np.abs(y_star))
    gap = float(rng.choice(GAPS)) * scale
    direction = "planted" if rng.random() < 0.7 else "knife"
    d = value + gap if direction == "planted" else value - gap
    polys = [(c[None, :], np.array([d]))]
    u = rng.random()
    if u < 0.25:  # a conjunction: a second row that holds at x* too
        c2 = rng.normal(size=m).round(3)
        polys = [(np.stack([c, c2]), np.array([d, float(c2 @ y_star) + rng.uniform(1e-6, 0.5)]))]
    elif u < 0.45:  # a disjunction with a polytope that is probably out of reach
        c2 = rng.normal(size=m).round(3)
        polys.insert(int(rng.integers(0, 2)), (c2[None, :], np.array([float(c2 @ y_star) - 5.0])))
    boxes = [(lo, hi)]
    if rng.random() < 0.2:  # a second input box, before the one holding x*
        other = rng.uniform(-1, 1, n) * in_scale
        boxes.insert(0, (other - 0.05 * in_scale, other + 0.05 * in_scale))
    return Planted(boxes, polys, direction, gap, x_star)


def vnnlib(p: Planted, n_in: int, n_out: int) -> str:
    """VNN-LIB 1.0 text: the boxes as one disjunction, the polytopes as another."""
    lines = [f"(declare-const X_{i} Real)" for i in range(n_in)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]

    def box(lo, hi):
        return " ".join(
            f"(>= X_{i} {float(a)!r}) (<= X_{i} {float(z)!r})"
            for i, (a, z) in enumerate(zip(lo, hi))
        )

    if len(p.boxes) == 1:
        lines.append(f"(assert (and {box(*p.boxes[0])}))")
    else:
        lines.append("(assert (or " + " ".join(f"(and {box(*bx)})" for bx in p.boxes) + "))")
    terms = []
    for C, d in p.polytopes:
        rows = []
        for row, dk in zip(C, d):
            lhs = " ".join(f"(* {float(v)!r} Y_{j})" for j, v in enumerate(row) if v != 0)
            rows.append(f"(<= (+ {lhs} 0.0) {float(dk)!r})")
        terms.append("(and " + " ".join(rows) + ")")
    lines.append("(assert (or " + " ".join(terms) + "))")
    return "\n".join(lines) + "\n"


def vnnlib2(text: str, n_in: int, n_out: int) -> str:
    """The same property in VNN-LIB 2.0 (flat X[i], Y[j]; read through the PyPI vnnlib)."""
    head = (
        "(vnnlib-version <2.0>)\n"
        f"(declare-network N (declare-input X float32 [{n_in}]) "
        f"(declare-output Y float32 [{n_out}]))\n"
    )
    body = "\n".join(line for line in text.splitlines() if not line.startswith("(declare-const"))
    body = re.sub(r"\b([XY])_(\d+)\b", r"\1[\2]", body)
    # 2.0 numbers are plain decimals (no exponent); the positional form is the same float
    number = r"-?\d+\.?\d*e[-+]?\d+"
    body = re.sub(
        number, lambda m: np.format_float_positional(float(m[0]), unique=True, trim="0"), body
    )
    return head + body + "\n"


def witness_in_box(p: Planted, cex) -> str:
    """'' when a sat's counterexample exists and lies in its case's box, else what is wrong.

    A zero-width interval at a value float32 cannot represent admits its nearest float32."""
    if cex is None:
        return "sat without a counterexample"
    x = np.asarray(cex.input, dtype=np.float64).reshape(-1)
    lo, hi = p.boxes[cex.case]
    ulp = np.spacing(np.abs(lo).astype(np.float32)).astype(np.float64)
    pinned = (lo == hi) & (np.abs(x - lo) <= ulp)
    if not np.all(((x >= lo) & (x <= hi)) | pinned):
        return "witness outside its box"
    return ""


def replays(b: NetBuilder, p: Planted, result, backend: str) -> str:
    """'' when a sat's witness holds with zero tolerance, else what is wrong with it.

    Float32 outputs depend on the order of each sum, so the witness is run by the backend the
    verifier replayed it with: onnxruntime (as VNN-COMP checks), or onnx's reference evaluator
    (on the opset-15 copy, whose BatchNormalization it runs in inference mode).
    """
    cex = result.counterexample
    problem = witness_in_box(p, cex)
    if problem:
        return problem
    x = np.asarray(cex.input, dtype=np.float64).reshape(-1)
    x32 = np.asarray(cex.input, dtype=np.float32).reshape(b.input_shape)
    if not np.array_equal(x32.astype(np.float64).reshape(-1), x):
        return "witness not a float32 point"
    model = b.model()
    if backend == "reference":
        y = ReferenceEvaluator(model).run(None, {"x": x32})[0]
    else:
        sess = onnxruntime.InferenceSession(model.SerializeToString())
        y = sess.run(None, {"x": x32})[0]
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if not any(np.all(C @ y <= d) for C, d in p.polytopes):
        return "witness does not violate the property"
    return ""


def configs(seconds: float) -> list[tuple[str, VerifyConfig]]:
    """The configurations the campaign rotates through."""
    off = AttackConfig(enabled=False)
    base = VerifyConfig(timeout=seconds)
    quick_bab = BabConfig(prefix_after_s=0.5, prefix_side_s=0.2, intermediate_refine=True)
    return [
        ("default", base),
        ("no-attack", dataclasses.replace(base, attack=off)),
        ("relu-split", dataclasses.replace(base, attack=off, mode="relu-split")),
        ("input-split", dataclasses.replace(base, attack=off, mode="input-split")),
        ("milp", dataclasses.replace(base, attack=off, mode="milp")),
        ("milp-no-bounds", dataclasses.replace(base, attack=off, mode="milp", use_bounds=False)),
        ("crown", dataclasses.replace(base, attack=off, bound_method="crown")),
        ("ibp", dataclasses.replace(base, attack=off, bound_method="ibp")),
        ("pulp-milp", dataclasses.replace(base, attack=off, mode="milp", solver="pulp")),
        ("bab-extras", dataclasses.replace(base, attack=off, mode="relu-split", bab=quick_bab)),
        ("reference-replay", dataclasses.replace(base, replay="reference")),
    ]


def run_one(
    seed: int,
    seconds: float,
    out: Path,
    large: bool = False,
    only: list[str] | None = None,
    scaled: bool = False,
) -> dict:
    """Build, verify and judge one instance (configuration by seed, among ``only``);
    ``scaled``: inputs in units of 10 to 10^4 and outputs scaled by 10^-3 to 10^4."""
    rng = np.random.default_rng(seed)
    s_in, s_out = 1.0, 1.0
    if scaled:
        draw = np.random.default_rng([seed, 7])
        s_in = float(10.0 ** draw.integers(1, 5))
        s_out = float(10.0 ** draw.choice([-3, -1, 0, 2, 4]))
    b, kind = random_net(rng, large, (s_in, s_out))
    opset = int(rng.choice([11, 13, 15]))
    model32, model64 = b.model(opset=opset), b.model(TensorProto.DOUBLE)
    x0 = rng.uniform(-1, 1, int(np.prod(b.input_shape))) * s_in
    mirror = b.forward(torch.tensor(x0).reshape(b.input_shape)).detach().numpy().reshape(-1)
    if not np.allclose(mirror, truth(model64, b, x0), rtol=1e-9, atol=1e-9 * s_out):
        raise AssertionError(f"seed {seed}: the torch mirror disagrees with the reference")
    p = random_property(b, lambda x: truth(model64, b, x), rng, s_in)
    pool = [(n, c) for n, c in configs(seconds) if not only or n in only]
    name, config = pool[seed % len(pool)]
    text = vnnlib(p, int(np.prod(b.input_shape)), b.shape[-1])
    version = "1.0"
    if rng.random() < 0.3 and importlib.util.find_spec("vnnlib") is not None:
        text, version = vnnlib2(text, int(np.prod(b.input_shape)), b.shape[-1]), "2.0"
    verdict = judge(
        lambda: cv.verify(cv.load_onnx(model32), text, config=config),
        p,
        lambda result: replays(b, p, result, config.replay),
    )
    row = dict(
        seed=seed,
        kind=kind,
        opset=opset,
        vnnlib=version,
        ops=sorted({n.op_type for n in b.nodes}),
        config=name,
        **verdict,
    )
    if row["wrong"]:
        onnx.save(model32, str(out / f"wrong-{seed}.onnx"))
        save_wrong(out, row, text)
    return row


def judge(call, p: Planted, replay) -> dict:
    """Run ``call()`` (a cv.verify) and judge its verdict on the planted property ``p``:
    `unsat` on a planted instance is wrong, a `sat` is wrong unless ``replay(result)`` is ''.
    The row's fields direction, gap, status, seconds, wrong and message."""
    t0 = time.perf_counter()
    try:
        result = call()
        status, message = result.status.value, result.message
    except cv.CompleteVerifyError as exc:  # e.g. a mode that refuses this network
        result, status, message = None, "error", str(exc)
    wrong = ""
    if status == "unsat" and p.direction == "planted":
        wrong = "unsat on a property violated at x*"
    elif status == "sat":
        wrong = replay(result)
    return dict(
        direction=p.direction,
        gap=p.gap,
        status=status,
        seconds=round(time.perf_counter() - t0, 2),
        wrong=wrong,
        message=message[:200],
    )


def save_wrong(out: Path, row: dict, text: str) -> None:
    """Keep a wrong instance's property and row as OUT/wrong-SEED.{vnnlib,json}."""
    (out / f"wrong-{row['seed']}.vnnlib").write_text(text)
    (out / f"wrong-{row['seed']}.json").write_text(json.dumps(row, indent=1))


def campaign(log_path: Path, seconds: float, first: int, run, line) -> list[dict]:
    """Run ``run(seed)`` from seed ``first`` until ``seconds`` have passed; each row is appended
    to ``log_path`` as a JSON line and printed as ``line(row)``. Returns the rows."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    end = time.time() + seconds
    rows, seed = [], first
    with open(log_path, "a") as log:
        while time.time() < end:
            row = run(seed)
            rows.append(row)
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(line(row), flush=True)
            seed += 1
    return rows


def campaign_args(doc: str, per: str = "per instance") -> argparse.ArgumentParser:
    """The options every planted campaign takes: OUT_DIR, --seconds, --timeout, --first."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seconds", type=float, default=600.0, help="campaign length")
    ap.add_argument("--timeout", type=float, default=8.0, help=per)
    ap.add_argument("--first", type=int, default=0, help="first seed")
    return ap


def main() -> None:
    """Run seeds from --first until --seconds have passed; one JSON line per instance."""
    ap = campaign_args(__doc__)
    ap.add_argument("--large", action="store_true", help="wider networks (random_net)")
    ap.add_argument("--scaled", action="store_true", help="inputs and outputs in other units")
    ap.add_argument("--config", action="append", help="run only these configurations (repeatable)")
    args = ap.parse_args()
    names = [name for name, _ in configs(1.0)]
    if args.config and not set(args.config) <= set(names):
        ap.error(f"--config: choose from {', '.join(names)}")
    rows = campaign(
        args.out / "results.jsonl",
        args.seconds,
        args.first,
        lambda seed: run_one(seed, args.timeout, args.out, args.large, args.config, args.scaled),
        lambda r: (
            f"{r['seed']} {r['kind']} {r['config']} {r['direction']} gap={r['gap']:.1e} "
            f"{r['status']} {r['seconds']}s {r['wrong']}"
        ),
    )
    wrong = [r for r in rows if r["wrong"]]
    for key in ("status", "config", "direction"):
        counts: dict = {}
        for r in rows:
            counts[r[key]] = counts.get(r[key], 0) + 1
        print(key, dict(sorted(counts.items())))
    print(f"{len(rows)} instances, {len(wrong)} wrong")
    sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    main()

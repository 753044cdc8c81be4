"""Tiny networks and properties built in code, and an independent exact oracle.

The oracle enumerates every activation pattern of a one- or two-hidden-layer
ReLU MLP and solves one LP per pattern with highspy directly (no code shared
with completeverify's encoder), so it gives the exact minimum of
max_k (C_k y - d_k) over the box.
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def mlp_onnx(
    layers: list[tuple[np.ndarray, np.ndarray]],
    input_shape=(1, 2),
    opset: int = 13,
    dtype=TensorProto.FLOAT,
) -> onnx.ModelProto:
    """An ONNX MLP: Gemm + Relu for each hidden layer, a final Gemm. Weights are (out, in)."""
    np_dtype = np.float32 if dtype == TensorProto.FLOAT else np.float64
    nodes, inits = [], []
    cur = "x"
    if len(input_shape) != 2:
        nodes.append(helper.make_node("Flatten", [cur], ["flat"], axis=1))
        cur = "flat"
    for i, (w, b) in enumerate(layers):
        inits += [
            numpy_helper.from_array(np.asarray(w, np_dtype), f"W{i}"),
            numpy_helper.from_array(np.asarray(b, np_dtype), f"B{i}"),
        ]
        out = f"h{i}" if i < len(layers) - 1 else "y"
        nodes.append(
            helper.make_node(
                "Gemm",
                [cur, f"W{i}", f"B{i}"],
                [out + ("_pre" if out != "y" else "")],
                transB=1,
                name=f"gemm{i}",
            )
        )
        if out != "y":
            nodes.append(helper.make_node("Relu", [out + "_pre"], [out], name=f"relu{i}"))
        cur = out
    n_out = layers[-1][0].shape[0]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", dtype, list(input_shape))],
        [helper.make_tensor_value_info("y", dtype, [1, n_out])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def random_mlp(rng: np.random.Generator, sizes: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random layers for the given sizes [n_in, h1, ..., n_out], float32-representable."""
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        w = rng.normal(size=(b, a)) / np.sqrt(a)
        bias = rng.normal(size=b) * 0.3
        layers.append(
            (w.astype(np.float32).astype(np.float64), bias.astype(np.float32).astype(np.float64))
        )
    return layers


def vnnlib_text(lower, upper, polytopes: list[tuple[np.ndarray, np.ndarray]]) -> str:
    """A VNNLIB property: the box, and unsafe iff some C y <= d holds."""
    n_in, n_out = len(lower), polytopes[0][0].shape[1]
    lines = [f"(declare-const X_{i} Real)" for i in range(n_in)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    for i, (lo, hi) in enumerate(zip(lower, upper)):
        lines += [f"(assert (>= X_{i} {float(lo)!r}))", f"(assert (<= X_{i} {float(hi)!r}))"]
    terms = []
    for C, d in polytopes:
        rows = []
        for row, dk in zip(C, d):
            lhs = " ".join(f"(* {float(c)!r} Y_{j})" for j, c in enumerate(row) if c != 0)
            rows.append(f"(<= (+ {lhs} 0.0) {float(dk)!r})")
        terms.append("(and " + " ".join(rows) + ")")
    lines.append("(assert (or " + " ".join(terms) + "))")
    return "\n".join(lines) + "\n"


def exact_min(layers, lower, upper, polytopes) -> float:
    """min over the box of min over polytopes of max_k (C_k y - d_k), by pattern enumeration +
    LP."""
    import highspy

    hidden = [w.shape[0] for w, _ in layers[:-1]]
    assert sum(hidden) <= 14, "oracle is exponential"
    best = np.inf
    n = len(lower)
    for pattern in itertools.product([0, 1], repeat=sum(hidden)):
        # affine expressions of x: value = A x + a
        A, a = np.eye(n), np.zeros(n)
        rows_lo, rows_A, rows_hi = [], [], []
        pos = 0
        for w, b in layers[:-1]:
            pre_A, pre_a = w @ A, w @ a + b
            s = np.array(pattern[pos : pos + w.shape[0]], dtype=float)
            pos += w.shape[0]
            for i in range(w.shape[0]):  # active: pre >= 0, inactive: pre <= 0
                rows_A.append(pre_A[i])
                rows_lo.append(-pre_a[i] if s[i] else -np.inf)
                rows_hi.append(np.inf if s[i] else -pre_a[i])
            A, a = pre_A * s[:, None], pre_a * s
        w, b = layers[-1]
        yA, ya = w @ A, w @ a + b
        for C, d in polytopes:
            h = highspy.Highs()
            h.setOptionValue("output_flag", False)
            inf = highspy.kHighsInf
            for i in range(n):
                h.addVar(float(lower[i]), float(upper[i]))
            h.addVar(-inf, inf)  # t
            h.changeColCost(n, 1.0)
            for ra, lo, hi in zip(rows_A, rows_lo, rows_hi):
                h.addRow(
                    -inf if lo == -np.inf else lo, inf if hi == np.inf else hi, n, np.arange(n), ra
                )
            for k in range(C.shape[0]):  # C_k (yA x + ya) - d_k - t <= 0
                coef = np.append(C[k] @ yA, -1.0)
                h.addRow(-inf, float(d[k] - C[k] @ ya), n + 1, np.arange(n + 1), coef)
            h.run()
            if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
                best = min(best, h.getInfo().objective_function_value)
    return best


def search_context(net, lower, upper, polytopes, bab, timeout: float = 30.0, attack: bool = False):
    """A VerifyContext for one case {lower <= x <= upper} with these (C, d) polytopes on a
    loaded net, built by hand: what tests of a search stage (relu_split, prefix refinement) run
    on without the pipeline.  bab: the BabConfig; attack: PGD on or off."""
    import completeverify as cv
    from completeverify.config import AttackConfig, Deadline, VerifyConfig
    from completeverify.context import VerifyContext
    from completeverify.verdict import Replayer

    prop = cv.load_vnnlib(vnnlib_text(lower, upper, polytopes), net)
    config = VerifyConfig(timeout=timeout, attack=AttackConfig(enabled=attack), bab=bab)
    return VerifyContext(
        net, prop, config, Deadline(timeout), Replayer(net.onnx_model), np.random.default_rng(0)
    )


def forward_np(layers, x: np.ndarray) -> np.ndarray:
    """Plain numpy forward pass of the MLP."""
    h = np.asarray(x, dtype=np.float64).reshape(-1)
    for w, b in layers[:-1]:
        h = np.maximum(w @ h + b, 0.0)
    w, b = layers[-1]
    return w @ h + b


def make_example(folder) -> dict:
    """Write the shipped example (examples/): a 5-6-6-3 MLP and two properties with exact verdicts.

    Thresholds come from the exact oracle: the `sat` property asks for
    y0 - y1 <= m + 0.05 and the `unsat` one for y0 - y1 <= m - 0.05, where m is
    the exact minimum of y0 - y1 over the box.
    """
    from pathlib import Path

    folder = Path(folder)
    rng = np.random.default_rng(2026)
    layers = random_mlp(rng, [5, 6, 6, 3])
    lower, upper = -np.ones(5) * 0.5, np.ones(5) * 0.5
    C = np.array([[1.0, -1.0, 0.0]])
    m = exact_min(layers, lower, upper, [(C, np.zeros(1))])
    onnx.save(mlp_onnx(layers, input_shape=(1, 5)), folder / "mlp.onnx")
    (folder / "mlp_sat.vnnlib").write_text(
        vnnlib_text(lower, upper, [(C, np.array([round(m + 0.05, 6)]))])
    )
    (folder / "mlp_unsat.vnnlib").write_text(
        vnnlib_text(lower, upper, [(C, np.array([round(m - 0.05, 6)]))])
    )
    return {"min": m}


# Sigmoid / Tanh networks (smooth activations: bounds-only branch and bound)
ACTS = {
    "sigmoid": ("Sigmoid", lambda z: 1 / (1 + np.exp(-z)), 0.25),
    "tanh": ("Tanh", np.tanh, 1.0),
}


def smooth_net(rng: np.random.Generator, sizes: list[int], act: str, scale: float = 2.5):
    """Layers (w (out, in), b) float32-representable, with a strong first layer (curved region)."""
    layers = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        w = rng.normal(size=(b, a)) * (scale if i == 0 else 1.0) / np.sqrt(a)
        bias = rng.normal(size=b) * 0.5
        f32 = (w.astype(np.float32), bias.astype(np.float32))
        layers.append((f32[0].astype(np.float64), f32[1].astype(np.float64)))
    return layers


def smooth_onnx(layers, act: str) -> onnx.ModelProto:
    """Gemm + activation per hidden layer, a final Gemm; input (1, n)."""
    nodes, inits, cur = [], [], "x"
    for i, (w, b) in enumerate(layers):
        inits += [
            numpy_helper.from_array(w.astype(np.float32), f"W{i}"),
            numpy_helper.from_array(b.astype(np.float32), f"B{i}"),
        ]
        last = i == len(layers) - 1
        out = "y" if last else f"z{i}"
        nodes.append(helper.make_node("Gemm", [cur, f"W{i}", f"B{i}"], [out], transB=1))
        if not last:
            nodes.append(helper.make_node(ACTS[act][0], [out], [f"h{i}"]))
            cur = f"h{i}"
    n_in, n_out = layers[0][0].shape[1], layers[-1][0].shape[0]
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])
    y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])
    g = helper.make_graph(nodes, "smooth", [x_info], [y_info], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m

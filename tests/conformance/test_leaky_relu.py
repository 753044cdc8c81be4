"""LeakyRelu, added natively by the CONTRIBUTING.md recipe: converter vs onnxruntime, sampled
points inside every bound, verdicts against an exact oracle, counterexamples that replay."""

from __future__ import annotations

import dataclasses
import functools
import itertools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import completeverify as cv
from completeverify.bounds import BoundEngine
from completeverify.bounds.forward import forward_pre_bounds, supports
from completeverify.config import AttackConfig, VerifyConfig
from completeverify.errors import CompleteVerifyError
from completeverify.graph import LeakyRelu

from nets import random_mlp, vnnlib_text

SIZES = [2, 5, 5, 2]
MODES = ["auto", "relu-split", "input-split", "milp"]


def leaky_onnx(layers, alpha: float | None, n_in: int) -> onnx.ModelProto:
    """Gemm + LeakyRelu(alpha) per hidden layer, a final Gemm; alpha None: the ONNX default."""
    nodes, inits, cur = [], [], "x"
    for i, (w, b) in enumerate(layers):
        inits += [
            numpy_helper.from_array(np.asarray(w, np.float32), f"W{i}"),
            numpy_helper.from_array(np.asarray(b, np.float32), f"B{i}"),
        ]
        last = i == len(layers) - 1
        out = "y" if last else f"h{i}"
        nodes.append(
            helper.make_node(
                "Gemm",
                [cur, f"W{i}", f"B{i}"],
                [out if last else out + "p"],
                transB=1,
                name=f"gemm{i}",
            )
        )
        if not last:
            kw = {} if alpha is None else {"alpha": alpha}
            nodes.append(helper.make_node("LeakyRelu", [out + "p"], [out], name=f"leaky{i}", **kw))
        cur = out
    n_out = layers[-1][0].shape[0]
    graph = helper.make_graph(
        nodes,
        "leaky",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n_out])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def exact_min(layers, alpha: float, lower, upper, C: np.ndarray, d: np.ndarray) -> float:
    """min over the box of max_k (C_k y - d_k), by enumerating activation patterns (one LP each)."""
    import highspy

    n = len(lower)
    hidden = sum(w.shape[0] for w, _ in layers[:-1])
    best = np.inf
    inf = highspy.kHighsInf
    for pattern in itertools.product([0, 1], repeat=hidden):
        A, a = np.eye(n), np.zeros(n)
        rows = []
        pos = 0
        for w, b in layers[:-1]:
            pre_A, pre_a = w @ A, w @ a + b
            s = np.array(pattern[pos : pos + w.shape[0]], dtype=float)
            pos += w.shape[0]
            for i in range(w.shape[0]):  # active: pre >= 0, else pre <= 0
                rows.append((pre_A[i], -pre_a[i], inf) if s[i] else (pre_A[i], -inf, -pre_a[i]))
            slope = np.where(s > 0, 1.0, alpha)
            A, a = pre_A * slope[:, None], pre_a * slope
        w, b = layers[-1]
        yA, ya = w @ A, w @ a + b
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        for i in range(n):
            h.addVar(float(lower[i]), float(upper[i]))
        h.addVar(-inf, inf)
        h.changeColCost(n, 1.0)
        for ra, lo, hi in rows:
            h.addRow(float(lo), float(hi), n, np.arange(n), ra)
        for k in range(C.shape[0]):
            h.addRow(
                -inf, float(d[k] - C[k] @ ya), n + 1, np.arange(n + 1), np.append(C[k] @ yA, -1.0)
            )
        h.run()
        if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
            best = min(best, h.getInfo().objective_function_value)
    return best


@functools.lru_cache(maxsize=None)
def instance(seed: int, alpha: float):
    """A random LeakyRelu MLP, its box, spec row and the exact minimum of C y over the box."""
    rng = np.random.default_rng(700 + seed)
    layers = random_mlp(rng, SIZES)
    lower = rng.uniform(-3, 0, size=SIZES[0]).round(3)
    upper = (lower + rng.uniform(1.0, 3.0, size=SIZES[0])).round(3)
    C = np.array([[1.0, -1.0]])
    return layers, lower, upper, C, exact_min(layers, alpha, lower, upper, C, np.zeros(1))


@pytest.mark.parametrize("alpha", [None, 0.0, 0.01, 0.3, 1.0])
def test_converter_matches_onnxruntime(alpha) -> None:
    """The imported graph computes what onnxruntime computes (alpha attribute or its default)."""
    rng = np.random.default_rng(3)
    layers = random_mlp(rng, [3, 6, 4, 2])
    model = leaky_onnx(layers, alpha, 3)
    net = cv.load_onnx(model)
    ops = [n.op for n in net.nodes if isinstance(n.op, LeakyRelu)]
    assert len(ops) == 2
    assert ops[0].alpha == pytest.approx(0.01 if alpha is None else alpha, rel=1e-6)
    x = rng.normal(size=(64, 3)).astype(np.float32) * 3
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = np.concatenate([sess.run(None, {"x": x[i : i + 1]})[0] for i in range(len(x))])
    got = net(torch.as_tensor(x, dtype=torch.float64)).numpy().reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("alpha", [-0.5, 2.0])
def test_unsupported_alpha_is_a_clear_input_error(alpha: float) -> None:
    """alpha outside [0, 1] (not max(x, alpha x)) is refused naming the node."""
    layers = random_mlp(np.random.default_rng(0), [2, 3, 1])
    with pytest.raises(CompleteVerifyError, match="leaky0"):
        cv.load_onnx(leaky_onnx(layers, alpha, 2))


@pytest.mark.parametrize("alpha", [0.05, 0.5])
@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown"])
def test_sampled_points_inside_bounds(alpha: float, method: str) -> None:
    """Outputs and intermediate values of sampled inputs lie inside every computed bound."""
    rng = np.random.default_rng(11)
    layers = random_mlp(rng, [3, 8, 8, 3])
    net = cv.load_onnx(leaky_onnx(layers, alpha, 3))
    lo = torch.as_tensor(rng.uniform(-2, 0, size=(2, 3)))
    hi = lo + torch.as_tensor(rng.uniform(0.5, 2.5, size=(2, 3)))
    C = torch.as_tensor(rng.normal(size=(4, 3)))
    res = BoundEngine(net).compute(lo, hi, C, method=method, need_ub=True)
    assert res.ub is not None
    fwd = forward_pre_bounds(net, lo, hi) if supports(net) else {}
    assert supports(net) and set(fwd) == set(res.pre)
    for b in range(2):
        x = lo[b] + (hi[b] - lo[b]) * torch.rand(
            4000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(b)
        )
        x = torch.cat([x, lo[b : b + 1], hi[b : b + 1]])
        vals = net.forward_all(x)
        y = vals[-1] @ C.T
        assert bool((y >= res.lb[b] - 1e-9).all()) and bool((y <= res.ub[b] + 1e-9).all())
        for j, (plo, phi) in list(res.pre.items()) + list(fwd.items()):
            v = vals[j]
            assert bool((v >= plo[b] - 1e-9).all()) and bool((v <= phi[b] + 1e-9).all()), j


def test_alpha_crown_is_at_least_crown_and_optimises_slopes() -> None:
    """alpha-CROWN never loses to CROWN and keeps alphas inside [alpha, 1] of the LeakyRelu."""
    layers, lower, upper, C, _ = instance(0, 0.2)
    net = cv.load_onnx(leaky_onnx(layers, 0.2, 2))
    eng = BoundEngine(net)
    lo, hi = torch.as_tensor(lower)[None], torch.as_tensor(upper)[None]
    crown = eng.compute(lo, hi, torch.as_tensor(C), method="crown")
    alpha = eng.compute(lo, hi, torch.as_tensor(C), method="alpha-crown")
    assert float(alpha.lb[0, 0]) >= float(crown.lb[0, 0]) - 1e-12
    assert alpha.state is not None and alpha.state.alphas
    for a in alpha.state.alphas.values():
        assert float(a.min()) >= 0.2 - 1e-12 and float(a.max()) <= 1.0


def _config(mode: str) -> VerifyConfig:
    """No attack: the exact stages must find the verdict (and the counterexample) themselves."""
    return VerifyConfig(timeout=60, mode=mode, attack=AttackConfig(enabled=False))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed,alpha", [(0, 0.1), (1, 0.3)])
def test_verdicts_agree_with_oracle_and_counterexamples_replay(
    mode: str, seed: int, alpha: float
) -> None:
    """C y <= m - 0.05 is unsat and C y <= m + 0.05 is sat (m: the exact minimum); every sat
    counterexample lies in the box and violates the property in onnxruntime."""
    layers, lower, upper, C, m = instance(seed, alpha)
    model = leaky_onnx(layers, alpha, 2)
    net = cv.load_onnx(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for gap, want in ((-0.05, "unsat"), (0.05, "sat")):
        d = np.array([m + gap])
        res = cv.verify(net, vnnlib_text(lower, upper, [(C, d)]), config=_config(mode))
        assert res.status.value == want, (mode, seed, gap, res.message)
        if want == "sat":
            cex = res.counterexample
            assert cex is not None
            x = np.asarray(cex.input, dtype=np.float32).reshape(1, -1)
            assert bool(np.all(x >= lower - 1e-6) and np.all(x <= upper + 1e-6))
            y = sess.run(None, {"x": x})[0].reshape(-1).astype(np.float64)
            assert float(C[0] @ y) <= float(d[0]) + 1e-6


def test_relu_split_branches_on_leaky_relu_neurons() -> None:
    """ReLU splitting really splits LeakyRelu inputs (and still agrees with the oracle)."""
    layers, lower, upper, C, m = instance(2, 0.1)
    net = cv.load_onnx(leaky_onnx(layers, 0.1, 2))
    cfg = _config("relu-split")
    cfg = dataclasses.replace(
        cfg,
        bab=dataclasses.replace(cfg.bab, race_milp=False, stall_rounds=0, milp_handoff_domains=0),
    )
    res = cv.verify(net, vnnlib_text(lower, upper, [(C, np.array([m - 0.01]))]), config=cfg)
    assert res.status.value == "unsat", res.message
    assert res.stats.get("bab_domains", 0) > 1

"""Knife-edge MILP candidates: repaired on the float grid or by the activation-pattern LP, and a
search that ends open before the deadline searches again instead of answering unknown."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import completeverify as cv
from completeverify.bab.knife_edge import affine_maps, pattern_lp_point
from completeverify.config import AttackConfig, VerifyConfig

from nets import forward_np, mlp_onnx, random_mlp, vnnlib_text

# y = (h - c, h - c) with h = relu(w x + b) > 0 on [0, 1]; unsafe iff y0 <= 0 and y1 >= 0, i.e.
# h == c in the model's float32 arithmetic: a region of one or two float32 points, and the
# float32 point nearest to the real solution (c - b) / w is not one of them (checked below)
W, B, CC = 6.348700046539307, 0.4041201174259186, 3.1656229496002197
POLY = (np.array([[1.0, 0.0], [0.0, -1.0]]), np.zeros(2))


def _knife_net():
    """The ONNX model and a check that its knife edge is real on this platform."""
    layers = [(np.array([[W]]), np.array([B])), (np.array([[1.0], [1.0]]), np.array([-CC, -CC]))]
    model = mlp_onnx(layers, input_shape=(1, 1))
    sess = ort.InferenceSession(model.SerializeToString())

    def unsafe(x: np.float32) -> bool:
        y = sess.run(None, {"x": np.array([[x]], np.float32)})[0][0]
        return bool(y[0] <= 0 and -y[1] <= 0)

    x32 = np.float32((CC - B) / W)
    near = [np.float32(x32 + k * np.spacing(x32)) for k in range(-4, 5)]
    if unsafe(x32) or not any(unsafe(x) for x in near):
        pytest.skip("this platform's float32 Gemm rounds differently: no knife edge here")
    return model


@pytest.mark.parametrize("mode", ["milp", "relu-split", "auto"])
def test_knife_edge_candidate_is_snapped_to_the_float_grid(mode):
    model = _knife_net()
    cfg = VerifyConfig(timeout=20, mode=mode, attack=AttackConfig(enabled=False))
    r = cv.verify(cv.load_onnx(model), vnnlib_text([0.0], [1.0], [POLY]), config=cfg)
    assert r.status == cv.Status.SAT, r.message
    x = np.asarray(r.counterexample.input, dtype=np.float32).reshape(1, 1)
    y = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0][0].astype(np.float64)
    assert np.all(POLY[0] @ y <= POLY[1])
    assert r.stats.get("knife_edge_repaired", 0) >= 1


@pytest.mark.parametrize("seed", range(4))
def test_affine_maps_match_the_network_in_the_pattern(seed):
    rng = np.random.default_rng(seed)
    layers = random_mlp(rng, [3, 5, 4, 2])
    net = cv.load_onnx(mlp_onnx(layers, input_shape=(1, 3)))
    x = rng.uniform(-1, 1, 3)
    _, extra = affine_maps(net, x)
    J, c = extra["out"]
    assert np.allclose(J @ x + c, forward_np(layers, x), atol=1e-9)


def _pattern(layers, x):
    """ReLU on/off states of every hidden neuron at x."""
    h, out = np.asarray(x, float), []
    for w, b in layers[:-1]:
        z = w @ h + b
        out.append(z > 0)
        h = np.maximum(z, 0)
    return np.concatenate(out)


@pytest.mark.parametrize("seed", range(4))
def test_pattern_lp_point_is_deep_inside_the_violation_region(seed):
    rng = np.random.default_rng(100 + seed)
    layers = random_mlp(rng, [3, 5, 4, 2])
    net = cv.load_onnx(mlp_onnx(layers, input_shape=(1, 3)))
    lower, upper = -np.ones(3), np.ones(3)
    x = rng.uniform(-1, 1, 3)
    y = forward_np(layers, x)
    C = np.array([[1.0, -1.0]])

    class Poly:
        """A one-row polytope y0 - y1 <= d that x meets with slack 1e-9 (a knife edge)."""

        def __init__(self, d):
            self.C, self.d = C, np.array([d])

    p = pattern_lp_point(net, lower, upper, Poly(float(C[0] @ y) + 1e-9), x)
    assert p is not None
    assert np.all(p >= lower) and np.all(p <= upper)
    assert np.array_equal(_pattern(layers, p), _pattern(layers, x))
    assert float(C[0] @ forward_np(layers, p)) <= float(C[0] @ y)  # at least as deep as x
    # a threshold below every value of the network over the box: the pattern cannot violate it
    assert pattern_lp_point(net, lower, upper, Poly(-1e6), x) is None


def test_open_search_keeps_going_until_a_verdict(monkeypatch):
    """A MILP that never decides (every answer a bogus candidate) used to end in an early
    unknown."""
    from completeverify.milp import decide, leaf

    rng = np.random.default_rng(7)
    layers = random_mlp(rng, [2, 6, 6, 2])
    lower, upper = -np.ones(2), np.ones(2)
    g = np.stack(np.meshgrid(np.linspace(-1, 1, 101), np.linspace(-1, 1, 101)), -1).reshape(-1, 2)
    vals = np.array([forward_np(layers, p) @ np.array([1.0, -1.0]) for p in g])
    t = float(vals.min()) - 0.5  # far below every value: unsat, and provable by bounds
    real = decide.solve_pair

    def bogus(enc, *a, **k):
        ans = real(enc, *a, **k)
        return decide.MilpAnswer(
            decide.Outcome.CANDIDATE, (lower + upper) / 2, None, -1.0, ans.status, ans.seconds
        )

    monkeypatch.setattr(leaf, "solve_pair", bogus)  # every exact decision goes through the leaf
    net = cv.load_onnx(mlp_onnx(layers, input_shape=(1, 2)))
    prop = vnnlib_text(lower, upper, [(np.array([[1.0, -1.0]]), np.array([t]))])
    cfg = VerifyConfig(
        timeout=20, mode="milp", attack=AttackConfig(enabled=False), use_bounds=False
    )
    r = cv.verify(net, prop, config=cfg)
    assert r.status == cv.Status.UNSAT, r.message
    assert r.stats.get("keep_searching") == 1


@pytest.mark.parametrize("name", ["highs_presolve_cnn", "highs_root_cnn"])
def test_milp_mode_on_programs_highs_calls_infeasible_is_not_unsat(name):
    """Two small CNNs whose properties are violated at known points (margins 0.0018 and
    1.1e-7): the exact MILP alone (no attack) answered unsat in 0.1-0.3 s because HiGHS
    declared their feasible encodings infeasible, in MIP presolve (the first) and in its root
    propagation with presolve off (the second)."""
    from paths import REPO

    data = REPO / "tests" / "data"
    net = cv.load_onnx(str(data / f"{name}.onnx"))
    prop = (data / f"{name}.vnnlib").read_text()
    for use_bounds in (True, False):
        config = VerifyConfig(
            timeout=30, mode="milp", use_bounds=use_bounds, attack=AttackConfig(enabled=False)
        )
        r = cv.verify(net, prop, config=config)
        assert r.status == cv.Status.SAT, (use_bounds, r.message)

"""Branch and bound on networks with Sigmoid/Tanh: unsat proven by splitting where the root bounds
fail, sat only from replay, and never a verdict that a dense grid contradicts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import completeverify as cv
from completeverify.bounds import BoundEngine
from completeverify.config import AttackConfig, BabConfig, VerifyConfig

from nets import ACTS, smooth_net, smooth_onnx, vnnlib_text


def forward(layers, act: str, x: np.ndarray) -> np.ndarray:
    """Numpy forward pass for points x (K, n_in) -> (K, n_out)."""
    h = x
    for w, b in layers[:-1]:
        h = ACTS[act][1](h @ w.T + b)
    w, b = layers[-1]
    return h @ w.T + b


def grid_min(layers, act: str, lower, upper, c: np.ndarray, n: int = 301) -> tuple[float, float]:
    """(min of c.y on an n x n grid of a 2-input box, a lower bound of the true min over the box).

    The lower bound subtracts Lipschitz constant x the largest distance to the grid (one hidden
    layer: |grad c.y| <= sum_k |(c W1)_k| slope_max ||W0_k||_2).
    """
    axes = [np.linspace(lower[i], upper[i], n) for i in range(2)]
    g = np.stack(np.meshgrid(*axes), -1)
    vals = forward(layers, act, g.reshape(-1, 2)) @ c
    (w0, _), (w1, _) = layers
    lip = float(np.sum(np.abs(c @ w1) * ACTS[act][2] * np.linalg.norm(w0, axis=1)))
    h = np.hypot((upper[0] - lower[0]) / (n - 1), (upper[1] - lower[1]) / (n - 1)) / 2
    return float(vals.min()), float(vals.min()) - lip * h


def root_lb(net, lower, upper, c, t) -> float:
    """Best root lower bound of c.y - t (IBP, CROWN, alpha-CROWN)."""
    eng = BoundEngine(net)
    lo = torch.as_tensor(lower)[None]
    hi = torch.as_tensor(upper)[None]
    C = torch.as_tensor(c)[None, None]
    c0 = torch.tensor([[-t]])
    return max(
        float(eng.compute(lo, hi, C, c0, method=m).lb) for m in ("ibp", "crown", "alpha-crown")
    )


def _config(mode: str = "auto", attack: bool = False, timeout: float = 20.0) -> VerifyConfig:
    """A config for the smooth search (PGD off unless asked: the search itself must decide)."""
    return VerifyConfig(
        timeout=timeout, attack=AttackConfig(enabled=attack), bab=BabConfig(smooth_branching=mode)
    )


def _prop(lower, upper, c, t) -> str:
    """Unsafe iff c . y <= t."""
    return vnnlib_text(lower, upper, [(np.asarray(c)[None], np.array([t]))])


BOX = (np.array([-2.0, -2.0]), np.array([2.0, 2.0]))
C = np.array([1.0, -1.0])


@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_search_proves_unsat_where_root_bounds_fail(act):
    layers = smooth_net(np.random.default_rng(0), [2, 8, 2], act)
    model = smooth_onnx(layers, act)
    net = cv.load_onnx(model)
    _, lower_min = grid_min(layers, act, *BOX, C)
    t = lower_min - 0.02  # below the true minimum: unsat
    assert root_lb(net, *BOX, C, t) < 0  # the root bounds alone cannot prove it
    r = cv.verify(net, _prop(*BOX, C, t), config=_config())
    assert r.status == cv.Status.UNSAT, r.message
    assert r.stats["domains"] > 1


@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_sat_only_from_replay(act):
    from onnx.reference import ReferenceEvaluator

    layers = smooth_net(np.random.default_rng(1), [2, 8, 2], act)
    model = smooth_onnx(layers, act)
    gmin, _ = grid_min(layers, act, *BOX, C)
    t = gmin + 0.02
    r = cv.verify(cv.load_onnx(model), _prop(*BOX, C, t), config=_config())
    assert r.status == cv.Status.SAT
    x = np.asarray(r.counterexample.input, dtype=np.float32).reshape(1, 2)
    assert np.all(x >= BOX[0]) and np.all(x <= BOX[1])
    y = ReferenceEvaluator(model).run(None, {"x": x})[0].astype(np.float64).reshape(-1)
    assert float(C @ y) <= t


def test_activation_splitting_proves_deeper_net():
    layers = smooth_net(np.random.default_rng(0), [2, 8, 8, 2], "sigmoid")
    net = cv.load_onnx(smooth_onnx(layers, "sigmoid"))
    g = np.stack(np.meshgrid(np.linspace(-2, 2, 201), np.linspace(-2, 2, 201)), -1).reshape(-1, 2)
    gmin = float((forward(layers, "sigmoid", g) @ C).min())
    root = root_lb(net, *BOX, C, 0.0)
    t = root + 0.5 * (gmin - root)
    assert root_lb(net, *BOX, C, t) < 0
    r = cv.verify(net, _prop(*BOX, C, t), config=_config("activation"))
    assert r.status == cv.Status.UNSAT


@pytest.mark.parametrize("mode", ["input", "activation"])
@pytest.mark.parametrize("seed", range(3))
def test_never_contradicts_the_grid(mode, seed):
    """Thresholds just above / below the grid minimum: a verdict, when given, agrees with the
    grid (sat needs a point at or below t; unsat needs the Lipschitz lower bound above t)."""
    act = ["sigmoid", "tanh"][seed % 2]
    layers = smooth_net(np.random.default_rng(10 + seed), [2, 6, 2], act)
    net = cv.load_onnx(smooth_onnx(layers, act))
    gmin, glb = grid_min(layers, act, *BOX, C, n=201)
    for t in (gmin + 0.01, glb - 0.01, (gmin + glb) / 2):
        r = cv.verify(net, _prop(*BOX, C, t), config=_config(mode, attack=True, timeout=1.0))
        if r.status == cv.Status.UNSAT:
            assert t < gmin, (t, gmin)
        if r.status == cv.Status.SAT:
            x = np.asarray(r.counterexample.input, dtype=np.float64).reshape(1, 2)
            y = forward(layers, act, x)
            assert float(y[0] @ C) <= t + 1e-5
            assert t >= glb


def test_smooth_branching_option_is_validated():
    with pytest.raises(cv.CompleteVerifyError):
        VerifyConfig(bab=dataclasses.replace(BabConfig(), smooth_branching="bogus"))

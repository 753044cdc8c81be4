"""Mixed precision (bounds/mixed.py): alpha/beta searched in float32, bounds in float64.

The bound must stay sound (below every sampled value, and below the exact minimum of tiny
nets), be as tight as float64 alpha-CROWN up to float32 search noise, and a float32 iterate
must never be what decides: the returned bound is the float64 evaluation at its parameters.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import completeverify as cv
from completeverify.bab.root_pre import optimise_root_pre
from completeverify.bounds import BoundConfig, BoundEngine, Refinement, Splits
from completeverify.bounds.mixed import MixedPrecision
from completeverify.config import BabConfig

from nets import exact_min, mlp_onnx, random_mlp


def _engines(net, **kw):
    """(float64 engine, MixedPrecision) with the same configuration."""
    cfg = BoundConfig(alpha_iters=15, **kw)
    e64 = BoundEngine(net, cfg)
    return e64, MixedPrecision(e64, BoundEngine(net, cfg, dtype=torch.float32))


@pytest.mark.parametrize("seed", range(4))
def test_mixed_bound_is_sound_and_as_tight_as_float64(seed):
    rng = np.random.default_rng(seed)
    layers = random_mlp(rng, [3, 6, 5, 2])
    net = cv.load_onnx(mlp_onnx(layers, input_shape=(1, 3)))
    lower, upper = -np.ones(3) * 0.8, np.ones(3) * 0.8
    C = np.array([[1.0, -1.0]])
    e64, mixed = _engines(net)
    lo, hi = torch.as_tensor(lower)[None], torch.as_tensor(upper)[None]
    ref = e64.compute(lo, hi, torch.as_tensor(C), method="alpha-crown").lb
    got = mixed.compute(lo, hi, torch.as_tensor(C))
    assert got.lb.dtype == torch.float64 and all(
        v[0].dtype == torch.float64 for v in got.pre.values()
    )
    m = exact_min(layers, lower, upper, [(C, np.zeros(1))])
    assert float(got.lb[0, 0]) <= m
    assert float(got.lb[0, 0]) >= float(ref[0, 0]) - 1e-4 * (1 + abs(float(ref[0, 0])))


def test_mixed_bound_with_splits_is_below_sampled_values():
    rng = np.random.default_rng(11)
    layers = random_mlp(rng, [4, 8, 8, 3])
    net = cv.load_onnx(mlp_onnx(layers, input_shape=(1, 4)))
    relu = next(i for i, n in enumerate(net.nodes) if type(n.op).__name__ == "Relu")
    B = 6
    lo = torch.full((B, 4), -1.0, dtype=torch.float64)
    hi = torch.full((B, 4), 1.0, dtype=torch.float64)
    signs = torch.zeros(B, net.nodes[relu].size, dtype=torch.int8)
    signs[torch.arange(B), torch.arange(B) % net.nodes[relu].size] = torch.tensor(
        [1, -1] * 3, dtype=torch.int8
    )
    splits = Splits({relu: signs})
    C = torch.tensor([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]], dtype=torch.float64)
    _, mixed = _engines(net, intermediate_crown=True)
    res = mixed.compute(lo, hi, C, splits=splits)
    x = torch.as_tensor(rng.uniform(-1, 1, (4000, 4)))
    vals = net.forward_all(x)
    pre = vals[net.nodes[relu].inputs[0]]
    y = vals[-1] @ C.T
    for b in range(B):
        k = b % net.nodes[relu].size
        ok = pre[:, k] >= 0 if signs[b, k] > 0 else pre[:, k] <= 0
        if bool(ok.any()):
            assert torch.all(res.lb[b] <= y[ok].min(0).values + 1e-9)


def test_float32_iterate_never_decides(monkeypatch):
    """Even a float32 search that returns garbage parameters cannot make the bound unsound."""
    rng = np.random.default_rng(3)
    layers = random_mlp(rng, [3, 6, 5, 2])
    net = cv.load_onnx(mlp_onnx(layers, input_shape=(1, 3)))
    lower, upper = -np.ones(3), np.ones(3)
    C = np.array([[1.0, -1.0]])
    _, mixed = _engines(net)
    real = mixed.engine32.compute

    def corrupt(*a, **k):
        res = real(*a, **k)
        res.lb = res.lb + 1e6  # a float32 bound far above the truth must be ignored
        if res.state is not None:
            res.state.alphas = {r: torch.rand_like(v) for r, v in res.state.alphas.items()}
        return res

    monkeypatch.setattr(mixed.engine32, "compute", corrupt)
    got = mixed.compute(
        torch.as_tensor(lower)[None], torch.as_tensor(upper)[None], torch.as_tensor(C)
    )
    assert float(got.lb[0, 0]) <= exact_min(layers, lower, upper, [(C, np.zeros(1))])


@pytest.mark.parametrize("intermediate_crown", [False, True])
def test_reused_parent_boxes_give_the_bounds_of_a_full_recomputation(intermediate_crown):
    """Refinement(refine_after=j) skips the interval pass on the parent's boxes up to node j:
    a child split at node j must get exactly the bounds (and boxes) of recomputing every node,
    and the mixed-precision search over those boxes stays below sampled values."""
    rng = np.random.default_rng(5)
    layers = random_mlp(rng, [4, 8, 8, 8, 3])
    net = cv.load_onnx(mlp_onnx(layers, input_shape=(1, 4)))
    relus = [i for i, n in enumerate(net.nodes) if type(n.op).__name__ == "Relu"]
    tested = 0
    e64, mixed = _engines(net, intermediate_crown=intermediate_crown)
    lo = torch.full((1, 4), -1.0, dtype=torch.float64)
    hi = torch.full((1, 4), 1.0, dtype=torch.float64)
    C = torch.tensor([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]], dtype=torch.float64)
    parent = e64.compute(lo, hi, C, method="crown")
    for r in relus[1:]:
        j = net.nodes[r].inputs[0]
        plo, phi = parent.pre[j]
        unstable = ((plo < 0) & (phi > 0)).nonzero()
        if unstable.numel() == 0:
            continue
        k = int(unstable[0, 1])
        for sign in (1, -1):
            s = torch.zeros(1, net.nodes[r].size, dtype=torch.int8)
            s[0, k] = sign
            splits = Splits({r: s})
            full = e64.compute(lo, hi, C, method="crown", splits=splits, pre=parent.pre)
            reused = e64.compute(
                lo,
                hi,
                C,
                method="crown",
                splits=splits,
                pre=parent.pre,
                refine=Refinement(refine_after=j),
            )
            tested += 1
            assert torch.equal(full.lb, reused.lb)
            for n in full.pre:
                assert torch.equal(full.pre[n][0], reused.pre[n][0])
                assert torch.equal(full.pre[n][1], reused.pre[n][1])
            got = mixed.compute(
                lo, hi, C, splits=splits, pre=parent.pre, refine=Refinement(refine_after=j)
            )
            x = torch.as_tensor(rng.uniform(-1, 1, (4000, 4)))
            vals = net.forward_all(x)
            ok = vals[j][:, k] >= 0 if sign > 0 else vals[j][:, k] <= 0
            if bool(ok.any()):
                assert torch.all(got.lb[0] <= (vals[-1][ok] @ C.T).min(0).values + 1e-9)
    assert tested >= 2  # some later layer had an unstable neuron to split


@pytest.mark.parametrize("seed", range(3))
def test_root_pre_in_float32_contains_samples_and_matches_float64(seed):
    """Root intermediate bounds (bab/root_pre.py) searched in float32 and bounded in float64:
    never looser than the CROWN boxes given, below/above every sampled pre-activation, and
    as tight as the float64 search up to float32 search noise."""
    rng = np.random.default_rng(seed)
    layers = random_mlp(rng, [4, 12, 12, 10, 2])
    net = cv.load_onnx(mlp_onnx(layers, input_shape=(1, 4)))
    lo = torch.full((1, 4), -1.0, dtype=torch.float64)
    hi = torch.full((1, 4), 1.0, dtype=torch.float64)
    res = BoundEngine(net).compute(lo, hi, torch.eye(2, dtype=torch.float64), method="crown")
    crown = {j: (a[0], b[0]) for j, (a, b) in res.pre.items()}
    stop = time.monotonic() + 60
    got = {
        f32: optimise_root_pre(net, lo, hi, crown, BabConfig(float32_search=f32), stop)
        for f32 in (False, True)
    }
    vals = net.forward_all(torch.as_tensor(rng.uniform(-1, 1, (5000, 4))))
    tighter = 0
    for j, (c_lo, c_hi) in crown.items():
        a_lo, a_hi = got[True][j]
        assert a_lo.dtype == torch.float64
        assert torch.all(a_lo >= c_lo) and torch.all(a_hi <= c_hi)
        v = vals[j]
        assert torch.all(v >= a_lo - 1e-9) and torch.all(v <= a_hi + 1e-9)
        r_lo, r_hi = got[False][j]
        assert torch.allclose(a_lo, r_lo, atol=1e-4) and torch.allclose(a_hi, r_hi, atol=1e-4)
        tighter += int((a_lo > c_lo + 1e-6).sum() + (a_hi < c_hi - 1e-6).sum())
    assert tighter > 0  # the search did something, so the comparison means something


@pytest.mark.parametrize("seed", range(3))
def test_warm_started_search_skips_the_crown_walk_and_stays_sound(seed, monkeypatch):
    """With a warm state the float32 search starts from it, without a CROWN walk first: the
    bound is still below the exact minimum, at least the float64 bound at the warm state itself,
    and only the search's walks run (alpha_iters + 1 of them, none without parameters)."""
    rng = np.random.default_rng(40 + seed)
    layers = random_mlp(rng, [3, 6, 5, 2])
    net = cv.load_onnx(mlp_onnx(layers, input_shape=(1, 3)))
    lower, upper = -np.ones(3) * 0.9, np.ones(3) * 0.9
    lo, hi = torch.as_tensor(lower)[None], torch.as_tensor(upper)[None]
    C = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    e64, mixed = _engines(net)
    warm = e64.compute(lo, hi, C, method="alpha-crown").state
    assert warm is not None and warm.alphas
    at_warm = e64.evaluate(lo, hi, C, None, warm)
    walks: list[bool] = []
    real = mixed.engine32.walk

    def count(j, cmat, cvec, relax, alphas=None, beta_terms=None, **kw):
        walks.append(alphas is not None)
        return real(j, cmat, cvec, relax, alphas, beta_terms, **kw)

    monkeypatch.setattr(mixed.engine32, "walk", count)
    got = mixed.compute(lo, hi, C, warm=warm)
    assert walks and all(walks) and len(walks) == mixed.engine32.config.alpha_iters + 1
    assert float(got.lb[0, 0]) >= float(at_warm[0, 0]) - 1e-9
    assert float(got.lb[0, 0]) <= exact_min(layers, lower, upper, [(C.numpy(), np.zeros(1))])
    assert got.x_lb is not None and bool(
        ((got.x_lb >= lo - 1e-12) & (got.x_lb <= hi + 1e-12)).all()
    )
    walks.clear()
    mixed.compute(lo, hi, C)  # without a warm state the CROWN slopes start the search
    assert not walks[0] and len(walks) == mixed.engine32.config.alpha_iters + 2

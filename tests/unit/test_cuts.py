"""Cutting planes in bound propagation (bounds/cuts.py, ReluRelax.z_backward).

The z-aware ReLU line must lie below lam * relu(x) + q * z at every point of the neuron (z = 1
for x > 0, 0 for x < 0, either at 0), including the edge cases l = 0, u = 0 and stable
neurons; a bound with valid cuts (on node values and on indicators) must stay below the exact
minimum while it tightens, in float64 and in the mixed-precision search, and an invalid cut
must show (the tests can fail).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import completeverify as cv
from completeverify.bounds import BatchCuts, BoundConfig, BoundEngine, CutSet
from completeverify.bounds.cuts import CUT_KEY
from completeverify.bounds.mixed import MixedPrecision
from completeverify.bounds.relax import ReluRelax
from completeverify.errors import ModelError

from nets import exact_min, mlp_onnx, random_mlp


def _boxes(gen: torch.Generator, b: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (lo, hi) (b, n) with every kind of neuron: unstable, stable either way, l = 0,
    u = 0 and l = u = 0."""
    lo = torch.randn(b, n, generator=gen, dtype=torch.float64) * 2
    hi = lo + torch.rand(b, n, generator=gen, dtype=torch.float64) * 3
    lo[:, 0], hi[:, 0] = 0.0, 1.5  # l = 0
    lo[:, 1], hi[:, 1] = -1.5, 0.0  # u = 0
    lo[:, 2], hi[:, 2] = 0.0, 0.0  # a single point, both indicators possible
    lo[:, 3], hi[:, 3] = 0.5, 2.0  # active
    lo[:, 4], hi[:, 4] = -2.0, -0.5  # inactive
    return lo, hi


def test_z_aware_relu_line_is_below_every_point_of_the_neuron():
    gen = torch.Generator().manual_seed(0)
    b, m, n = 3, 5, 40
    lo, hi = _boxes(gen, b, n)
    rx = ReluRelax(lo, hi)
    lam = torch.randn(b, m, n, generator=gen, dtype=torch.float64)
    q = torch.randn(b, m, n, generator=gen, dtype=torch.float64)
    alpha = torch.rand(b, m, n, generator=gen, dtype=torch.float64)
    slope, icpt = rx.z_backward(lam, q, alpha)
    x = lo.unsqueeze(1) + (hi - lo).unsqueeze(1) * torch.rand(b, 400, n, generator=gen).double()
    ends = torch.stack([lo, hi, torch.zeros_like(lo).clamp(lo, hi)], 1)
    x = torch.cat([x, ends], 1)  # (b, S, n)
    y = x.clamp(min=0)
    for z_at_zero in (0.0, 1.0):
        z = torch.where(x > 0, 1.0, torch.where(x < 0, 0.0, z_at_zero)).double()
        # only at x == 0 may z take the other value
        value = torch.einsum("bmn,bsn->bmsn", lam, y) + torch.einsum("bmn,bsn->bmsn", q, z)
        line = torch.einsum("bmn,bsn->bmsn", slope, x)
        # per neuron: the line's share of the intercept is the neuron's own intercept
        per_neuron = line + _intercepts(rx, lam, q, alpha).unsqueeze(2)
        assert float((per_neuron - value).max()) <= 1e-12
    assert torch.allclose(_intercepts(rx, lam, q, alpha).sum(2), icpt)


def _intercepts(rx: ReluRelax, lam, q, alpha) -> torch.Tensor:
    """Each neuron's intercept (B, M, n), from z_backward on one neuron at a time."""
    out = torch.zeros_like(lam)
    for j in range(lam.shape[2]):
        keep = torch.zeros_like(lam)
        keep[..., j] = 1.0
        out[..., j] = rx.z_backward(lam * keep, q * keep, alpha)[1]
    return out


def test_z_aware_line_without_indicator_terms_is_the_usual_relaxation():
    gen = torch.Generator().manual_seed(1)
    lo, hi = _boxes(gen, 2, 30)
    lo[:, 2], hi[:, 2] = -1.0, 1.0  # (a point box is not a case of the usual relaxation)
    rx = ReluRelax(lo, hi)
    lam = torch.randn(2, 4, 30, generator=gen, dtype=torch.float64)
    alpha = torch.rand(2, 4, 30, generator=gen, dtype=torch.float64)
    a_in, bias = rx.backward(lam, alpha)
    z_in, z_bias = rx.backward(lam, alpha, None, torch.zeros_like(lam))
    assert torch.allclose(a_in, z_in) and torch.allclose(bias, z_bias)


def _net(seed: int, sizes=(3, 6, 5, 2)):
    rng = np.random.default_rng(seed)
    layers = random_mlp(rng, list(sizes))
    return layers, cv.load_onnx(mlp_onnx(layers, input_shape=(1, sizes[0])))


LOWER, UPPER = -np.ones(3), np.ones(3)
C = np.array([[1.0, -1.0]])


def _box():
    return torch.as_tensor(LOWER)[None], torch.as_tensor(UPPER)[None]


def _bound(net, cuts: CutSet | None, iters: int = 80, mixed: bool = False) -> float:
    """alpha-CROWN's bound of C y over the box, with the cuts (float64, or the mixed search)."""
    cfg = BoundConfig(alpha_iters=iters, cut_lr=0.05)
    lo, hi = _box()
    spec = torch.as_tensor(C)
    batch = None if cuts is None else BatchCuts(cuts)
    if mixed:
        both = MixedPrecision(BoundEngine(net, cfg), BoundEngine(net, cfg, dtype=torch.float32))
        return float(both.compute(lo, hi, spec, cuts=batch).lb[0, 0])
    res = BoundEngine(net, cfg).compute(lo, hi, spec, method="alpha-crown", cuts=batch)
    return float(res.lb[0, 0])


def _floor_cut(net, floor: float) -> CutSet:
    """The cut C y >= floor, i.e. -C y <= -floor (valid when floor <= min C y)."""
    last = len(net.nodes) - 1
    return CutSet({last: -torch.as_tensor(C)}, {}, torch.tensor([-floor], dtype=torch.float64))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("mixed", [False, True])
def test_a_valid_cut_on_the_output_lifts_the_bound_towards_the_minimum(seed, mixed):
    layers, net = _net(seed)
    t_min = exact_min(layers, LOWER, UPPER, [(C, np.zeros(1))])
    plain = _bound(net, None, mixed=mixed)
    valid = _bound(net, _floor_cut(net, t_min), mixed=mixed)
    assert valid <= t_min + 1e-9
    assert valid >= plain - 1e-9 and valid >= t_min - 0.5 * (t_min - plain) - 1e-6
    # an invalid cut (a floor above the minimum) lifts the bound past it: the test can fail
    assert _bound(net, _floor_cut(net, t_min + 1.0), mixed=mixed) > t_min + 0.1


def _big_m_cuts(net) -> CutSet:
    """The big-M rows of every unstable neuron of the first ReLU layer, on its CROWN box:
    y - u z <= 0 and y - x - l z <= -l (valid at every network point)."""
    relu = next(i for i, n in enumerate(net.nodes) if type(n.op).__name__ == "Relu")
    x_node = net.nodes[relu].inputs[0]
    res = BoundEngine(net).compute(*_box(), torch.as_tensor(C), method="crown")
    lo, hi = res.pre[x_node][0][0], res.pre[x_node][1][0]
    unstable = ((lo < 0) & (hi > 0)).nonzero().flatten().tolist()
    size = net.nodes[relu].size
    k = 2 * len(unstable)
    gy, gx, gz = (torch.zeros(k, size, dtype=torch.float64) for _ in range(3))
    rhs = torch.zeros(k, dtype=torch.float64)
    for c, j in enumerate(unstable):
        gy[2 * c, j], gz[2 * c, j] = 1.0, -float(hi[j])
        gy[2 * c + 1, j], gx[2 * c + 1, j], gz[2 * c + 1, j] = 1.0, -1.0, -float(lo[j])
        rhs[2 * c + 1] = -float(lo[j])
    return CutSet({relu: gy, x_node: gx}, {relu: gz}, rhs)


@pytest.mark.parametrize("seed", range(4))
def test_indicator_cuts_through_the_backward_walk_keep_the_bound_sound(seed):
    layers, net = _net(seed)
    cuts = _big_m_cuts(net)
    assert cuts.size > 0
    t_min = exact_min(layers, LOWER, UPPER, [(C, np.zeros(1))])
    assert _bound(net, cuts) <= t_min + 1e-9
    # the same rows with the indicator's sign flipped are not valid: the walk reads z terms
    flipped = CutSet(cuts.values, {r: -g for r, g in cuts.z.items()}, cuts.rhs)
    lifted = _bound(net, flipped, iters=150)
    assert lifted != pytest.approx(_bound(net, cuts), abs=1e-9)


def test_masked_rows_ignore_the_cuts():
    cuts = CutSet(
        {0: torch.ones(2, 3, dtype=torch.float64)}, {}, torch.zeros(2, dtype=torch.float64)
    )
    mask = torch.tensor([[[True, False], [False, False]]])
    mu = torch.ones(1, 2, 2, dtype=torch.float64)
    assert BatchCuts(cuts, mask).multipliers(mu).tolist() == [[[1.0, 0.0], [0.0, 0.0]]]


def test_cuts_that_do_not_fit_the_graph_are_refused_in_one_line():
    _, net = _net(0)
    last = len(net.nodes) - 1
    relu = next(i for i, n in enumerate(net.nodes) if type(n.op).__name__ == "Relu")
    k1 = torch.zeros(1, dtype=torch.float64)
    bad = [
        (CutSet({last: torch.ones(1, 7, dtype=torch.float64)}, {}, k1), "must be"),
        (CutSet({99: torch.ones(1, 2, dtype=torch.float64)}, {}, k1), "the graph has"),
        (CutSet({}, {last: torch.ones(1, 2, dtype=torch.float64)}, k1), "Relu"),
        (CutSet({}, {relu: torch.ones(2, 6, dtype=torch.float64)}, k1), "must be"),
    ]
    for cuts, match in bad:
        with pytest.raises(ModelError, match=match) as err:
            _bound(net, cuts, iters=1)
        assert "\n" not in str(err.value)
    good = _floor_cut(net, -1.0)
    with pytest.raises(ModelError, match="mask"):
        BoundEngine(net).compute(
            *_box(),
            torch.as_tensor(C),
            method="alpha-crown",
            cuts=BatchCuts(good, torch.ones(1, 2, 1, dtype=torch.bool)),
        )


def test_cuts_are_refused_with_upper_bound_rows():
    _, net = _net(0)
    with pytest.raises(ModelError, match="need_ub"):
        BoundEngine(net).compute(
            *_box(),
            torch.as_tensor(C),
            method="alpha-crown",
            need_ub=True,
            cuts=BatchCuts(_floor_cut(net, 0.0)),
        )


def test_the_warm_state_carries_the_cut_multipliers_and_evaluate_reads_them():
    layers, net = _net(1)
    t_min = exact_min(layers, LOWER, UPPER, [(C, np.zeros(1))])
    cuts = BatchCuts(_floor_cut(net, t_min))
    eng = BoundEngine(net, BoundConfig(alpha_iters=80, cut_lr=0.05))
    res = eng.compute(*_box(), torch.as_tensor(C), method="alpha-crown", cuts=cuts)
    assert res.state is not None and CUT_KEY in res.state.betas
    again = eng.evaluate(*_box(), torch.as_tensor(C), None, res.state, cuts=cuts)
    without = eng.evaluate(*_box(), torch.as_tensor(C), None, res.state)
    assert float(again[0, 0]) == pytest.approx(float(res.lb[0, 0]), abs=1e-9)
    assert float(again[0, 0]) <= t_min + 1e-9 and float(without[0, 0]) < float(again[0, 0])

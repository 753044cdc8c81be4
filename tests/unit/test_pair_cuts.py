"""Two-neuron ReLU cuts (bounds/pair_cuts.py) and the root bounds they tighten (bab/cut_stage.py).

Every cut must hold at every point of the network on the box (sampled points, including
duplicated neurons whose pair set is flat), a bound with the cuts must stay below the exact
minimum while lifting the plain bound, cuts with a lowered right-hand side must be able to
break that (so the checks can fail), intermediate bounds tightened with them must stay outside
each neuron's exact extremes, and searches that use them agree with the oracle.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import completeverify as cv
from completeverify.bab import relu_split as rs
from completeverify.bab.types import BabVerdict
from completeverify.bounds import BatchCuts, BoundConfig, BoundEngine, CutSet
from completeverify.bounds.pair_cuts import (
    _octagon_points,
    _prefix_bounds,
    join,
    node_pair_cuts,
    select,
    tighten_with_pair_cuts,
)
from completeverify.config import BabConfig, VerifyConfig
from completeverify.errors import InputError

from nets import exact_min, forward_np, mlp_onnx, random_mlp, search_context

C = np.array([[1.0, -1.0]])


def _instance(seed: int, sizes=(3, 6, 6, 2), duplicate: bool = False):
    rng = np.random.default_rng(900 + seed)
    layers = random_mlp(rng, list(sizes))
    if duplicate:  # two identical neurons in each hidden layer: a flat pair set
        layers = [
            (np.vstack([w[:-1], w[:1]]), np.concatenate([b[:-1], b[:1]]))
            if i < len(layers) - 1
            else (w, b)
            for i, (w, b) in enumerate(layers)
        ]
    lower = rng.uniform(-2.0, 0.0, size=sizes[0])
    upper = lower + rng.uniform(1.0, 2.0, size=sizes[0])
    net = cv.load_onnx(mlp_onnx(layers, input_shape=(1, sizes[0])))
    return layers, net, lower, upper


def _root(net, lower, upper):
    """(lo, hi, intermediate bounds node -> ((size,), (size,))) of alpha-CROWN on the box."""
    lo, hi = torch.as_tensor(lower)[None], torch.as_tensor(upper)[None]
    res = BoundEngine(net).compute(lo, hi, torch.as_tensor(C), method="alpha-crown")
    return lo, hi, {j: (a[0], b[0]) for j, (a, b) in res.pre.items()}


def _cuts(net, lo, hi, pre, per_neuron: int, seed: int) -> CutSet | None:
    """The pair cuts of every ReLU layer on the bounds pre (partners chosen on samples)."""
    gen = np.random.default_rng(seed)
    xs = lo + torch.as_tensor(gen.random((1000, lo.shape[1]))) * (hi - lo)
    with torch.no_grad():
        values = net.forward_all(xs)
    cuts = None
    for j in sorted(pre):
        cuts = join(cuts, node_pair_cuts(net, lo, hi, pre, j, values[j], per_neuron))
    return cuts


def _slack(net, cuts: CutSet, xs: np.ndarray) -> torch.Tensor:
    """(samples, K) cut left-hand side minus right-hand side at the points xs."""
    with torch.no_grad():
        values = net.forward_all(torch.as_tensor(xs))
    n = xs.shape[0]
    return sum(values[k].reshape(n, -1) @ g.T for k, g in cuts.values.items()) - cuts.rhs


def _samples(lower, upper, seed: int, n: int = 20000) -> np.ndarray:
    gen = np.random.default_rng(seed)
    xs = lower + gen.random((n, len(lower))) * (upper - lower)
    corners = np.array(
        [[lower[i] if (c >> i) & 1 else upper[i] for i in range(len(lower))] for c in range(8)]
    )
    return np.vstack([xs, corners])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("duplicate", [False, True])
def test_every_pair_cut_holds_at_sampled_points(seed, duplicate):
    _, net, lower, upper = _instance(seed, duplicate=duplicate)
    lo, hi, pre = _root(net, lower, upper)
    cuts = _cuts(net, lo, hi, pre, 3, seed)
    assert cuts is not None and cuts.size > 0
    assert not cuts.z  # value cuts only
    slack = _slack(net, cuts, _samples(lower, upper, seed))
    assert float(slack.max()) <= 1e-9
    # the cuts are facets of the pair hulls: some come close to a sampled point
    assert float(slack.max(0).values.max()) > -0.5


def _bound(net, lo, hi, pre, cuts: CutSet | None) -> float:
    eng = BoundEngine(net, BoundConfig(alpha_iters=60, intermediate_crown=False, cut_lr=0.05))
    res = eng.compute(
        lo,
        hi,
        torch.as_tensor(C),
        method="alpha-crown",
        pre={j: (a[None], b[None]) for j, (a, b) in pre.items()},
        cuts=None if cuts is None else BatchCuts(cuts),
    )
    return float(res.lb[0, 0])


def test_pair_cuts_lift_the_bound_and_never_past_the_exact_minimum():
    lifted = broken = 0
    for seed in range(6):
        layers, net, lower, upper = _instance(seed)
        lo, hi, pre = _root(net, lower, upper)
        t_min = exact_min(layers, lower, upper, [(C, np.zeros(1))])
        cuts = _cuts(net, lo, hi, pre, 5, seed)
        assert cuts is not None
        plain = _bound(net, lo, hi, pre, None)
        with_cuts = _bound(net, lo, hi, pre, cuts)
        assert plain - 1e-9 <= with_cuts <= t_min + 1e-9, (seed, plain, with_cuts, t_min)
        lifted += with_cuts > plain + 1e-3
        # the same cuts with their right-hand sides lowered are invalid: the bound can go past
        # the minimum, so the check above is not vacuous
        low = CutSet(cuts.values, cuts.z, cuts.rhs - 0.5 * (1.0 + cuts.rhs.abs()))
        broken += _bound(net, lo, hi, pre, low) > t_min + 1e-6
    assert lifted >= 2 and broken >= 1, (lifted, broken)


def test_the_pair_set_points_cover_each_orthant():
    """Box [-1, 2] x [-1, 1] with loose sum / difference sides: the points include the box's
    corners mapped through the ReLUs and the orthant edges."""
    lim = np.array(
        [
            [
                [1, 0, 2.0],
                [-1, 0, 1.0],
                [0, 1, 1.0],
                [0, -1, 1.0],
                [1, 1, 9.0],
                [-1, -1, 9.0],
                [1, -1, 9.0],
                [-1, 1, 9.0],
            ]
        ],
        dtype=np.float64,
    )
    pts = {tuple(np.round(p, 9)) for p in _octagon_points(lim)[0]}
    for want in [(2, 1, 2, 1), (-1, -1, 0, 0), (2, -1, 2, 0), (-1, 1, 0, 1), (0, 0, 0, 0)]:
        assert tuple(float(v) for v in want) in pts, want


def test_select_keeps_the_flagged_cuts():
    cuts = CutSet({1: torch.eye(3, dtype=torch.float64)}, {}, torch.tensor([1.0, 2.0, 3.0]))
    kept = select(cuts, torch.tensor([True, False, True]))
    assert kept is not None and kept.size == 2
    assert torch.equal(kept.rhs, torch.tensor([1.0, 3.0]))
    assert torch.equal(kept.values[1], torch.eye(3, dtype=torch.float64)[[0, 2]])
    assert select(cuts, torch.zeros(3, dtype=torch.bool)) is None


def test_negative_pair_cut_settings_are_input_errors():
    with pytest.raises(InputError, match="pair_cuts"):
        VerifyConfig(bab=BabConfig(pair_cuts=-1))


@pytest.mark.parametrize("seed", [4, 5])  # the instances whose root alone does not decide
@pytest.mark.parametrize("gap", [-0.02, 0.02])
def test_search_with_pair_cuts_agrees_with_oracle(seed, gap):
    """The search pauses at once (prefix_after_s 0), tightens its root with pair cuts, refines
    it and searches on; the verdict is the oracle's, and the cut stage did run."""
    rng = np.random.default_rng(500 + seed)
    sizes = [3, 4, 5, 4, 2]
    layers = random_mlp(rng, sizes)
    lower = rng.uniform(-2.0, 0.0, size=3)
    upper = lower + rng.uniform(1.0, 2.0, size=3)
    m = exact_min(layers, lower, upper, [(C, np.zeros(1))])
    d = np.array([m + gap])
    net = cv.load_onnx(mlp_onnx(layers, input_shape=(1, 3)))
    bab = BabConfig(prefix_after_s=0.0, race_milp=False, pair_cuts=3)
    run = search_context(net, lower, upper, [(C, d)], bab)
    out = rs.relu_split(run, 0, 0, None, run.deadline)
    assert "pair_cuts_unstable" in run.stats, out.note
    if gap > 0:
        assert out.verdict == BabVerdict.FALSIFIED, out.note
        x = np.asarray(out.counterexample.input, dtype=np.float64).reshape(-1)
        assert float((C @ forward_np(layers, x))[0]) <= d[0] + 1e-5
    else:
        assert out.verdict == BabVerdict.PROVEN, out.note


def _check_tightened(seed: int, float32: bool = True) -> int:
    """Tighten an instance's root bounds with pair cuts and check every bound that moved
    against the exact extreme of its neuron; the number of bounds that moved."""
    layers, net, lower, upper = _instance(seed, sizes=(3, 5, 5, 4, 2))
    lo, hi, pre = _root(net, lower, upper)
    new, cuts = tighten_with_pair_cuts(
        net, lo, hi, pre, per_neuron=4, keep=0.0, seed=seed, float32=float32
    )
    moved = 0
    for j, (old_lo, old_hi) in pre.items():
        new_lo, new_hi = new[j]
        assert torch.all(new_lo >= old_lo) and torch.all(new_hi <= old_hi)
        layer = (j + 1) // 2  # node 2L-1 is the pre-activation of Linear layer L (1-based)
        w, b = layers[layer - 1]
        for k in range(new_lo.numel()):
            for sign, claim, old in (
                (1.0, float(new_lo[k]), float(old_lo[k])),
                (-1.0, -float(new_hi[k]), -float(old_hi[k])),
            ):
                if claim <= old:
                    continue
                moved += 1
                prefix = [*layers[: layer - 1], (w[k : k + 1], b[k : k + 1])]
                lowest = exact_min(prefix, lower, upper, [(np.array([[sign]]), np.zeros(1))])
                assert lowest >= claim - 1e-9, (j, k, sign, lowest, claim)
    assert cuts is None or float(_slack(net, cuts, _samples(lower, upper, seed)).max()) <= 1e-9
    return moved


def test_tightened_bounds_hold_against_each_neurons_exact_extremes():
    # and some bound did move, or the checks would be vacuous
    assert sum(_check_tightened(seed) for seed in range(3)) > 0
    # the same with the bounds searched in float64 throughout
    assert sum(_check_tightened(seed, float32=False) for seed in range(3)) > 0


def test_the_last_relu_layer_gets_no_cuts_of_its_own():
    """Its cuts could only serve the output bound, which tightening does not compute; the
    earlier layers do get cuts (else the check says nothing)."""
    _, net, lower, upper = _instance(2, sizes=(3, 5, 5, 4, 2))
    lo, hi, pre = _root(net, lower, upper)
    relu_of = {n.inputs[0]: i for i, n in enumerate(net.nodes) if type(n.op).__name__ == "Relu"}
    first, last = min(relu_of), max(relu_of)
    new, cuts = tighten_with_pair_cuts(net, lo, hi, pre, per_neuron=4, keep=0.0, seed=2)
    # the last layer still has unstable pairs that would give cuts
    assert int(((new[last][0] < 0) & (new[last][1] > 0)).sum()) >= 2
    assert cuts is not None
    has_terms = {n for n, g in cuts.values.items() if bool((g != 0).any())}
    assert first in has_terms
    assert not has_terms & {last, relu_of[last]}, has_terms


def test_join_stacks_cut_sets_over_their_nodes():
    a = CutSet({1: torch.ones(2, 3, dtype=torch.float64)}, {}, torch.tensor([1.0, 2.0]))
    b = CutSet({2: torch.ones(1, 4, dtype=torch.float64)}, {}, torch.tensor([3.0]))
    both = join(a, b)
    assert both is not None and both.size == 3
    assert both.values[1].shape == (3, 3) and torch.all(both.values[1][2] == 0)
    assert both.values[2].shape == (3, 4) and torch.all(both.values[2][:2] == 0)
    assert join(None, b) is b and join(a, None) is a and join(None, None) is None


def test_cuts_with_terms_on_the_bounded_node_or_later_are_not_used():
    """A cut is only a cut with all its terms: bounding node j may use only the cuts that lie
    wholly on earlier nodes.  The fake cut below, with its term on node 3 dropped, would be
    x_1[0] <= l - 1 (nothing satisfies it) and would lift every bound of node 3."""
    _, net, lower, upper = _instance(0)
    lo, hi, pre = _root(net, lower, upper)
    size = pre[1][0].numel()
    g1 = torch.zeros(1, size, dtype=torch.float64)
    g1[0, 0] = 1.0
    g3 = torch.zeros(1, pre[3][0].numel(), dtype=torch.float64)
    g3[0, 0] = 1e-3
    fake = CutSet({1: g1, 3: g3}, {}, pre[1][0][:1] - 1.0)
    rows = torch.eye(pre[3][0].numel(), dtype=torch.float64)
    plain, _ = _prefix_bounds(net, lo, hi, pre, 3, rows, None, 20)
    with_fake, mu = _prefix_bounds(net, lo, hi, pre, 3, rows, fake, 20)
    assert torch.equal(plain, with_fake)
    assert mu is None  # no cut could serve
    # and a cut on node 1 alone (valid: x_1[0] <= its upper bound) is used
    ok = CutSet({1: g1}, {}, pre[1][1][:1].clone())
    _, mu = _prefix_bounds(net, lo, hi, pre, 3, rows, join(fake, ok), 20)
    assert mu is not None and mu.shape == (2,) and mu[0] == float("inf") and mu[1] < float("inf")

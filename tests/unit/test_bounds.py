"""Tests of the bound engine against mathematical oracles (sampling, exact linear bounds, brute
force)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from completeverify.bounds import (
    AlphaState,
    BoundConfig,
    BoundEngine,
    Splits,
    compute_bounds,
    select_pre,
)
from completeverify.bounds.backward import concretize
from completeverify.bounds.relax import smooth_relax
from completeverify.graph import Conv, Relu
from completeverify.onnx_import import load_onnx

METHODS = ["ibp", "crown", "alpha-crown"]
FAST = BoundConfig(alpha_iters=8)


def _export(model: nn.Module, shape: tuple[int, ...], fold: bool = True):
    """Export a torch module to ONNX (legacy exporter) and load it as a Graph."""
    model = model.eval()
    buf = io.BytesIO()
    torch.onnx.export(
        model, (torch.zeros(*shape),), buf, dynamo=False, opset_version=13, do_constant_folding=fold
    )
    return load_onnx(buf.getvalue())


class MLP(nn.Module):
    """Gemm / ReLU stack."""

    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x):
        for k, layer in enumerate(self.layers):
            x = layer(x)
            if k < len(self.layers) - 1:
                x = torch.relu(x)
        return x


class ConvNet(nn.Module):
    """Conv (stride 2, padding), BatchNorm, Pad, grouped Conv, MaxPool, AvgPool, Flatten, Tanh,
    Sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pad = nn.ZeroPad2d((0, 1, 1, 0))
        self.c2 = nn.Conv2d(4, 4, 3, groups=2)
        self.c3 = nn.Conv2d(4, 4, 2, stride=2, padding=(1, 0), dilation=1)
        self.mp = nn.MaxPool2d(2, stride=1)
        self.ap = nn.AvgPool2d(2, stride=1)
        self.f1 = nn.Linear(4 * 2 * 2, 8)
        self.f2 = nn.Linear(8, 6)
        self.f3 = nn.Linear(6, 3)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.weight.uniform_(0.5, 1.5)

    def forward(self, x):
        x = torch.relu(self.bn(self.c1(x)))  # (4, 5, 5)
        x = torch.relu(self.c2(self.pad(x)))  # (4, 4, 4)
        x = self.mp(x)  # (4, 3, 3)
        x = self.ap(x)  # (4, 2, 2)
        x = torch.flatten(x, 1)
        x = torch.tanh(self.f1(x))
        x = torch.sigmoid(self.f2(x))
        return self.f3(x)


class ResNet(nn.Module):
    """Add residual, Concat, Transpose, Reshape."""

    def __init__(self) -> None:
        super().__init__()
        self.f1, self.f2, self.f3, self.f4 = (
            nn.Linear(6, 8),
            nn.Linear(8, 6),
            nn.Linear(6, 4),
            nn.Linear(10, 3),
        )
        self.s = nn.Parameter(torch.linspace(-1.5, 2.0, 6))

    def forward(self, x):
        r = torch.relu(self.f2(torch.relu(self.f1(x))) + x) * self.s
        b = torch.relu(self.f3(x))
        c = torch.cat([r, b], dim=1).reshape(1, 2, 5).transpose(1, 2).reshape(1, 10)
        return self.f4(c)


class StridedConvNet(nn.Module):
    """Strided conv whose output padding is needed in the backward step, then MaxPool with
    padding."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 3, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(3, 4, 2, stride=2, padding=(1, 0), dilation=2)
        self.mp = nn.MaxPool2d(3, stride=2, padding=1)
        self.f = nn.Linear(4 * 2 * 2, 2)

    def forward(self, x):
        x = torch.relu(self.c1(x))  # (3, 4, 4)
        x = torch.relu(self.c2(x))  # (4, 2, 1)... flattened below
        x = self.mp(x)
        return self.f(torch.flatten(x, 1))


def _nets():
    """(name, graph) of the test networks, built once per session."""
    torch.manual_seed(0)
    nets = [
        ("mlp", _export(MLP([3, 8, 8, 4]), (1, 3))),
        ("conv", _export(ConvNet(), (1, 2, 10, 10), fold=False)),
        ("res", _export(ResNet(), (1, 6))),
    ]
    sc = StridedConvNet()
    dummy = sc.mp(torch.relu(sc.c2(torch.relu(sc.c1(torch.zeros(1, 1, 7, 7))))))
    sc.f = nn.Linear(dummy.numel(), 2)
    nets.append(("strided", _export(sc, (1, 1, 7, 7))))
    return nets


NETS = _nets()


def _box(graph, batch: int, seed: int, eps: float = 0.3):
    """A batch of random boxes (B, n_in) float64."""
    g = torch.Generator().manual_seed(seed)
    c = torch.rand(batch, graph.n_inputs, generator=g, dtype=torch.float64) * 2 - 1
    r = torch.rand(batch, graph.n_inputs, generator=g, dtype=torch.float64) * eps
    return c - r, c + r


def _samples(graph, lo, hi, n: int, seed: int):
    """Random points and corners of each box: (B, n, n_in)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(lo.shape[0], n, lo.shape[1], generator=g, dtype=torch.float64)
    t[:, : n // 4] = (t[:, : n // 4] > 0.5).double()  # corners
    return torch.minimum(lo.unsqueeze(1) + (hi - lo).unsqueeze(1) * t, hi.unsqueeze(1))


def _outputs(graph, xs):
    """Flat node values for points (B, n, n_in): list of (B, n, size)."""
    b, n, _ = xs.shape
    vals = graph.forward_all(xs.reshape(b * n, *graph.input_shape))
    return [v.reshape(b, n, -1) for v in vals]


def test_graphs_cover_every_op():
    """The test networks exercise the whole closed op set."""
    ops = {type(n.op).__name__ for _, g in NETS for n in g.nodes}
    assert {
        "Linear",
        "Conv",
        "Scale",
        "Gather",
        "Add",
        "Concat",
        "Relu",
        "Sigmoid",
        "Tanh",
        "MaxPool",
    } <= ops
    convs = [n.op for _, g in NETS for n in g.nodes if isinstance(n.op, Conv)]
    assert any(c.groups > 1 for c in convs) and any(c.stride[0] == 2 for c in convs)


@pytest.mark.parametrize("name,graph", NETS, ids=[n for n, _ in NETS])
@pytest.mark.parametrize("method", METHODS)
def test_sampled_outputs_inside_bounds(name, graph, method):
    """Outputs and spec rows of sampled points (incl. corners) never leave [lb, ub]."""
    eng = BoundEngine(graph, FAST)
    lo, hi = _box(graph, 4, seed=1)
    g = torch.Generator().manual_seed(2)
    cmat = torch.randn(4, 3, graph.n_outputs, generator=g, dtype=torch.float64)
    c0 = torch.randn(4, 3, generator=g, dtype=torch.float64)
    res = eng.compute(lo, hi, cmat, c0, method=method, need_ub=True)
    vals = _outputs(graph, _samples(graph, lo, hi, 400, seed=3))
    spec = torch.einsum("bmo,bno->bnm", cmat, vals[-1]) + c0.unsqueeze(1)
    assert bool((spec >= res.lb.unsqueeze(1)).all()) and bool((spec <= res.ub.unsqueeze(1)).all())
    for j, (plo, phi) in res.pre.items():  # intermediate bounds are sound too
        assert bool((vals[j] >= plo.unsqueeze(1)).all()) and bool(
            (vals[j] <= phi.unsqueeze(1)).all()
        )
    ib = eng.ibp(lo, hi)
    for j, (blo, bhi) in ib.items():
        assert bool((vals[j] >= blo.unsqueeze(1)).all()) and bool(
            (vals[j] <= bhi.unsqueeze(1)).all()
        )


@pytest.mark.parametrize("name,graph", NETS, ids=[n for n, _ in NETS])
def test_crown_tighter_than_ibp_and_alpha_tighter_than_crown(name, graph):
    """CROWN >= IBP (final and intermediate) and alpha-CROWN >= CROWN, row by row."""
    eng = BoundEngine(graph, FAST)
    lo, hi = _box(graph, 3, seed=4)
    cmat = torch.eye(graph.n_outputs, dtype=torch.float64)
    r_ibp = eng.compute(lo, hi, cmat, method="ibp", need_ub=True)
    r_crown = eng.compute(lo, hi, cmat, method="crown", need_ub=True)
    r_alpha = eng.compute(lo, hi, cmat, method="alpha-crown", need_ub=True)
    assert bool((r_crown.lb >= r_ibp.lb).all()) and bool((r_crown.ub <= r_ibp.ub).all())
    assert bool((r_alpha.lb >= r_crown.lb).all()) and bool((r_alpha.ub <= r_crown.ub).all())
    for j in r_crown.pre:
        assert bool((r_crown.pre[j][0] >= r_ibp.pre[j][0]).all())
        assert bool((r_crown.pre[j][1] <= r_ibp.pre[j][1]).all())
    if name == "mlp":
        assert bool((r_crown.lb > r_ibp.lb + 1e-6).any())  # strictly tighter somewhere


class LinearConvNet(nn.Module):
    """Purely affine: Conv -> Flatten -> Linear -> Linear (with a non-fusable bottleneck)."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(1, 2, 3, stride=2, padding=1)
        self.f1 = nn.Linear(2 * 3 * 3, 2)
        self.f2 = nn.Linear(2, 20)
        self.f3 = nn.Linear(20, 4)

    def forward(self, x):
        return self.f3(self.f2(self.f1(torch.flatten(self.c(x), 1))))


def _affine_exact(graph, lo, hi, cmat, c0):
    """Exact min over the box of C f(x) + c0 for an affine f (via its Jacobian)."""
    n = graph.n_inputs
    pts = torch.cat([torch.zeros(1, n, dtype=torch.float64), torch.eye(n, dtype=torch.float64)])
    f = graph.forward_all(pts.reshape(n + 1, *graph.input_shape))[-1]
    jac = (f[1:] - f[:1]).T  # (n_out, n)
    g = cmat @ jac  # (B, m, n)
    x = torch.where(g >= 0, lo.unsqueeze(1), hi.unsqueeze(1))
    return (g * x).sum(-1) + cmat @ f[0] + c0


def test_linear_network_bounds_are_exact():
    """On an affine network CROWN / alpha-CROWN are exact to 1e-9 (float margins off); IBP on one
    layer."""
    torch.manual_seed(5)
    graph = _export(LinearConvNet(), (1, 1, 5, 5))
    lo, hi = _box(graph, 3, seed=6)
    g = torch.Generator().manual_seed(7)
    cmat = torch.randn(3, 5, graph.n_outputs, generator=g, dtype=torch.float64)
    c0 = torch.randn(3, 5, generator=g, dtype=torch.float64)
    exact = _affine_exact(graph, lo, hi, cmat, c0)
    exact_cfg = BoundConfig(alpha_iters=3, float_rel=0.0, float_abs=0.0)
    for method in ("crown", "alpha-crown"):
        lb = BoundEngine(graph, exact_cfg).compute(lo, hi, cmat, c0, method=method).lb
        assert torch.allclose(lb, exact, atol=1e-9, rtol=0)
        lb_safe = BoundEngine(graph).compute(lo, hi, cmat, c0, method=method).lb
        assert bool((lb_safe <= exact).all()) and bool((lb_safe >= exact - 1e-6).all())
    one = _export(nn.Linear(4, 3), (1, 4))
    lo, hi = _box(one, 2, seed=8)
    eye = torch.eye(3, dtype=torch.float64).expand(2, 3, 3)
    exact = _affine_exact(one, lo, hi, eye, torch.zeros(2, 3, dtype=torch.float64))
    for method in METHODS:
        lb = BoundEngine(one, exact_cfg).compute(lo, hi, eye, method=method).lb
        assert torch.allclose(lb, exact, atol=1e-9, rtol=0)


def test_spec_with_true_minimum_zero_is_never_proven():
    """A spec whose true minimum is exactly 0 gets lb <= 0 (linear optimum and relu(z) -
    relu(z))."""
    torch.manual_seed(9)
    graph = _export(MLP([3, 5]), (1, 3))
    lo, hi = _box(graph, 4, seed=10)
    cmat = torch.randn(4, 2, 5, dtype=torch.float64)
    exact = _affine_exact(graph, lo, hi, cmat, torch.zeros(4, 2, dtype=torch.float64))
    for method in METHODS:
        lb = BoundEngine(graph, FAST).compute(lo, hi, cmat, -exact, method=method).lb
        assert bool((lb <= 0).all())

    class Cancel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.f = nn.Linear(3, 4)

        def forward(self, x):
            r = torch.relu(self.f(x))
            return r - r

    cancel = _export(Cancel(), (1, 3))
    for method in METHODS:
        res = BoundEngine(cancel, FAST).compute(
            *_box(cancel, 3, seed=11), torch.eye(4), method=method, need_ub=True
        )
        assert bool((res.lb <= 0).all()) and bool((res.ub >= 0).all())


def _tiny():
    """A tiny ReLU MLP for brute force (2 inputs)."""
    torch.manual_seed(12)
    return _export(MLP([2, 6, 6, 2]), (1, 2))


def _random_splits(graph, res, batch: int, seed: int) -> Splits:
    """Split a few unstable neurons of each ReLU at random."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for r, node in enumerate(graph.nodes):
        if isinstance(node.op, Relu):
            lo, hi = res.pre[node.inputs[0]]
            unstable = (lo < 0) & (hi > 0)
            pick = unstable & (torch.rand(lo.shape, generator=g) < 0.5)
            sign = torch.where(torch.rand(lo.shape, generator=g) < 0.5, 1, -1)
            out[r] = torch.where(pick, sign, 0).to(torch.int8)
    return Splits(out)


def _split_min(graph, lo, hi, cmat, splits: Splits, n: int = 20000):
    """Sampled minimum of each spec row over the points satisfying the splits ((B, m); inf if
    none)."""
    xs = _samples(graph, lo, hi, n, seed=13)
    vals = _outputs(graph, xs)
    ok = torch.ones(xs.shape[:2], dtype=torch.bool)
    for r, s in splits.relu.items():
        z = vals[graph.nodes[r].inputs[0]]
        ok &= ((s.unsqueeze(1) > 0) <= (z >= 0)).all(-1) & ((s.unsqueeze(1) < 0) <= (z <= 0)).all(
            -1
        )
    spec = torch.einsum("bmo,bno->bnm", cmat, vals[-1])
    spec = torch.where(ok.unsqueeze(2), spec, torch.full_like(spec, float("inf")))
    return spec.amin(1), ok


def test_beta_crown_sound_on_split_domains():
    """With splits, CROWN / alpha / beta-CROWN and any beta >= 0 stay below the brute-force
    minimum."""
    graph = _tiny()
    eng = BoundEngine(graph, BoundConfig(alpha_iters=15, beta_lr=0.2))
    lo, hi = _box(graph, 6, seed=14, eps=0.8)
    cmat = torch.tensor([[1.0, -1.0], [-1.0, 2.0]], dtype=torch.float64).expand(6, 2, 2)
    base = eng.compute(lo, hi, cmat, method="crown")
    splits = _random_splits(graph, base, 6, seed=15)
    true_min, ok = _split_min(graph, lo, hi, cmat, splits)
    assert bool(ok.any(1).all())
    for method in METHODS:
        res = eng.compute(lo, hi, cmat, method=method, splits=splits)
        assert bool((res.lb <= true_min).all()), method
        for r, s in splits.relu.items():  # split neurons are clamped in the intermediate bounds
            plo, phi = res.pre[graph.nodes[r].inputs[0]]
            assert bool((plo[s > 0] >= 0).all()) and bool((phi[s < 0] <= 0).all())
    res = eng.compute(lo, hi, cmat, method="alpha-crown", splits=splits)
    assert isinstance(res.state, AlphaState)
    g = torch.Generator().manual_seed(16)
    for _ in range(5):  # random alphas in [0, 1], random betas >= 0
        state = AlphaState(
            {
                r: torch.rand(a.shape, generator=g, dtype=torch.float64)
                for r, a in res.state.alphas.items()
            },
            {
                r: torch.rand(b.shape, generator=g, dtype=torch.float64) * 3
                for r, b in res.state.betas.items()
            },
        )
        lb = eng.evaluate(lo, hi, cmat, None, state, splits)
        assert bool((lb <= true_min).all())


def test_beta_zero_equals_alpha_crown_with_fixed_splits():
    """beta = 0 gives exactly the alpha-CROWN bound of the domain with the split bounds fixed."""
    graph = _tiny()
    eng = BoundEngine(graph)
    lo, hi = _box(graph, 5, seed=17, eps=0.8)
    cmat = torch.tensor([[1.0, -1.0]], dtype=torch.float64).expand(5, 1, 2)
    base = eng.compute(lo, hi, cmat, method="crown")
    splits = _random_splits(graph, base, 5, seed=18)
    with_splits = eng.compute(lo, hi, cmat, method="alpha-crown", splits=splits)
    g = torch.Generator().manual_seed(19)
    alphas = {
        r: torch.rand(a.shape, generator=g, dtype=torch.float64)
        for r, a in with_splits.state.alphas.items()
    }
    zero_beta = AlphaState(
        alphas, {r: torch.zeros_like(b) for r, b in with_splits.state.betas.items()}
    )
    lb_split = eng.evaluate(lo, hi, cmat, None, zero_beta, splits)
    lb_fixed = eng.evaluate(lo, hi, cmat, None, AlphaState(alphas), None, pre=with_splits.pre)
    assert torch.allclose(lb_split, lb_fixed, atol=1e-12, rtol=0)
    assert bool(with_splits.state.betas)


def test_beta_improves_or_keeps_bound():
    """beta-CROWN with splits is never looser than CROWN with the same splits."""
    graph = _tiny()
    eng = BoundEngine(graph, BoundConfig(alpha_iters=20, beta_lr=0.3))
    lo, hi = _box(graph, 8, seed=20, eps=0.8)
    cmat = torch.tensor([[1.0, -1.0]], dtype=torch.float64).expand(8, 1, 2)
    splits = _random_splits(graph, eng.compute(lo, hi, cmat), 8, seed=21)
    crown = eng.compute(lo, hi, cmat, splits=splits).lb
    beta = eng.compute(lo, hi, cmat, method="alpha-crown", splits=splits).lb
    assert bool((beta >= crown).all())


def test_warm_start_state_select_repeat_and_reuse():
    """A parent's state and pre bounds can be handed to children; results stay sound and tight."""
    graph = NETS[0][1]
    eng = BoundEngine(graph, FAST)
    lo, hi = _box(graph, 3, seed=22)
    cmat = torch.eye(4, dtype=torch.float64)
    res = eng.compute(lo, hi, cmat, method="alpha-crown")
    idx = torch.tensor([0, 0, 2])
    child = res.state.select(idx)
    assert (
        child.batch == 3
        and res.state.repeat(2).batch == 6
        and AlphaState.cat([res.state, child]).batch == 6
    )
    again = eng.compute(
        lo[idx], hi[idx], cmat, method="alpha-crown", warm=child, pre=select_pre(res.pre, idx)
    )
    assert bool((again.lb >= res.lb[idx] - 1e-12).all())
    for j, (plo, phi) in again.pre.items():  # given pre bounds are never loosened
        assert bool((plo >= res.pre[j][0][idx]).all()) and bool((phi <= res.pre[j][1][idx]).all())
    # a state that does not fit is ignored rather than trusted
    bad = AlphaState({k: v[:, :1] for k, v in res.state.alphas.items()})
    ok = eng.compute(lo, hi, cmat, method="alpha-crown", warm=bad)
    assert bool(torch.isfinite(ok.lb).all())
    assert res.x_lb.shape == (3, 4, graph.n_inputs)


def test_warm_state_with_non_finite_entries_is_repaired_not_trusted_nor_modified():
    """NaN / +-inf in a warm alpha/beta state (which the search never writes, but a caller
    could) give finite bounds below the brute-force minimum, and the caller's tensors are left
    as they were (the repair works on a copy)."""
    graph = _tiny()
    eng = BoundEngine(graph, BoundConfig(alpha_iters=15, beta_lr=0.2))
    lo, hi = _box(graph, 6, seed=14, eps=0.8)
    cmat = torch.tensor([[1.0, -1.0], [-1.0, 2.0]], dtype=torch.float64).expand(6, 2, 2)
    splits = _random_splits(graph, eng.compute(lo, hi, cmat, method="crown"), 6, seed=15)
    true_min, _ = _split_min(graph, lo, hi, cmat, splits)
    res = eng.compute(lo, hi, cmat, method="alpha-crown", splits=splits)
    assert res.state.alphas and res.state.betas
    poison = torch.tensor([float("nan"), float("inf"), -float("inf")], dtype=torch.float64)

    def poisoned(d: dict) -> dict:
        out = {}
        for r, t in d.items():
            t = t.clone()
            flat = t.view(-1)
            flat[: 3 * (flat.numel() // 3)] = poison.repeat(flat.numel() // 3)
            out[r] = t
        return out

    bad = AlphaState(poisoned(res.state.alphas), poisoned(res.state.betas))
    kept = [{r: t.clone() for r, t in d.items()} for d in (bad.alphas, bad.betas)]
    lb = eng.evaluate(lo, hi, cmat, None, bad, splits)
    assert bool(torch.isfinite(lb).all()) and bool((lb <= true_min).all())
    again = eng.compute(lo, hi, cmat, method="alpha-crown", splits=splits, warm=bad)
    assert bool(torch.isfinite(again.lb).all()) and bool((again.lb <= true_min).all())
    for d, before in zip((bad.alphas, bad.betas), kept):
        for r, t in d.items():
            assert torch.equal(t.nan_to_num(7.0), before[r].nan_to_num(7.0))


def test_x_lb_is_in_box_and_attains_linear_bound():
    """x_lb lies in the box and minimises each row's linear lower bound A x + b over it.

    The minimum of A x over the box is computed independently (A+ lo + A- hi) and compared
    with A x_lb, and no sampled point of the box goes below A x_lb.  The bound also holds at
    x_lb itself: C f(x_lb) >= lb.
    """
    graph = NETS[2][1]
    lo, hi = _box(graph, 2, seed=23)
    cmat = torch.eye(3, dtype=torch.float64)
    res = BoundEngine(graph, FAST).compute(lo, hi, cmat, method="alpha-crown")
    x = res.x_lb
    assert bool((x >= lo.unsqueeze(1)).all()) and bool((x <= hi.unsqueeze(1)).all())
    res = BoundEngine(graph, FAST).compute(lo, hi, cmat, method="crown")
    a, x = res.coeffs, res.x_lb  # (B, m, n_in) each
    assert a is not None and x is not None
    at_x = (a * x).sum(-1)
    box_min = (a.clamp(min=0) * lo.unsqueeze(1) + a.clamp(max=0) * hi.unsqueeze(1)).sum(-1)
    assert torch.allclose(at_x, box_min, rtol=0, atol=1e-9)
    g = torch.Generator().manual_seed(5)
    t = torch.rand(200, *lo.shape, generator=g, dtype=torch.float64)
    pts = lo + (hi - lo) * t  # (200, B, n_in)
    sampled = torch.einsum("bmn,sbn->sbm", a, pts)
    assert bool((sampled >= at_x - 1e-9).all())
    with torch.no_grad():
        y = graph.forward(x.reshape(-1, *graph.input_shape)).reshape(x.shape[0], x.shape[1], -1)
    values = torch.einsum("mk,bmk->bm", cmat, y.to(torch.float64))
    assert bool((values >= res.lb - 1e-6).all())


@pytest.mark.parametrize("kind", ["sigmoid", "tanh"])
def test_smooth_relaxation_sound_by_sampling(kind):
    """Sigmoid/Tanh lines enclose the function on intervals left of, right of and across 0."""
    g = torch.Generator().manual_seed(24)
    centres = torch.cat(
        [torch.randn(300, generator=g) * 4, torch.zeros(20), torch.randn(20, generator=g) * 30]
    )
    widths = torch.cat(
        [
            torch.rand(300, generator=g) * 8,
            torch.rand(20, generator=g) * 1e-9,
            torch.rand(20, generator=g) * 50,
        ]
    )
    lo = (centres - widths / 2).double().unsqueeze(0)
    hi = (centres + widths / 2).double().unsqueeze(0)
    rx = smooth_relax(kind, lo, hi)
    t = torch.rand(500, 1, lo.shape[1], generator=g, dtype=torch.float64)
    t[0], t[1] = 0.0, 1.0
    z = torch.minimum(lo + (hi - lo) * t, hi)
    f = torch.sigmoid(z) if kind == "sigmoid" else torch.tanh(z)
    assert bool((rx.lo_slope * z + rx.lo_int <= f).all())
    assert bool((rx.up_slope * z + rx.up_int >= f).all())
    assert bool(torch.isfinite(rx.lo_slope).all() and torch.isfinite(rx.up_int).all())


def test_nan_bounds_never_prove():
    """NaN in a linear bound becomes -inf."""
    a = torch.tensor([[[float("nan"), 1.0]]], dtype=torch.float64)
    lb, _ = concretize(
        a,
        torch.zeros(1, 1, dtype=torch.float64),
        torch.zeros(1, 2, dtype=torch.float64),
        torch.ones(1, 2, dtype=torch.float64),
        1e-9,
        1e-12,
    )
    assert lb.item() == float("-inf")


def test_compute_bounds_shapes_single_and_batch(tmp_path):
    """compute_bounds: (m,) for one input, (B, m) for a batch; accepts a path and a C matrix."""
    graph = NETS[1][1]
    shape = graph.input_shape
    lo = -np.ones(shape) * 0.1
    lb, ub = compute_bounds(graph, lo, -lo)
    assert (
        lb.shape == (graph.n_outputs,) and ub.shape == (graph.n_outputs,) and bool(np.all(lb <= ub))
    )
    batch_lo = np.stack([lo, lo * 2])
    for method in METHODS:
        lb, ub = compute_bounds(
            graph, batch_lo, -batch_lo, method=method, C=np.ones((2, graph.n_outputs))
        )
        assert lb.shape == (2, 2) and ub.shape == (2, 2) and lb.dtype == np.float64
    path = tmp_path / "mlp.onnx"
    model = MLP([3, 4, 2]).eval()
    torch.onnx.export(model, (torch.zeros(1, 3),), str(path), dynamo=False)
    lb, ub = compute_bounds(str(path), np.zeros((1, 3)), np.ones((1, 3)), method="crown")
    assert lb.shape == (2,)


def test_hand_written_adam_matches_torch_adam():
    # bounds/optimize.Adam replaces torch.optim.Adam (whose first use imports torch's compiler
    # stack); it must take the same steps, including per-group learning rates and their decay
    from completeverify.bounds.optimize import Adam

    gen = torch.Generator().manual_seed(0)
    targets = [torch.randn(3, 4, generator=gen, dtype=torch.float64) for _ in range(2)]
    ours = [torch.zeros(3, 4, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    ref = [torch.zeros(3, 4, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    opt = Adam([([ours[0]], 0.1), ([ours[1]], 0.05)])
    ref_opt = torch.optim.Adam([{"params": [ref[0]], "lr": 0.1}, {"params": [ref[1]], "lr": 0.05}])
    for _ in range(25):
        for ps, o in ((ours, opt), (ref, ref_opt)):
            loss = sum(((p - t) ** 4).sum() for p, t in zip(ps, targets))
            o.zero_grad()
            loss.backward()
            o.step()
        opt.decay(0.98)
        for g in ref_opt.param_groups:
            g["lr"] *= 0.98
    for a, b in zip(ours, ref):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    assert not torch.allclose(ours[0], torch.zeros_like(ours[0]))

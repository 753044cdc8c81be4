"""Rigorous LP verdicts: finite column bounds in the encoding, safe dual bounds and Farkas checks.

An LP leaf (every ReLU's sign fixed) is compared with an independent oracle: one LP over the
input box with the activation pattern's sign constraints, built here with highspy directly.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from torch import nn

import completeverify.milp.encoder as encoder_mod
import completeverify.solvers.highs as highs_mod
from completeverify.bounds import BoundEngine
from completeverify.graph import Relu
from completeverify.milp.decide import (
    Outcome,
    lp_infeasibility_certified,
    lp_optimum_bound,
    solve_pair,
)
from completeverify.milp.encoder import encode
from completeverify.milp.intervals import interval_affine
from completeverify.onnx_import import load_onnx
from completeverify.solvers import SolveLimits, SolveStatus, available_solvers, get_solver

from nets import mlp_onnx, random_mlp

MARGIN = 1e-5
SOLVERS = available_solvers()
needs_highs = pytest.mark.skipif("highs" not in SOLVERS, reason="highspy not available")


# ----------------------------------------------------------------------------- instances
def _net(layers, lower, upper, C):
    """(graph, CROWN pre bounds as flat numpy) for an MLP given as [(W, b), ...]."""
    graph = load_onnx(mlp_onnx(layers, input_shape=(1, len(lower))))
    res = BoundEngine(graph).compute(
        torch.tensor(lower)[None], torch.tensor(upper)[None], C=torch.tensor(C), method="crown"
    )
    pre = {k: (v[0][0].numpy().copy(), v[1][0].numpy().copy()) for k, v in res.pre.items()}
    return graph, pre


def _leaf_splits(graph, pre, signs):
    """Splits fixing every ReLU: the pattern's sign, or the sign the sound bounds force."""
    relus = [i for i, node in enumerate(graph.nodes) if isinstance(node.op, Relu)]
    splits, full = {}, []
    for r, s in zip(relus, signs, strict=True):
        lo, hi = pre[graph.nodes[r].inputs[0]]
        s = np.where(lo >= 0, 1, np.where(hi <= 0, -1, s)).astype(np.int64)
        splits[r] = s
        full.append(s)
    return splits, full


def _pattern(layers, x):
    """Signs (+1 for >= 0) of every hidden pre-activation at x."""
    out, h = [], np.asarray(x, dtype=np.float64)
    for w, b in layers[:-1]:
        z = w @ h + b
        out.append(np.where(z >= 0, 1, -1))
        h = np.maximum(z, 0.0)
    return out


def _oracle(layers, lower, upper, signs, C, d):
    """min over {x in box, pre-activation signs as given} of max_k (C_k y - d_k); inf if empty."""
    import highspy

    n = len(lower)
    A, a = np.eye(n), np.zeros(n)
    rows = []
    for (w, b), s in zip(layers[:-1], signs, strict=True):
        za, zb = w @ A, w @ a + b
        for i in range(w.shape[0]):  # z_i = za_i x + zb_i >= 0 (active) or <= 0 (inactive)
            rows.append((za[i], -zb[i], math.inf) if s[i] > 0 else (za[i], -math.inf, -zb[i]))
        act = (s > 0).astype(float)
        A, a = za * act[:, None], zb * act
    w, b = layers[-1]
    ya, yb = w @ A, w @ a + b
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    inf = highspy.kHighsInf
    for i in range(n):
        h.addVar(float(lower[i]), float(upper[i]))
    h.addVar(-inf, inf)
    h.changeColCost(n, 1.0)
    clip = lambda v: max(min(v, inf), -inf)  # noqa: E731
    for coef, lo, hi in rows:
        h.addRow(clip(lo), clip(hi), n, np.arange(n, dtype=np.int32), coef)
    for k in range(C.shape[0]):  # C_k (ya x + yb) - t <= d_k
        h.addRow(
            -inf,
            float(d[k] - C[k] @ yb),
            n + 1,
            np.arange(n + 1, dtype=np.int32),
            np.append(C[k] @ ya, -1.0),
        )
    h.run()
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kInfeasible:
        return math.inf
    assert status == highspy.HighsModelStatus.kOptimal, status
    return float(h.getInfo().objective_function_value)


def _leaves(seed: int, sizes=(3, 8, 8, 2), n_leaves: int = 6, radius: float = 0.6):
    """LP leaves of one random MLP: half from sampled points (feasible), half random patterns."""
    rng = np.random.default_rng(seed)
    layers = random_mlp(rng, list(sizes))
    lower = rng.uniform(-1, 0.5, sizes[0])
    upper = lower + rng.uniform(0.2, 2 * radius, sizes[0])
    C = np.array([[1.0, -1.0], [0.5, 1.0]])
    graph, pre = _net(layers, lower, upper, C)
    out = []
    for k in range(n_leaves):
        if k % 2 == 0:
            signs = _pattern(layers, rng.uniform(lower, upper))
        else:
            signs = [rng.choice([-1, 1], size=w.shape[0]) for w, _ in layers[:-1]]
        splits, full = _leaf_splits(graph, pre, signs)
        d = rng.normal(size=2) * 0.3
        out.append((layers, graph, lower, upper, pre, C, d, splits, full))
    return out


def _check_leaf(leaf, solver_name="highs"):
    """Compare the rigorous LP bound on one leaf with the oracle; returns a list of violations."""
    layers, graph, lower, upper, pre, C, d, splits, full = leaf
    truth = _oracle(layers, lower, upper, full, C, d)
    bad = []
    try:
        enc = encode(graph, lower, upper, pre, C, d, splits=splits)
    except ValueError:
        return [] if truth == math.inf else [f"encoding empty, oracle {truth}"]
    prog = enc.program
    if prog.is_mip():
        return ["leaf encoded with binaries"]
    if not (np.all(np.isfinite(prog.col_lower)) and np.all(np.isfinite(prog.col_upper))):
        bad.append("a column without finite bounds")
    res = get_solver(solver_name).solve(prog, SolveLimits(time_limit=30))
    if res.status == SolveStatus.INFEASIBLE:
        if truth != math.inf:
            bad.append(f"solver infeasible, oracle {truth}")
        elif solver_name == "highs" and lp_infeasibility_certified(prog, res.dual_ray) is not True:
            bad.append("no Farkas certificate")
        return bad
    if res.status != SolveStatus.OPTIMAL:
        return bad + [f"status {res.status}"]
    if truth == math.inf:
        return bad + [f"solver optimal {res.objective}, oracle infeasible"]
    safe = lp_optimum_bound(prog, res)
    if not safe <= truth + 1e-9:
        bad.append(f"safe bound {safe!r} above the optimum {truth!r}")
    if not safe >= truth - 1e-6:
        bad.append(f"safe bound {safe!r} far below the optimum {truth!r}")
    if not safe <= res.objective:
        bad.append(f"safe bound {safe!r} above the solver objective {res.objective!r}")
    return bad


# ----------------------------------------------------------------------------- (a) soundness
@needs_highs
@pytest.mark.parametrize("seed", range(8))
def test_safe_bound_brackets_leaf_optimum(seed):
    """Safe bound <= the true LP optimum and within 1e-6 of it; infeasibility is certified."""
    for leaf in _leaves(seed):
        assert _check_leaf(leaf) == []


@pytest.mark.skipif("pulp" not in SOLVERS, reason="PuLP/CBC not available")
def test_safe_bound_from_pulp_duals():
    """CBC's duals (printed with limited precision) still give a tight rigorous bound."""
    for leaf in _leaves(11, n_leaves=4):
        assert _check_leaf(leaf, "pulp") == []


def _pl_nets():
    """Small piecewise-linear torch nets covering Conv, MaxPool, Scale, Add, Concat."""
    torch.manual_seed(3)

    class Conv(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.bn = nn.Conv2d(1, 3, 3, stride=2, padding=1), nn.BatchNorm2d(3)  # folded
            self.c2, self.mp = nn.Conv2d(3, 4, 2), nn.MaxPool2d(2, stride=1)
            self.f = nn.Linear(4, 3)
            with torch.no_grad():
                self.bn.running_mean.uniform_(-0.3, 0.3)
                self.bn.running_var.uniform_(0.5, 2.0)

        def forward(self, x):
            x = torch.relu(self.bn(self.c1(x)))
            x = self.mp(torch.relu(self.c2(x)))
            return self.f(torch.flatten(x, 1))

    class Res(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c = nn.Linear(4, 6), nn.Linear(6, 4), nn.Linear(8, 2)
            self.s = nn.Parameter(torch.linspace(-1.5, 2.0, 4))

        def forward(self, x):
            r = torch.relu(self.b(torch.relu(self.a(x))) + x) * self.s
            return self.c(torch.cat([r, torch.relu(x)], dim=1))

    out = []
    for model, shape in ((Conv(), (1, 1, 6, 6)), (Res(), (1, 4))):
        buf = io.BytesIO()
        torch.onnx.export(
            model.eval(),
            (torch.zeros(*shape),),
            buf,
            dynamo=False,
            opset_version=13,
            do_constant_folding=False,
        )
        out.append(load_onnx(buf.getvalue()))
    return out


@pytest.mark.parametrize("which", [0, 1])
def test_encoding_column_bounds_are_finite_and_contain_samples(which):
    """Every column is boxed, and the network's value at sampled inputs lies inside each box."""
    graph = _pl_nets()[which]
    rng = np.random.default_rng(which)
    n = graph.n_inputs
    lower = rng.uniform(-1, 0.5, n)
    upper = lower + rng.uniform(0.0, 0.8, n)
    n_out = graph.n_outputs
    C = np.eye(n_out)[:1] - np.eye(n_out)[1:2]
    res = BoundEngine(graph).compute(
        torch.tensor(lower)[None], torch.tensor(upper)[None], C=torch.tensor(C), method="crown"
    )
    pre = {k: (v[0][0].numpy().copy(), v[1][0].numpy().copy()) for k, v in res.pre.items()}
    enc = encode(graph, lower, upper, pre, C, np.zeros(1))
    prog = enc.program
    assert np.all(np.isfinite(prog.col_lower)) and np.all(np.isfinite(prog.col_upper))
    xs = rng.uniform(lower, upper, size=(300, n))
    xs[:2] = lower, upper
    with torch.no_grad():
        vals = graph.forward_all(torch.tensor(xs).reshape(-1, *graph.input_shape))
    for cols, v in zip(enc.node_cols, vals, strict=True):
        v = v.numpy()
        assert np.all(v >= prog.col_lower[cols]) and np.all(v <= prog.col_upper[cols])
    t = (vals[-1].numpy() @ C.T).max(axis=1)  # the minimal t of each sample fits t's box
    assert np.all(t >= prog.col_lower[enc.t_col]) and np.all(t <= prog.col_upper[enc.t_col])


def test_interval_affine_covers_rounding():
    """Cancelling terms of very different magnitudes: the exact sum (fractions) stays inside."""
    from fractions import Fraction

    rng = np.random.default_rng(0)
    for _ in range(200):
        k = int(rng.integers(1, 12))
        vals = rng.normal(size=k) * 10.0 ** rng.integers(-8, 9, size=k)
        x = rng.normal(size=k) * 10.0 ** rng.integers(-8, 9, size=k)
        const = float(-(vals @ x)) * (1 + rng.normal() * 1e-15)
        lo, hi = interval_affine(1, np.zeros(k, dtype=np.int64), vals, const, x, x)
        exact = Fraction(const) + sum(Fraction(v) * Fraction(xi) for v, xi in zip(vals, x))
        assert Fraction(lo[0]) <= exact <= Fraction(hi[0])


# ----------------------------------------------------------------------------- (b) knife edges
def _knife(threshold: float):
    """z1 = x1 + x2, z2 = x1 - x2 both active on [-1, 1]^2, y = z1 + z2 = 2 x1: min y = 0 at 0.

    The minimum sits on a degenerate vertex; unsafe iff y <= threshold, so min t = -threshold.
    """
    layers = [
        (np.array([[1.0, 1.0], [1.0, -1.0]]), np.zeros(2)),
        (np.array([[1.0, 1.0]]), np.zeros(1)),
    ]
    lower, upper = -np.ones(2), np.ones(2)
    C = np.array([[1.0]])
    graph, pre = _net(layers, lower, upper, C)
    splits, _ = _leaf_splits(graph, pre, [np.ones(2, dtype=np.int64)])
    return encode(graph, lower, upper, pre, C, np.array([threshold]), splits=splits)


@needs_highs
@pytest.mark.parametrize("threshold", [0.0, -MARGIN * (1 - 1e-6), -MARGIN * 0.5, 1e-12])
def test_knife_edge_lp_never_proven(threshold):
    """True optimum 0 or just below the margin: never PROVEN, for either backend."""
    enc = _knife(threshold)
    assert not enc.program.is_mip()
    for name in SOLVERS:
        ans = solve_pair(enc, get_solver(name), 30.0, MARGIN)
        assert ans.outcome != Outcome.PROVEN, name
        assert ans.dual_bound is None or ans.dual_bound <= -threshold


@needs_highs
def test_knife_edge_just_above_margin_is_proven():
    """The same LP with its optimum at 2x the margin is proven, by a bound below the optimum."""
    ans = solve_pair(_knife(-2 * MARGIN), get_solver("highs"), 30.0, MARGIN)
    assert ans.outcome == Outcome.PROVEN
    assert MARGIN < ans.dual_bound <= 2 * MARGIN


class _Tampered:
    """A HiGHS backend whose results pass through ``edit`` (a simulated solver or backend bug)."""

    name = "tampered"

    def __init__(self, edit) -> None:
        self.inner, self.edit = get_solver("highs"), edit

    def is_available(self) -> bool:
        return True

    def solve(self, program, limits=None):
        return self.edit(program, self.inner.solve(program, limits))


@needs_highs
def test_overstated_lp_objective_is_not_trusted():
    """An LP objective off by 1e-3 (tolerance trouble) cannot prove a knife edge; the duals
    decide."""

    def inflate(_program, res):
        if res.objective is not None:
            res.objective += 1e-3
            res.dual_bound = res.objective
        return res

    enc = _knife(0.0)
    ans = solve_pair(enc, _Tampered(inflate), 30.0, MARGIN)
    assert ans.outcome != Outcome.PROVEN and ans.dual_bound <= 0.0

    # without duals (the documented fallback, e.g. an old backend) the claim would be taken
    def no_duals(program, res):
        res = inflate(program, res)
        res.row_duals = None
        return res

    assert solve_pair(enc, _Tampered(no_duals), 30.0, MARGIN).outcome == Outcome.PROVEN


# ----------------------------------------------------------------------------- (c) injected bugs
def _unsat_leaf():
    """The knife-edge LP with a comfortable gap: min t = 0.1."""
    return _knife(-0.1)


@needs_highs
def test_flipped_duals_prove_nothing():
    """Row duals with the wrong sign give no proof (and a bound that is still valid)."""

    def flip(_program, res):
        if res.row_duals is not None:
            res.row_duals = -res.row_duals
        return res

    enc = _unsat_leaf()
    good = solve_pair(enc, get_solver("highs"), 30.0, MARGIN)
    assert good.outcome == Outcome.PROVEN
    bad = solve_pair(enc, _Tampered(flip), 30.0, MARGIN)
    assert bad.outcome != Outcome.PROVEN
    assert bad.dual_bound is None or bad.dual_bound <= 0.1


@needs_highs
def test_infeasibility_needs_a_certificate(monkeypatch):
    """A correct Farkas ray proves an infeasible leaf; a garbage ray (injected) proves nothing."""
    layers = [
        (np.array([[1.0, 1.0], [1.0, -1.0]]), np.zeros(2)),
        (np.array([[1.0, 1.0]]), np.zeros(1)),
    ]
    C = np.array([[1.0]])
    # z1 = x1 + x2 >= 0 and z2 = x1 - x2 >= 0 force x1 >= 0, but the box has x1 <= -0.25; each
    # column's own box is not empty (z1, z2 in [-2, 0.75]), so the solver has to find it
    lower2, upper2 = np.array([-1.0, -1.0]), np.array([-0.25, 1.0])
    graph, pre = _net(layers, lower2, upper2, C)
    relus = [i for i, node in enumerate(graph.nodes) if isinstance(node.op, Relu)]
    pre = {k: (np.minimum(lo, -1.0), np.maximum(hi, 1.0)) for k, (lo, hi) in pre.items()}  # loosen
    enc = encode(
        graph, lower2, upper2, pre, C, np.array([0.0]), splits={relus[0]: np.array([1, 1])}
    )
    assert not enc.program.is_mip()
    res = get_solver("highs").solve(enc.program, SolveLimits(time_limit=30))
    assert res.status == SolveStatus.INFEASIBLE
    assert lp_infeasibility_certified(enc.program, res.dual_ray) is True
    assert solve_pair(enc, get_solver("highs"), 30.0, MARGIN).outcome == Outcome.PROVEN

    # a bogus ray: only the last row (C y - t <= d, satisfiable on its own) can never certify
    monkeypatch.setattr(highs_mod, "_dual_ray", lambda h, m: np.eye(m)[-1])
    ans = solve_pair(enc, get_solver("highs"), 30.0, MARGIN)
    assert ans.outcome == Outcome.UNKNOWN
    # no ray at all (HiGHS is asked again for the relaxation's, and has none): a claim only
    monkeypatch.setattr(highs_mod, "_dual_ray", lambda h, m: None)
    assert solve_pair(enc, get_solver("highs"), 30.0, MARGIN).outcome == Outcome.UNKNOWN


@needs_highs
def test_injected_column_bound_cut_is_caught(monkeypatch):
    """Boxes shrunk inward (cutting off real points) make the oracle comparison fail somewhere."""
    real = encoder_mod.interval_affine

    def shrunk(n, rows, vals, const, lo, hi):
        a, b = real(n, rows, vals, const, lo, hi)
        mid, rad = (a + b) / 2, (b - a) / 2
        return mid - 0.5 * rad, mid + 0.5 * rad

    monkeypatch.setattr(encoder_mod, "interval_affine", shrunk)
    problems = [p for seed in range(4) for leaf in _leaves(seed) for p in _check_leaf(leaf)]
    assert problems, "an unsound column box went unnoticed"


@needs_highs
def test_injected_overstated_safe_bound_is_caught(monkeypatch):
    """A safe bound computed with an error (here: + 1e-3) is caught by the oracle comparison."""
    import completeverify.milp.decide as decide_mod

    real = decide_mod.safe_lp_lower_bound
    monkeypatch.setattr(decide_mod, "safe_lp_lower_bound", lambda p, y: real(p, y) + 1e-3)
    problems = [p for seed in range(3) for leaf in _leaves(seed) for p in _check_leaf(leaf)]
    assert any("above the optimum" in p for p in problems)


# ----------------------------------------------------------------------------- (d) end to end
def _mlp_pair(seed: int, gap: float, leaf: bool):
    """A random MLP pair whose threshold sits gap above the minimum over a (leaf or whole) box."""
    rng = np.random.default_rng(100 + seed)
    layers = random_mlp(rng, [2, 5, 5, 1])
    lower = rng.uniform(-1, 0, 2)
    upper = lower + 0.8
    C = np.array([[1.0]])
    graph, pre = _net(layers, lower, upper, C)
    if leaf:
        signs = _pattern(layers, rng.uniform(lower, upper))
        splits, full = _leaf_splits(graph, pre, signs)
        truth = _oracle(layers, lower, upper, full, C, np.zeros(1))
    else:
        splits = None
        grid = np.stack(np.meshgrid(*(np.linspace(a, b, 201) for a, b in zip(lower, upper))), -1)
        xs = grid.reshape(-1, 2)
        h = xs
        for w, b in layers[:-1]:
            h = np.maximum(h @ w.T + b, 0.0)
        truth = float((h @ layers[-1][0].T + layers[-1][1]).min())  # an upper bound of the min
    d = np.array([truth + gap])
    return encode(graph, lower, upper, pre, C, d, splits=splits), layers


@pytest.mark.parametrize("solver_name", SOLVERS)
@pytest.mark.parametrize("seed", range(3))
def test_solve_pair_proves_unsat_and_finds_sat_leaves(solver_name, seed):
    """LP leaves: min t = 0.05 is PROVEN (bound <= objective), min t = -0.05 gives a true
    candidate."""
    solver = get_solver(solver_name)
    enc, layers = _mlp_pair(seed, -0.05, leaf=True)
    ans = solve_pair(enc, solver, 30.0, MARGIN)
    assert ans.outcome == Outcome.PROVEN
    assert ans.dual_bound <= 0.05 + 1e-9 and ans.dual_bound >= 0.05 - 1e-6
    enc, layers = _mlp_pair(seed, 0.05, leaf=True)
    ans = solve_pair(enc, solver, 30.0, MARGIN)
    assert ans.outcome == Outcome.CANDIDATE
    h = ans.x_input
    for w, b in layers[:-1]:
        h = np.maximum(w @ h + b, 0.0)
    assert float((layers[-1][0] @ h + layers[-1][1])[0]) <= float(enc.program.row_upper[-1]) + 1e-6


@pytest.mark.parametrize("solver_name", SOLVERS)
def test_solve_pair_milp_unchanged(solver_name):
    """Whole-box MILPs (binaries) are still decided: sat by a candidate, a clear unsat proven."""
    solver = get_solver(solver_name)
    enc, _ = _mlp_pair(0, 0.05, leaf=False)
    assert enc.program.is_mip()
    assert solve_pair(enc, solver, 30.0, MARGIN).outcome == Outcome.CANDIDATE
    enc, _ = _mlp_pair(0, -0.5, leaf=False)  # the grid minimum is within 0.5 of the true one here
    assert solve_pair(enc, solver, 30.0, MARGIN).outcome == Outcome.PROVEN

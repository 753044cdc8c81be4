"""Certified radius, balls as input sets and certify, against independent oracles on tiny nets.

Oracles: activation-pattern enumeration with one LP/QP per pattern solved by highspy directly
(no code shared with the encoder), brute force over feature subsets for L0 (tests/nets.exact_min
on boxes that free only the subset), sampled points of balls, and ONNX replay.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import completeverify as cv
from completeverify.bounds.input_sets import Ball
from completeverify.robustness import BallProperty, bisect_radius, certified_radius

from nets import exact_min, forward_np, mlp_onnx, random_mlp

DOMAIN = (0.0, 1.0)
# each row's distance from the centre, per norm (rows of perturbations d)
DISTANCES = {
    "linf": lambda d: np.abs(d).max(1),
    "l1": lambda d: np.abs(d).sum(1),
    "l2": lambda d: np.sqrt((d * d).sum(1)),
    "l0": lambda d: (d != 0).sum(1),
}


def _net(seed: int, sizes=(6, 6, 3), scale: float = 3.0):
    """A tiny MLP (layers, onnx model) and a centre inside [0.2, 0.8]^n."""
    rng = np.random.default_rng(seed)
    layers = [(w * scale, b) for w, b in random_mlp(rng, list(sizes))]
    x = rng.uniform(0.2, 0.8, sizes[0]).astype(np.float32).astype(np.float64)
    return layers, mlp_onnx(layers, input_shape=(1, sizes[0])), x


def _oracle_radius(layers, c: np.ndarray, k: int, norm: str) -> float:
    """min distance to an input of [0, 1]^n where some class j != k scores >= class k.

    Enumerates the activation patterns of a one-hidden-layer MLP; per pattern and class one
    LP (linf, l1), QP (l2) or MILP (l0) built with highspy directly.
    """
    import highspy

    (w1, b1), (w2, b2) = layers
    n, h_n = c.size, w1.shape[0]
    inf = highspy.kHighsInf
    best = math.inf
    for pattern in itertools.product([0.0, 1.0], repeat=h_n):
        s = np.array(pattern)
        y_a = w2 @ (w1 * s[:, None])
        y_b = w2 @ (b1 * s) + b2
        for j in range(w2.shape[0]):
            if j == k:
                continue
            h = highspy.Highs()
            h.setOptionValue("output_flag", False)
            for _ in range(n):
                h.addVar(0.0, 1.0)
            for i in range(h_n):  # the pattern
                lo, hi = (-b1[i], inf) if s[i] else (-inf, -b1[i])
                h.addRow(lo, hi, n, np.arange(n, dtype=np.int32), w1[i])
            h.addRow(float(y_b[k] - y_b[j]), inf, n, np.arange(n, dtype=np.int32), y_a[j] - y_a[k])
            if norm == "linf":
                h.addVar(0.0, inf)
                h.changeColCost(n, 1.0)
                for i in range(n):
                    h.addRow(
                        -inf,
                        float(c[i]),
                        2,
                        np.array([i, n], dtype=np.int32),
                        np.array([1.0, -1.0]),
                    )
                    h.addRow(
                        float(c[i]), inf, 2, np.array([i, n], dtype=np.int32), np.array([1.0, 1.0])
                    )
            elif norm == "l1":
                for i in range(n):
                    h.addVar(0.0, inf)
                    h.changeColCost(n + i, 1.0)
                    h.addRow(
                        -inf,
                        float(c[i]),
                        2,
                        np.array([i, n + i], dtype=np.int32),
                        np.array([1.0, -1.0]),
                    )
                    h.addRow(
                        float(c[i]),
                        inf,
                        2,
                        np.array([i, n + i], dtype=np.int32),
                        np.array([1.0, 1.0]),
                    )
            elif norm == "l2":
                h.changeColsCost(n, np.arange(n, dtype=np.int32), -2.0 * c)
                h.passHessian(
                    n,
                    n,
                    highspy.HessianFormat.kTriangular,
                    np.arange(n + 1, dtype=np.int32),
                    np.arange(n, dtype=np.int32),
                    np.full(n, 2.0),
                )
            h.run()
            if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                continue
            val = h.getInfo().objective_function_value
            best = min(best, math.sqrt(max(val + c @ c, 0.0)) if norm == "l2" else val)
    return best


def _oracle_l0(layers, c: np.ndarray, k: int) -> int:
    """Fewest features to change (each in [0, 1]) for an adversarial input: subset brute force."""
    n, n_out = c.size, layers[-1][0].shape[0]
    polys = []
    for j in range(n_out):
        if j != k:
            row = np.zeros((1, n_out))
            row[0, k], row[0, j] = 1.0, -1.0
            polys.append((row, np.zeros(1)))
    for size in range(n + 1):
        for subset in itertools.combinations(range(n), size):
            lo, hi = c.copy(), c.copy()
            lo[list(subset)], hi[list(subset)] = 0.0, 1.0
            if exact_min(layers, lo, hi, polys) <= 0:
                return size
    return n + 1


def _replays(model, x: np.ndarray, k: int) -> bool:
    """Whether the ONNX model (onnxruntime) gives some class j != k a score >= class k at x."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"x": x.astype(np.float32).reshape(1, -1)})[0].reshape(-1)
    return bool(np.max(np.delete(y, k)) >= y[k])


@pytest.mark.parametrize("norm", ["linf", "l1", "l2"])
@pytest.mark.parametrize("seed", [0, 3])
def test_radius_matches_enumeration_oracle(norm, seed):
    layers, model, x = _net(seed)
    k = int(np.argmax(forward_np(layers, x)))
    res = certified_radius(model, x, norm=norm, domain=DOMAIN, timeout=30)
    truth = _oracle_radius(layers, x, k, norm)
    assert res.exact, res
    assert res.lower <= truth + 1e-5 * (1 + truth)  # the proven bound is never above the truth
    assert res.upper >= truth - 1e-5 * (1 + truth)  # no example is closer than the minimum
    assert res.upper - truth <= 2e-3 * truth + 1e-4
    assert _replays(model, res.adversarial, k)
    assert abs(np.abs(res.adversarial - x).max() - res.upper) < 1e-9 if norm == "linf" else True


@pytest.mark.parametrize("seed", [0, 2])
def test_l0_radius_matches_subset_brute_force(seed):
    layers, model, x = _net(seed)
    k = int(np.argmax(forward_np(layers, x)))
    res = certified_radius(model, x, norm="l0", domain=DOMAIN, timeout=30)
    truth = _oracle_l0(layers, x, k)
    assert res.exact and res.lower == res.upper == truth
    assert _replays(model, res.adversarial, k)
    assert np.count_nonzero(res.adversarial.astype(np.float32) != x.astype(np.float32)) == truth


@pytest.mark.parametrize("norm", ["linf", "l1", "l2", "l0"])
def test_radius_agrees_with_verify_verdicts(norm):
    """verify on the ball just inside the radius is unsat, just outside it is sat."""
    _layers, model, x = _net(0)
    res = certified_radius(model, x, norm=norm, domain=DOMAIN, timeout=30)
    assert res.exact
    inside = res.lower - 1 if norm == "l0" else res.lower * (1 - 1e-3)
    outside = res.upper if norm == "l0" else res.upper * (1 + 1e-3)
    r_in = cv.verify(model, BallProperty(Ball(x, inside, norm, 0.0, 1.0)), timeout=30)
    r_out = cv.verify(model, BallProperty(Ball(x, outside, norm, 0.0, 1.0)), timeout=30)
    assert r_in.status == cv.Status.UNSAT
    assert r_out.status == cv.Status.SAT
    cex = np.asarray(r_out.counterexample.input, dtype=np.float64).reshape(-1)
    assert Ball(x, outside, norm, 0.0, 1.0).contains(cex)


@pytest.mark.parametrize("norm", ["linf", "l2", "l0"])
def test_bisection_baseline_brackets_the_radius(norm):
    _layers, model, x = _net(3)
    res = certified_radius(model, x, norm=norm, domain=DOMAIN, timeout=30)
    base = bisect_radius(model, x, norm=norm, domain=DOMAIN, timeout=30)
    assert base.lower <= res.upper + 1e-9 and res.lower <= base.upper + 1e-9
    if base.exact:
        assert abs(base.upper - res.upper) <= 2e-3 * res.upper + 1e-4


@pytest.mark.parametrize("norm", ["linf", "l1", "l2", "l0"])
def test_lower_bound_never_above_sampled_adversarial_distances(norm):
    layers, model, x = _net(2)
    k = int(np.argmax(forward_np(layers, x)))
    res = certified_radius(model, x, norm=norm, domain=DOMAIN, timeout=30)
    rng = np.random.default_rng(0)
    pts = np.clip(x + rng.normal(size=(4000, x.size)) * rng.uniform(0, 0.5, (4000, 1)), 0, 1)
    ys = np.stack([forward_np(layers, p) for p in pts])
    adv = np.max(np.delete(ys, k, axis=1), axis=1) >= ys[:, k]
    dist = DISTANCES[norm]
    if adv.any():
        assert res.lower <= dist(pts[adv] - x).min() + 1e-9


@pytest.mark.parametrize("norm", ["linf", "l1", "l2", "l0"])
def test_ball_bounds_contain_sampled_points(norm):
    rng = np.random.default_rng(5)
    layers = random_mlp(rng, [5, 8, 8, 3])
    model = mlp_onnx(layers, input_shape=(1, 5))
    c = rng.uniform(0.1, 0.9, 5)
    eps = 2.0 if norm == "l0" else 0.3
    ball = Ball(c, eps, norm, 0.0, 1.0)
    lb, ub = cv.compute_bounds(cv.load_onnx(model), input_set=ball, method="crown")
    box_lb, box_ub = cv.compute_bounds(cv.load_onnx(model), *ball.box(), method="crown")
    assert np.all(lb >= box_lb - 1e-12) and np.all(ub <= box_ub + 1e-12)
    pts = _sample_ball(rng, ball, 3000)
    assert all(ball.contains(p) for p in pts[:50])
    ys = np.stack([forward_np(layers, p) for p in pts])
    assert np.all(ys >= lb - 1e-9) and np.all(ys <= ub + 1e-9)


def _sample_ball(rng, ball: Ball, m: int) -> np.ndarray:
    """Points of ball ∩ domain, many on its boundary (clipping into a box around the centre
    never increases any norm of the perturbation)."""
    n = ball.center.size
    if ball.norm == "l0":
        pts = np.repeat(ball.center[None], m, 0)
        for p in pts:
            idx = rng.choice(n, ball.k, replace=False)
            p[idx] = (
                rng.choice([0.0, 1.0, 0.5], ball.k) if rng.random() < 0.5 else rng.random(ball.k)
            )
        return pts
    d = rng.normal(size=(m, n)) if ball.norm != "l1" else rng.laplace(size=(m, n))
    if ball.norm == "linf":
        d = rng.uniform(-1, 1, (m, n))
        d[: m // 2] = np.sign(d[: m // 2])
        d *= ball.eps
    else:
        p = 1 if ball.norm == "l1" else 2
        d /= np.linalg.norm(d, ord=p, axis=1, keepdims=True)
        d *= ball.eps * np.where(rng.random((m, 1)) < 0.5, 1.0, rng.random((m, 1)))
    return np.clip(ball.center + d * (1 - 1e-9), ball.lower, ball.upper)  # rounding stays inside


def _exact_set_min(a: np.ndarray, ball: Ball) -> float:
    """min of a @ x over ball ∩ [0, 1]^n by an independent method per norm."""
    c, n = ball.center, ball.center.size
    if ball.norm == "l0":  # enumerate the feature subsets, each changed feature at a box end
        best = a @ c
        for size in range(1, ball.k + 1):
            for sub in itertools.combinations(range(n), size):
                x = c.copy()
                for i in sub:
                    x[i] = 0.0 if a[i] > 0 else 1.0
                best = min(best, a @ x)
        return best
    from scipy.optimize import linprog, minimize

    if ball.norm == "l1":  # LP over (x, s): s >= |x - c|, sum s <= eps
        eye = np.eye(n)
        a_ub = np.block([[eye, -eye], [-eye, -eye], [np.zeros((1, n)), np.ones((1, n))]])
        b_ub = np.r_[c, -c, ball.eps]
        res = linprog(
            np.r_[a, np.zeros(n)],
            A_ub=a_ub,
            b_ub=b_ub,
            bounds=[(0, 1)] * n + [(0, None)] * n,
            method="highs",
        )
        return res.fun
    cons = {"type": "ineq", "fun": lambda x: ball.eps**2 - (x - c) @ (x - c)}
    res = minimize(
        lambda x: a @ x,
        c,
        bounds=[(0, 1)] * n,
        constraints=[cons],
        method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 500},
    )
    return res.fun


@pytest.mark.parametrize("norm", ["l1", "l2", "l0"])
def test_set_concretisation_is_sound_and_exact(norm):
    """min over ball ∩ domain of a @ x: never above sampled points and equal to the optimum."""
    rng = np.random.default_rng(1)
    c = rng.uniform(0.0, 1.0, 4)
    ball = Ball(c, 2.0 if norm == "l0" else 0.4, norm, 0.0, 1.0)
    a = torch.as_tensor(rng.normal(size=(1, 6, 4)))
    lb = ball.lower_bound(a, torch.zeros(1, 6))[0].numpy()
    vals = _sample_ball(rng, ball, 5000) @ a[0].numpy().T
    assert np.all(vals.min(0) >= lb - 1e-12)
    exact = np.array([_exact_set_min(a[0, r].numpy(), ball) for r in range(6)])
    assert np.all(lb <= exact + 1e-9)
    assert np.allclose(lb, exact, atol=1e-6)


def test_qp_solve_and_its_rigorous_bound():
    from completeverify.robustness.programs import safe_qp_lower_bound
    from completeverify.solvers import MilpProgram, SolveStatus, get_solver

    # min x^2 + y^2 - 2x  s.t. x + y >= 2 on [-5, 5]^2: optimum at (1.5, 0.5), value -0.5
    p = MilpProgram(
        c=np.array([-2.0, 0.0]),
        col_lower=-5 * np.ones(2),
        col_upper=5 * np.ones(2),
        A_rows=np.array([0, 0]),
        A_cols=np.array([0, 1]),
        A_vals=np.ones(2),
        row_lower=np.array([2.0]),
        row_upper=np.array([np.inf]),
        integrality=np.zeros(2, bool),
        hessian_diag=np.array([2.0, 2.0]),
    )
    res = get_solver("highs").solve(p)
    assert res.status == SolveStatus.OPTIMAL
    assert np.allclose(res.x, [1.5, 0.5], atol=1e-6) and abs(res.objective + 0.5) < 1e-7
    bound = safe_qp_lower_bound(p, res.row_duals)
    assert -0.5 - 1e-6 <= bound <= -0.5 + 1e-12
    assert safe_qp_lower_bound(p, np.array([0.0])) <= -0.5  # any multiplier: still a bound


def test_certify_accuracies_are_ordered_and_curves_written(tmp_path):
    layers, model, _ = _net(0)
    rng = np.random.default_rng(0)
    xs = rng.uniform(0.1, 0.9, (6, 6))
    ys = np.array([int(np.argmax(forward_np(layers, x))) for x in xs])
    ys[0] = (ys[0] + 1) % 3  # one wrong prediction
    rep = cv.certify(
        model,
        xs,
        ys,
        eps=[0.01, 0.1, 0.3],
        norm="linf",
        timeout_per_input=20,
        radius=True,
        domain=DOMAIN,
    )
    assert rep.clean_accuracy == pytest.approx(5 / 6)
    for e in rep.eps:
        assert rep.certified_accuracy[e] <= rep.pgd_accuracy[e] <= rep.clean_accuracy
        assert rep.certified_accuracy[e] + rep.undecided[e] <= rep.pgd_accuracy[e] + 1e-12
    for row in rep.rows:
        assert set(row.verdicts.values()) <= {"certified", "counterexample", "unknown"}
        for e, v in row.verdicts.items():  # verdicts agree with the proven radius
            if row.radius is not None and row.radius_upper is not None:
                assert not (v == "certified" and e >= row.radius_upper)
                assert not (v == "counterexample" and e < row.radius)
    rc = rep.risk_coverage()
    assert rc[0][1] == 1.0 and rc[0][2] == pytest.approx(1 / 6)
    assert all(0 <= cov <= 1 and 0 <= risk <= 1 for _, cov, risk in rc)
    assert 0 <= rep.aurc() <= 1
    rep.to_csv(tmp_path / "c.csv")
    assert len((tmp_path / "c.csv").read_text().splitlines()) == 2 + 6


def test_verify_ball_sat_counterexample_replays():
    layers, model, x = _net(0)
    k = int(np.argmax(forward_np(layers, x)))
    res = cv.verify(model, BallProperty(Ball(x, 3.0, "l1", 0.0, 1.0)), timeout=30)
    assert res.status == cv.Status.SAT
    assert _replays(model, np.asarray(res.counterexample.input, dtype=np.float64), k)


def _cli(*args, timeout=300):
    """Run the CLI in a subprocess."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "completeverify", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_cli_radius_and_certify_on_builtin_digits(tmp_path):
    from pathlib import Path

    from completeverify.robustness.data import load_data

    net = Path(__file__).resolve().parents[2] / "examples" / "digits_mlp.onnx"
    x, y, _, _ = load_data("digits", limit=1)
    np.save(tmp_path / "x.npy", x[0].reshape(1, 64).astype(np.float32))
    adv = tmp_path / "adv.npy"
    p = _cli(
        "radius",
        net,
        "--input",
        tmp_path / "x.npy",
        "--norm",
        "linf",
        "--domain",
        0,
        1,
        "--timeout",
        20,
        "--save-adversarial",
        adv,
        "--json",
    )
    assert p.returncode == 0, p.stderr
    import json

    out = json.loads(p.stdout)
    assert out["lower"] <= out["upper"]
    assert _replays(__import__("onnx").load(str(net)), np.load(adv), int(y[0]))
    csv = tmp_path / "c.csv"
    args = (
        "certify",
        net,
        "digits",
        "--limit",
        2,
        "--eps",
        "0.01,0.05",
        "--timeout-per-input",
        5,
        "--out",
        csv,
        "--plot",
        tmp_path / "p",
        "--no-progress",
    )
    p = _cli(*args)
    assert p.returncode == 0, p.stderr
    assert "AURC" in p.stdout and (tmp_path / "p_risk_coverage.png").exists()
    assert len(csv.read_text().splitlines()) == 2 + 2
    p = _cli(*args)  # resumed: nothing recomputed, same rows
    assert p.returncode == 0 and len(csv.read_text().splitlines()) == 2 + 2
    p = _cli("certify", net, "digits", "--eps", "0.2", "--out", csv, "--no-progress")
    assert p.returncode == 2 and p.stderr.startswith("error:")
    p = _cli("radius", net, "--input", tmp_path / "missing.npy")
    assert p.returncode == 2 and p.stderr.startswith("error:")


def test_cli_in_process_radius_and_certify(tmp_path, capsys):
    """The subcommands end to end in this process (fast): built-in data and a user .npz."""
    from completeverify.cli import main

    _layers, model, x = _net(0)
    net = tmp_path / "net.onnx"
    net.write_bytes(model.SerializeToString())
    np.save(tmp_path / "x.npy", x)
    assert (
        main(
            [
                "radius",
                str(net),
                "--input",
                str(tmp_path / "x.npy"),
                "--norm",
                "l1",
                "--domain",
                "0",
                "1",
                "--timeout",
                "20",
            ]
        )
        == 0
    )
    assert "exact l1 radius" in capsys.readouterr().out
    xs = np.random.default_rng(0).uniform(0.1, 0.9, (3, 6))
    np.savez(tmp_path / "d.npz", x=xs, y=np.array([0, 1, 2]))
    assert (
        main(
            [
                "certify",
                str(net),
                str(tmp_path / "d.npz"),
                "--eps",
                "0.05,0.2",
                "--norm",
                "l2",
                "--domain",
                "0",
                "1",
                "--timeout-per-input",
                "10",
                "--out",
                str(tmp_path / "c.csv"),
                "--plot",
                str(tmp_path / "p"),
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "AURC" in out and (tmp_path / "p_accuracy_radius.png").exists()
    assert (tmp_path / "p_risk_coverage.csv").read_text().startswith("radius,coverage,risk")


@pytest.mark.parametrize("norm", ["linf", "l1", "l2", "l0"])
def test_radius_of_a_sigmoid_network_is_bounded_not_refused(norm):
    """The exact programs encode piecewise-linear networks only: on a Sigmoid network the radius
    keeps its CROWN lower bound and attack upper bound (linf also bisects with the search)
    instead of failing in the MILP after the attack and bounds have run."""
    layers, model, x = _net(4)
    for node in model.graph.node:
        if node.op_type == "Relu":
            node.op_type = "Sigmoid"
    res = certified_radius(model, x, norm=norm, domain=DOMAIN, timeout=20)
    assert 0 < res.lower <= res.upper
    rng = np.random.default_rng(1)
    pts = np.clip(x + rng.normal(size=(3000, x.size)) * rng.uniform(0, 0.6, (3000, 1)), 0, 1)
    w1, b1 = layers[0]
    w2, b2 = layers[1]
    ys = (1 / (1 + np.exp(-(pts @ w1.T + b1)))) @ w2.T + b2
    k = res.stats["label"]
    adv = np.max(np.delete(ys, k, axis=1), axis=1) >= ys[:, k]
    dist = DISTANCES[norm]
    assert adv.any()
    assert res.lower <= dist(pts[adv] - x).min() + 1e-9

"""End-to-end verdicts on tiny networks whose answers are known by construction or by brute
force."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator
from paths import REPO

import completeverify as cv
from completeverify.config import AttackConfig, VerifyConfig

from nets import exact_min, forward_np, mlp_onnx, random_mlp, vnnlib_text

ROOT = REPO
SOLVERS = ["highs", "pulp"]


def replay_ok(model: onnx.ModelProto, prop, result) -> bool:
    """Independent check of a sat: onnx reference evaluator + the property, zero tolerance."""
    cex = result.counterexample
    assert cex is not None
    x = np.asarray(cex.input)
    case = prop.cases[cex.case]
    flat = x.astype(np.float64).reshape(-1)
    if not (np.all(flat >= case.lower) and np.all(flat <= case.upper)):
        return False
    name = [i.name for i in model.graph.input][0]
    y = (
        ReferenceEvaluator(model)
        .run(None, {name: x.astype(np.float32)})[0]
        .astype(np.float64)
        .reshape(-1)
    )
    if not np.allclose(y, np.asarray(cex.output, dtype=np.float64).reshape(-1)):
        return False
    return any(np.all(p.C @ y <= p.d) for p in case.polytopes)


def no_attack(**kw) -> VerifyConfig:
    """A config without PGD, so the exact stages have to decide."""
    return VerifyConfig(attack=AttackConfig(enabled=False), **kw)


@pytest.mark.parametrize("solver", SOLVERS)
def test_shipped_example_both_verdicts(solver, example):
    net = cv.load_onnx(example.net)
    r = cv.verify(net, example.unsat, timeout=60, solver=solver)
    assert r.status == cv.Status.UNSAT
    prop = cv.load_vnnlib(example.sat)
    r = cv.verify(net, prop, timeout=60, solver=solver)
    assert r.status == "sat"
    assert replay_ok(onnx.load(example.net), prop, r)


def _instance(seed: int, sizes, gap: float):
    """A random MLP and a one-row property whose exact minimum is shifted by ``gap``."""
    rng = np.random.default_rng(seed)
    layers = random_mlp(rng, sizes)
    lower = rng.uniform(-1, 0, size=sizes[0]).round(3)
    upper = (lower + rng.uniform(0.2, 1.0, size=sizes[0])).round(3)
    n_out = sizes[-1]
    C = np.zeros((1, n_out))
    C[0, 0], C[0, 1 % n_out] = 1.0, -1.0 if n_out > 1 else 0.0
    m = exact_min(layers, lower, upper, [(C, np.zeros(1))])
    d = np.array([m + gap])
    return layers, lower, upper, [(C, d)]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("gap", [-0.02, 0.02])
def test_random_mlps_agree_with_brute_force(seed, gap, tmp_path):
    layers, lower, upper, polys = _instance(seed, [3, 5, 4, 2], gap)
    model = mlp_onnx(layers, input_shape=(1, 3))
    prop_text = vnnlib_text(lower, upper, polys)
    expected = cv.Status.SAT if gap > 0 else cv.Status.UNSAT
    net = cv.load_onnx(model)
    prop = cv.load_vnnlib(prop_text, net)
    configs = [VerifyConfig(timeout=30)]
    configs += [no_attack(timeout=30, solver=s, use_bounds=False, mode="milp") for s in SOLVERS]
    for config in configs:
        r = cv.verify(net, prop, config=config)
        assert r.status == expected, (config.solver, config.mode, r.message)
        if r.status == cv.Status.SAT:
            assert replay_ok(model, prop, r)
            y = forward_np(layers, r.counterexample.input)
            assert np.all(polys[0][0] @ y <= polys[0][1] + 1e-5)


def test_zero_width_box_and_exact_zero_minimum():
    # y = x on a box [0, 1]: the unsafe set y <= 0 is reached exactly at x = 0
    w = [(np.eye(1), np.zeros(1))]
    model = mlp_onnx(w, input_shape=(1, 1))
    net = cv.load_onnx(model)
    r = cv.verify(net, vnnlib_text([0.0], [1.0], [(np.eye(1), np.zeros(1))]), timeout=20)
    assert r.status == "sat" and float(r.counterexample.output.reshape(-1)[0]) <= 0.0
    # just below zero: never sat (unsat, or unknown on the knife edge)
    r = cv.verify(net, vnnlib_text([0.0], [1.0], [(np.eye(1), np.array([-1e-9]))]), timeout=20)
    assert r.status in ("unsat", "unknown")
    # a constant input (lower == upper) is a valid box (Marabou #670 gave a false unsat)
    r = cv.verify(net, vnnlib_text([0.25], [0.25], [(np.eye(1), np.array([0.25]))]), timeout=20)
    assert r.status == "sat"
    r = cv.verify(net, vnnlib_text([0.25], [0.25], [(np.eye(1), np.array([0.2]))]), timeout=20)
    assert r.status == "unsat"


def test_disjunctive_output_and_two_boxes():
    rng = np.random.default_rng(7)
    layers = random_mlp(rng, [2, 4, 3])
    model = mlp_onnx(layers)
    net = cv.load_onnx(model)
    lower, upper = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    C0 = np.array([[1.0, -1.0, 0.0]])
    C1 = np.array([[0.0, 1.0, -1.0]])
    m0 = exact_min(layers, lower, upper, [(C0, np.zeros(1))])
    m1 = exact_min(layers, lower, upper, [(C1, np.zeros(1))])
    # neither reachable -> unsat; make the second reachable -> sat through the disjunction
    text = vnnlib_text(lower, upper, [(C0, np.array([m0 - 0.05])), (C1, np.array([m1 - 0.05]))])
    assert cv.verify(net, text, config=no_attack(timeout=30)).status == "unsat"
    text = vnnlib_text(lower, upper, [(C0, np.array([m0 - 0.05])), (C1, np.array([m1 + 0.05]))])
    prop = cv.load_vnnlib(text, net)
    r = cv.verify(net, prop, config=no_attack(timeout=30))
    assert r.status == "sat" and r.counterexample.polytope == 1 and replay_ok(model, prop, r)


def test_result_object_api():
    """The result's texts carry a counterexample that replays: the VNN-COMP file's X values,
    fed to the ONNX reference evaluator, give its Y values, and those violate the property."""
    model = onnx.load(ROOT / "examples" / "mlp.onnx")
    net = cv.load_onnx(model)
    prop = cv.load_vnnlib(ROOT / "examples" / "mlp_sat.vnnlib", net)
    r = cv.verify(net, prop, timeout=30)
    assert r.status == cv.Status.SAT
    assert r.counterexample.input.shape == (1, 5) and r.counterexample.output.shape == (1, 3)
    text = r.to_vnncomp()
    assert text.startswith("sat\n((X_0 ")
    values = dict(line.strip("() \n").split() for line in text.splitlines()[1:])
    assert sorted(values) == [f"X_{i}" for i in range(5)] + [f"Y_{j}" for j in range(3)]
    x = np.array([float(values[f"X_{i}"]) for i in range(5)])
    y_file = np.array([float(values[f"Y_{j}"]) for j in range(3)])
    np.testing.assert_array_equal(x, r.counterexample.input.reshape(-1))  # repr round-trips
    case = prop.cases[r.counterexample.case]
    assert np.all(x >= case.lower) and np.all(x <= case.upper)
    name = model.graph.input[0].name
    y = ReferenceEvaluator(model).run(None, {name: x.astype(np.float32).reshape(1, 5)})[0]
    np.testing.assert_allclose(y.reshape(-1), y_file, rtol=1e-6, atol=1e-6)
    poly = case.polytopes[r.counterexample.polytope]
    assert np.all(poly.C @ y_file <= poly.d)
    assert r.stats["total"] > 0
    d = r.to_dict()
    assert d["status"] == "sat" and d["seconds"] == r.stats["total"]
    assert (
        d["counterexample"]["input"] == x.tolist()
        and d["counterexample"]["output"] == y_file.tolist()
    )
    assert d["counterexample"]["input_shape"] == [1, 5] and d["counterexample"]["output_shape"] == [
        1,
        3,
    ]


def test_config_validation():
    with pytest.raises(cv.InputError):
        VerifyConfig(solver="gurobi")
    with pytest.raises(cv.InputError):
        VerifyConfig(timeout=-1)
    with pytest.raises(cv.InputError):
        dataclasses.replace(VerifyConfig(), mode="magic")


def test_property_size_mismatch_is_an_error():
    net = cv.load_onnx(ROOT / "examples" / "mlp.onnx")
    text = vnnlib_text([0.0, 0.0], [1.0, 1.0], [(np.ones((1, 3)), np.zeros(1))])
    with pytest.raises(cv.PropertyError, match="2"):
        cv.verify(net, text, timeout=10)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("gap", [-0.01, 0.01])
@pytest.mark.parametrize("mode", ["input-split", "relu-split"])
def test_multi_row_polytopes_agree_with_brute_force(seed, gap, mode):
    # three-row polytopes exercise the convex-combination rows of completeverify.spec
    rng = np.random.default_rng(100 + seed)
    layers = random_mlp(rng, [2, 5, 5, 4])
    lower, upper = np.array([-1.0, -0.5]), np.array([0.5, 1.0])
    C = np.array([[1.0, -1.0, 0.0, 0.0], [1.0, 0.0, -1.0, 0.0], [1.0, 0.0, 0.0, -1.0]])
    m = exact_min(layers, lower, upper, [(C, np.zeros(3))])
    polys = [(C, np.full(3, m + gap))]
    model = mlp_onnx(layers)
    net = cv.load_onnx(model)
    prop = cv.load_vnnlib(vnnlib_text(lower, upper, polys), net)
    r = cv.verify(net, prop, config=no_attack(timeout=60, mode=mode))
    assert r.status == (cv.Status.SAT if gap > 0 else cv.Status.UNSAT), r.message
    if r.status == cv.Status.SAT:
        assert replay_ok(model, prop, r)


def test_convex_combination_rows_are_implied_by_the_rows():
    from completeverify.spec import with_combinations

    rng = np.random.default_rng(3)
    C, d = rng.normal(size=(4, 6)), rng.normal(size=4)
    C2, d2 = with_combinations(C, d)
    assert C2.shape == (4 + 1 + 6, 6)
    ys = rng.normal(size=(2000, 6)) * 3
    viol = ys @ C2.T - d2  # where every original row is <= 0, every combination is too
    inside = np.all(viol[:, :4] <= 0, axis=1)
    assert np.all(viol[inside] <= 1e-12)
    assert np.all(viol.max(axis=1) <= viol[:, :4].max(axis=1) + 1e-12)


def test_combination_rows_whose_coefficients_cancel_are_dropped_unless_they_prove_empty():
    from completeverify.spec import with_combinations

    # a band -0.5 <= y_1 <= 0.5 and y_0 >= 1: the mean of the band's walls is 0 <= 0.5
    C = np.array([[0.0, 1.0], [0.0, -1.0], [-1.0, 0.0]])
    d = np.array([0.5, 0.5, -1.0])
    C2, d2 = with_combinations(C, d)
    assert np.array_equal(C2[:3], C) and np.array_equal(d2[:3], d)
    assert C2.shape[0] == 3 + 1 + 2  # the mean and two of the three pairwise means
    assert np.all(np.any(C2 != 0, axis=1))
    # an empty band (y_1 <= -0.5 and y_1 >= 0.5): 0 <= -0.5 is kept, and excludes every output
    C2, d2 = with_combinations(C, np.array([-0.5, -0.5, -1.0]))
    zero = ~np.any(C2 != 0, axis=1)
    assert zero.sum() == 1 and d2[zero][0] < 0


def test_zero_width_dimension_at_a_value_float32_cannot_represent():
    # X_0 is pinned to 0.1, which has no float32 representation: the nearest float32 is the only
    # possible input for it, while X_1 must still lie inside its interval exactly
    model = mlp_onnx([(np.eye(2), np.zeros(2))], input_shape=(1, 2))
    net = cv.load_onnx(model)
    text = vnnlib_text([0.1, 0.0], [0.1, 1.0], [(np.array([[0.0, 1.0]]), np.array([0.5]))])
    prop = cv.load_vnnlib(text, net)
    r = cv.verify(net, prop, timeout=20)
    assert r.status == "sat"
    x = r.counterexample.input.reshape(-1)
    assert abs(float(x[0]) - 0.1) < 1e-7 and 0.0 <= x[1] <= 0.5


@pytest.mark.parametrize("mode", ["milp", "input-split", "relu-split"])
def test_empty_bounds_without_splits_are_never_a_proof(monkeypatch, mode):
    """If the encoder ever found sound bounds empty on the (non-empty) box, no stage would read it
    as unsat.

    The instance is sat (threshold above the exact minimum) and PGD is off, so an unsat here
    could only come from an "empty bounds" error taken as a proof.  ReLU splitting is checked
    through its whole-box exact decision (the hand-off), the one call without splits.
    """
    from completeverify.bab import relu_split as rs
    from completeverify.milp import encoder
    from completeverify.milp.outcomes import EmptyDomain

    def empty(*args, **kwargs):
        raise EmptyDomain("empty pre-activation bounds")

    monkeypatch.setattr(encoder, "encode", empty)
    rng = np.random.default_rng(7)
    layers = random_mlp(rng, [2, 6, 6, 1])
    lower, upper = np.array([-3.0, -3.0]), np.array([3.0, 3.0])
    m = exact_min(layers, lower, upper, [(np.array([[1.0]]), np.zeros(1))])
    net = cv.load_onnx(mlp_onnx(layers, input_shape=(1, 2)))
    prop = cv.load_vnnlib(
        vnnlib_text(lower, upper, [(np.array([[1.0]]), np.array([m + 0.01]))]), net
    )
    config = VerifyConfig(
        timeout=10, mode=mode, use_bounds=False, attack=AttackConfig(enabled=False)
    )
    if mode == "relu-split":
        from completeverify.context import VerifyContext
        from completeverify.verdict import Replayer

        run = VerifyContext(
            net, prop, config, cv.config.Deadline(10), Replayer(net.onnx_model), rng
        )
        search = rs._Search(run, 0, [0], run.deadline)
        assert search.checks.exact({}, None, 0) == ("unknown", None)
        assert search.checks.exact({}, {}, 0) == ("unknown", None)
        return
    assert cv.verify(net, prop, config=config).status != cv.Status.UNSAT


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("gap", [-0.003, 0.003])
def test_input_split_alpha_stage_agrees_with_brute_force(seed, gap):
    # alpha-CROWN on the domains CROWN leaves open, from the first domain on: a wrong slope or a
    # misindexed intermediate bound there would turn the sat cases (gap > 0) into unsat
    from completeverify.config import BabConfig

    rng = np.random.default_rng(300 + seed)
    layers = random_mlp(rng, [3, 6, 5, 3])
    lower, upper = -np.ones(3), np.ones(3)
    C = np.array([[1.0, -1.0, 0.0], [1.0, 0.0, -1.0]])
    m = exact_min(layers, lower, upper, [(C, np.zeros(2))])
    polys = [(C, np.full(2, m + gap))]
    model = mlp_onnx(layers, input_shape=(1, 3))
    net = cv.load_onnx(model)
    prop = cv.load_vnnlib(vnnlib_text(lower, upper, polys), net)
    runs = {}
    for iters in (0, 10):
        bab = BabConfig(input_alpha_iters=iters, input_alpha_after=0)
        config = no_attack(timeout=60, mode="input-split", bab=bab, use_bounds=False)
        r = cv.verify(net, prop, config=config)
        assert r.status == (cv.Status.SAT if gap > 0 else cv.Status.UNSAT), r.message
        if r.status == cv.Status.SAT:
            assert replay_ok(model, prop, r)
        runs[iters] = r.stats
    assert runs[0].get("input_split_alpha_domains", 0) == 0
    assert runs[0]["input_split_domains"] > 0
    # the stage ran, on at most the domains CROWN bounded
    assert 0 < runs[10]["input_split_alpha_domains"] <= runs[10]["input_split_domains"]

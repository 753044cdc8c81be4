"""The exact leaf (milp/leaf.py), typed empty domains, InternalError, one source of option names."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import completeverify as cv
from completeverify.bounds import BoundEngine
from completeverify.bounds.pre import pre_to_numpy
from completeverify.config import MODES, SOLVERS, Deadline, MilpConfig, VerifyConfig
from completeverify.errors import InputError, InternalError
from completeverify.milp.leaf import LeafProblem, LeafVerdict, exact_leaf, pgd_polish
from completeverify.solvers import get_solver, solver_names
from completeverify.verdict import Replayer

from nets import exact_min, forward_np, mlp_onnx, random_mlp, vnnlib_text

LOWER, UPPER = np.array([-2.0, -2.0]), np.array([2.0, 2.0])
C = np.array([[1.0]])


@functools.lru_cache(maxsize=None)
def _network(seed: int):
    """A random 2-5-5-1 MLP, its import and its exact minimum on the box (brute force)."""
    layers = random_mlp(np.random.default_rng(seed), [2, 5, 5, 1])
    m = exact_min(layers, LOWER, UPPER, [(C, np.zeros(1))])
    return layers, cv.load_onnx(mlp_onnx(layers, input_shape=(1, 2))), m


def _instance(seed: int, gap: float):
    """The polytope {y <= min + gap} on the box; (net, prop, layers)."""
    layers, net, m = _network(seed)
    prop = cv.load_vnnlib(vnnlib_text(LOWER, UPPER, [(C, np.array([m + gap]))]), net)
    return net, prop, layers


def _problem(net, prop, splits=None) -> LeafProblem:
    """The whole box as one leaf, with CROWN intermediate bounds."""
    import torch

    case = prop.cases[0]
    lo, hi = torch.as_tensor(case.lower)[None], torch.as_tensor(case.upper)[None]
    rows = torch.as_tensor(C, dtype=torch.float64)[None]
    pre = pre_to_numpy(BoundEngine(net).compute(lo, hi, rows, method="crown").pre)
    return LeafProblem(net, case, 0, case.polytopes[0], case.lower, case.upper, pre, splits)


@pytest.mark.parametrize("seed", range(4))
def test_leaf_agrees_with_brute_force(seed):
    """Below the exact minimum the leaf proves; above it, it returns a replayed counterexample."""
    for gap, expected in ((-0.05, LeafVerdict.PROVEN), (0.05, LeafVerdict.FALSIFIED)):
        net, prop, layers = _instance(seed, gap)
        out = exact_leaf(
            _problem(net, prop),
            get_solver("highs"),
            Replayer(net.onnx_model),
            MilpConfig(),
            Deadline(30),
        )
        assert out.verdict == expected
        if expected == LeafVerdict.FALSIFIED:
            assert out.counterexample is not None
            x = np.asarray(out.counterexample.input, dtype=np.float64).reshape(-1)
            assert np.all(x >= LOWER) and np.all(x <= UPPER)
            assert forward_np(layers, x)[0] <= prop.cases[0].polytopes[0].d[0] + 1e-5
        else:
            assert out.counterexample is None


def test_contradictory_splits_are_a_typed_empty_outcome():
    """A split forcing active a neuron whose bounds say it is inactive: EMPTY, not an exception."""
    net, prop, _ = _instance(0, 0.05)
    problem = _problem(net, prop)
    relu = next(i for i, n in enumerate(net.nodes) if type(n.op).__name__ == "Relu")
    j = net.nodes[relu].inputs[0]
    lo, hi = problem.pre[j]
    pre = dict(problem.pre)
    pre[j] = (lo.copy(), hi.copy())
    pre[j][0][0], pre[j][1][0] = -2.0, -1.0  # neuron 0 always inactive ...
    signs = np.zeros(net.nodes[relu].size, dtype=np.int64)
    signs[0] = 1  # ... but split active
    problem = LeafProblem(net, problem.case, 0, problem.poly, LOWER, UPPER, pre, {relu: signs})
    out = exact_leaf(
        problem, get_solver("highs"), Replayer(net.onnx_model), MilpConfig(), Deadline(30)
    )
    assert out.verdict == LeafVerdict.EMPTY and out.counterexample is None


def test_rejected_candidate_is_polished_by_pgd(monkeypatch):
    """If the replay rejects the solver's candidates, the polish step runs and its find counts."""
    import completeverify.milp.leaf as leaf_mod

    net, prop, layers = _instance(1, 0.05)
    real_confirm = leaf_mod.confirm
    calls = {"n": 0}

    def reject_solver_points(replayer, x, case, case_index=0):
        calls["n"] += 1
        return None if calls["n"] <= 2 else real_confirm(replayer, x, case, case_index)

    monkeypatch.setattr(leaf_mod, "confirm", reject_solver_points)
    replayer = Replayer(net.onnx_model)
    case = prop.cases[0]
    polish = pgd_polish(
        net,
        replayer,
        case,
        0,
        [case.polytopes[0]],
        cv.AttackConfig(),
        lambda: Deadline(5),
        np.random.default_rng(0),
    )
    out = exact_leaf(
        _problem(net, prop),
        get_solver("highs"),
        replayer,
        MilpConfig(),
        Deadline(30),
        polish=polish,
    )
    assert calls["n"] >= 3  # solve, re-solve, then the polished points
    assert out.verdict == LeafVerdict.FALSIFIED
    x = np.asarray(out.counterexample.input, dtype=np.float64).reshape(-1)
    assert forward_np(layers, x)[0] <= case.polytopes[0].d[0] + 1e-5
    calls["n"] = 0
    out = exact_leaf(
        _problem(net, prop),
        get_solver("highs"),
        replayer,
        MilpConfig(),
        Deadline(30),
        resolve=False,
    )
    assert calls["n"] == 1 and out.verdict == LeafVerdict.UNKNOWN  # no re-solve, no polish


def test_missing_intermediate_bounds_are_an_internal_error():
    """The encoder needs bounds for every ReLU input: forgetting them is a bug, not bad input."""
    from completeverify.milp.encoder import encode

    net = _network(0)[1]
    with pytest.raises(InternalError) as info:
        encode(net, LOWER, UPPER, {}, C, np.zeros(1))
    assert not isinstance(info.value, InputError)


def test_cli_reports_internal_errors_with_exit_1(monkeypatch, capsys):
    """An InternalError reaching the CLI: exit 1, 'internal error, please report', never exit 2."""
    from completeverify.cli import main
    from completeverify.cli import verify as verify_cmd

    def broken(args):
        raise InternalError("an invariant broke")

    monkeypatch.setattr(verify_cmd, "run_verify", broken)  # bound when main() builds the parser
    code = main(["verify", "examples/mlp.onnx", "examples/mlp_unsat.vnnlib", "--timeout", "5"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: internal error, please report: an invariant broke")


def test_option_names_have_one_source():
    """The CLI's choices and the solver registry agree with config's Literal names."""
    from completeverify.cli import build_parser

    assert tuple(solver_names()) == SOLVERS
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    verify = sub.choices["verify"]
    choices = {a.dest: tuple(a.choices) for a in verify._actions if a.choices}
    assert choices["solver"] == SOLVERS and choices["mode"] == MODES
    bad_values = (("mode", "fast"), ("solver", "gurobi"), ("replay", "x"), ("bound_method", "lp"))
    for field, bad in bad_values:
        with pytest.raises(InputError, match=bad):
            VerifyConfig(**{field: bad})

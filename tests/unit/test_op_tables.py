"""Every op of the closed op set has a row in every stage table (or an explicit NOT_SUPPORTED),
and the tables agree with the capabilities each op class declares."""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

import pytest

from completeverify import graph as g
from completeverify.bounds.backward import BACKWARD
from completeverify.bounds.forward import FORWARD, FORWARD_ERROR
from completeverify.bounds.interval import IBP, MAGNITUDE
from completeverify.bounds.optimize import ALPHA
from completeverify.bounds.relax import RELAX
from completeverify.milp.encoder import ENCODERS

OPS = g.OPS
COMPUTED = [op for op in OPS if op is not g.Input]  # the input starts every walk: no row needed
ROOT = Path(__file__).resolve().parents[2] / "completeverify"


def _supported(row: object) -> bool:
    """A real row (a function), not the NOT_SUPPORTED marker."""
    return callable(row) and not isinstance(row, g.NotSupported)


def test_op_set_is_closed() -> None:
    """OPS lists exactly the op classes of graph.py, the Op union agrees, each declares caps."""
    declared = {
        obj
        for _, obj in inspect.getmembers(g, inspect.isclass)
        if obj.__module__ == g.__name__ and isinstance(getattr(obj, "caps", None), g.Capabilities)
    }
    assert declared == set(OPS)
    assert set(typing.get_args(g.Op)) == set(OPS)
    assert len(set(OPS)) == len(OPS)


@pytest.mark.parametrize("table,name", [(IBP, "IBP"), (FORWARD, "FORWARD"), (ENCODERS, "ENCODERS")])
def test_every_op_has_a_row(table: dict, name: str) -> None:
    """IBP, FORWARD and ENCODERS have a row or NOT_SUPPORTED for every computed op."""
    need = set(OPS) if name == "ENCODERS" else set(COMPUTED)
    missing = sorted(op.__name__ for op in need - set(table))
    assert not missing, f"{name} has no row for {missing}"
    assert set(table) <= set(OPS), f"{name} has rows for ops outside the closed set"
    for op, row in table.items():
        assert _supported(row) or row is g.NOT_SUPPORTED, (name, op)


def test_ibp_supports_every_op() -> None:
    """Every op can be bounded by intervals (the bound stage never refuses a graph)."""
    assert all(_supported(IBP[op]) for op in COMPUTED)


def test_crown_rows_agree_with_caps() -> None:
    """CROWN: each computed op is exactly one of affine (BACKWARD row) or activation (RELAX)."""
    for op in COMPUTED:
        assert (op in BACKWARD) == op.caps.affine, op
        assert (op in RELAX) == op.caps.activation, op
        assert op.caps.affine != op.caps.activation, op
    assert all(_supported(r) for r in list(BACKWARD.values()) + list(RELAX.values()))


def test_every_walk_step_bounds_its_rounding() -> None:
    """A backward walk bounds the rounding of each step (bounds/rounding.py): affine ops by
    a MAGNITUDE row, activations by their relaxation's ``magnitude``; a forward step by its
    FORWARD_ERROR row."""
    for op in COMPUTED:
        assert (op in MAGNITUDE) == op.caps.affine, op
    assert all(_supported(r) for r in MAGNITUDE.values())
    import torch

    lo, hi = -torch.ones(1, 4, dtype=torch.float64), torch.ones(1, 4, dtype=torch.float64)
    for op, build in RELAX.items():
        if op is g.MaxPool:
            rx = build(op, {"windows": torch.tensor([[0, 1], [2, 3]])}, 4, lo, hi)
        else:
            rx = build(op(0.1) if op is g.LeakyRelu else op(), {}, 4, lo, hi)
        mag = rx.magnitude(lo.abs())
        assert bool((mag >= 0).all()) and bool((mag > 0).any()), op
    assert {op for op, row in FORWARD.items() if _supported(row)} == set(FORWARD_ERROR)


def test_alpha_rows_agree_with_caps() -> None:
    """ALPHA covers every activation; a real row iff the op declares optimisable slopes."""
    assert set(ALPHA) == {op for op in OPS if op.caps.activation}
    for op, row in ALPHA.items():
        assert _supported(row) == op.caps.optimisable_slopes, op


def test_milp_rows_agree_with_caps() -> None:
    """The exact MILP encodes an op iff the op declares itself piecewise linear."""
    for op in OPS:
        assert _supported(ENCODERS[op]) == op.caps.piecewise_linear, op


def test_capabilities_are_consistent() -> None:
    """Splittable ops are piecewise-linear activations; affine ops are piecewise linear."""
    for op in OPS:
        c = op.caps
        if c.splittable:
            assert c.activation and c.piecewise_linear, op
        if c.affine:
            assert c.piecewise_linear and not c.optimisable_slopes, op
        if c.optimisable_slopes:
            assert c.activation, op
    assert set(g.AFFINE_OPS) == {op for op in OPS if op.caps.affine}
    assert set(g.ACTIVATION_OPS) == {op for op in OPS if op.caps.activation}


def test_forward_supports_only_single_input_ops() -> None:
    """FORWARD walks chains: its rows are for one-input ops only."""
    for op, row in FORWARD.items():
        if _supported(row):
            assert op not in (g.Add, g.Concat), op


# fast paths that are not capability tests: CROWN rows e_k through a Linear are rows of W
ALLOWED = {("bounds/engine.py", "Linear")}
STAGES = [
    "bounds/engine.py",
    "bounds/forward.py",
    "bounds/optimize.py",
    "bounds/relax.py",
    "milp/encoder.py",
]


@pytest.mark.parametrize("rel", STAGES)
def test_stages_do_not_dispatch_on_op_classes(rel: str) -> None:
    """The table-driven stages never test ``isinstance(x, <op class>)`` on an op."""
    names = {op.__name__ for op in OPS if op is not g.Input} | {
        "ACTIVATIONS",
        "ACTIVATION_OPS",
        "AFFINE_OPS",
        "PIECEWISE_LINEAR_OPS",
    }
    tree = ast.parse((ROOT / rel).read_text())
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance":
            target = node.args[1]
            found = {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
            if {n for n in found & names if (rel, n) not in ALLOWED}:
                bad.append(f"{rel}:{node.lineno}")
    assert not bad, f"isinstance dispatch on op classes: {bad}"


def test_no_module_reaches_into_the_bound_engine() -> None:
    """Stages use BoundEngine.walk and Refinement: no ``._walk`` / ``._crown_node`` reaches and
    no subclass of the engine outside bounds/engine.py."""
    bad = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "bounds/engine.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            private = ("_walk", "_crown_node", "_prepare")
            if isinstance(node, ast.Attribute) and node.attr in private:
                bad.append(f"{rel}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if "BoundEngine" in bases:
                    bad.append(f"{rel}:{node.lineno} subclasses BoundEngine")
    assert not bad, bad

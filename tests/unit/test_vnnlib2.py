"""VNN-LIB 2.0: version detection, every supported construct against its 1.0 twin, clear errors
for what the verifier does not support, and one 2.0 property verified end to end."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paths import REPO

import completeverify as cv
from completeverify.errors import PropertyError
from completeverify.vnnlib import detect_version, parse_vnnlib

from nets import vnnlib_text

ROOT = REPO
HEAD = (
    "(vnnlib-version <2.0>)\n"
    "(declare-network N (declare-input X float32 [{n}]) (declare-output Y float32 [{m}]))\n"
)


def v2(body: str, n: int = 3, m: int = 2) -> str:
    """A 2.0 property over one network with input X [n] and output Y [m]."""
    return HEAD.format(n=n, m=m) + body


def v1(body: str, n: int = 3, m: int = 2) -> str:
    """The same body in 1.0 (X[i] -> X_i)."""
    decls = [f"(declare-const X_{i} Real)" for i in range(n)] + [
        f"(declare-const Y_{j} Real)" for j in range(m)
    ]
    return "\n".join(decls) + "\n" + re.sub(r"\b([XY])\[(\d+)\]", r"\1_\2", body)


BOX = (
    "(assert (and (>= X[0] -1.0) (<= X[0] 1.0) (>= X[1] 0.0) (<= X[1] 0.5)"
    " (>= X[2] -0.25) (<= X[2] 0.25)))\n"
)


def test_detect_version():
    assert detect_version("(declare-const X_0 Real)") == (1, 0)
    assert detect_version("; comment\n  ; more\n(vnnlib-version <2.0>)\n") == (2, 0)
    assert detect_version("(vnnlib-version <1.0>)") == (1, 0)
    assert detect_version("(assert (<= X_0 1.0))\n(vnnlib-version <2.0>)") == (1, 0)  # only leading
    ten = parse_vnnlib("(vnnlib-version <1.0>)\n" + v1(BOX + "(assert (<= Y[0] 0.0))\n"))
    assert ten.n_inputs == 3
    with pytest.raises(PropertyError, match="unsupported VNN-LIB version 3.0"):
        parse_vnnlib("(vnnlib-version <3.0>)\n")


@pytest.mark.parametrize(
    "body",
    [
        "(assert (<= Y[0] Y[1]))",
        "(assert (< Y[0] 0.5))",
        "(assert (>= Y[1] -0.5))",
        "(assert (> Y[1] 0.5))",
        "(assert (== Y[0] 0.25))",
        "(assert (<= (+ Y[0] (* 2.0 Y[1])) 1.0))",
        "(assert (<= (- Y[0] Y[1] 0.25) 0.5))",
        "(assert (<= (- Y[0]) 0.5))",
        "(assert (or (<= Y[0] 0.0) (and (>= Y[1] 1.0) (<= Y[0] 3.0))))",
        "(assert (or (<= Y[0] 0.0) (<= Y[1] 0.0)))\n(assert (or (>= Y[0] -1.0) (>= Y[1] -2.0)))",
        "(assert (<= Y[0] 0.50000000000000000001))",
    ],
)
def test_each_construct_matches_its_1_0_twin(body):
    prop2 = parse_vnnlib(v2(BOX + body + "\n"), n_inputs=3, n_outputs=2)
    prop1 = parse_vnnlib(v1(BOX + body.replace("==", "=") + "\n"), n_inputs=3, n_outputs=2)
    assert prop2.cases == prop1.cases and (prop2.n_inputs, prop2.n_outputs) == (3, 2)


def test_separate_asserts_with_or_are_combined():
    """ACAS Xu prop_6 shape: the input box is a union written as its own assert."""
    body = (
        "(assert (and (>= X[1] 0.0) (<= X[1] 0.5) (>= X[2] 0.0) (<= X[2] 0.5)))\n"
        "(assert (or (and (>= X[0] -1.0) (<= X[0] -0.5)) (and (>= X[0] 0.5) (<= X[0] 1.0))))\n"
        "(assert (or (<= (- Y[0] Y[1]) 0.0) (<= Y[0] -3.0)))\n"
    )
    prop = parse_vnnlib(v2(body))
    assert len(prop.cases) == 2 and all(len(c.polytopes) == 2 for c in prop.cases)
    assert sorted(c.lower[0] for c in prop.cases) == [-1.0, 0.5]
    assert prop.cases == parse_vnnlib(v1(body)).cases


def test_multidimensional_indices_are_flattened_in_c_order():
    text = (
        "(vnnlib-version <2.0>)\n(declare-network N (declare-input X float64 [1,2,2]) "
        "(declare-output Y float64 [2,1]))\n"
        "(assert (and (>= X[0,0,0] 0.0) (<= X[0,0,0] 1.0) (>= X[0,0,1] 2.0) (<= X[0,0,1] 3.0)"
        " (>= X[0,1,0] 4.0) (<= X[0,1,0] 5.0) (>= X[0,1,1] 6.0) (<= X[0,1,1] 7.0)))\n"
        "(assert (<= Y[1,0] 0.0))\n"
    )
    (case,) = parse_vnnlib(text).cases
    assert case.lower.tolist() == [0, 2, 4, 6] and case.upper.tolist() == [1, 3, 5, 7]
    assert case.polytopes[0].C.tolist() == [[0.0, 1.0]]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            (
                "(vnnlib-version <2.0>)\n"
                "(declare-network A (declare-input X float32 [2]) (declare-output Y float32 [1]))\n"
                "(declare-network B (declare-input X2 float32 [2])"
                " (declare-output Y2 float32 [1]))\n"
                "(assert (<= Y[0] Y2[0]))"
            ),
            "a property over 2 networks ('A', 'B')",
        ),
        (
            (
                "(vnnlib-version <2.0>)\n"
                "(declare-network N (declare-input X float32 [2])"
                ' (declare-hidden H float32 [2] "h")'
                " (declare-output Y float32 [1]))\n(assert (<= H[0] 0.5))"
            ),
            "declare-hidden 'H'",
        ),
        (
            (
                "(vnnlib-version <2.0>)\n"
                "(declare-network N (declare-input X float32 [2])"
                " (declare-input Z float32 [2])"
                " (declare-output Y float32 [1]))\n(assert (<= Y[0] 0.5))"
            ),
            "with 2 inputs",
        ),
        (
            (
                "(vnnlib-version <2.0>)\n"
                "(declare-network N (declare-input X int8 [2]) (declare-output Y float32 [1]))\n"
                "(assert (<= X[0] 1))"
            ),
            "element type I8",
        ),
        (v2(BOX + "(assert (!= Y[0] 0.5))\n"), "'!='"),
        (v2("(assert (<= X[0] 1e-5))\n"), "write 0.00001 (not 1e-5)"),
        (v2("(assert (<= X[0] 1))\n"), "1.0 (not 1)"),
        (v2("(assert (<= X[7] 1.0))\n"), "out of bounds"),
        (
            v2("(assert (<= X[0] 1.0))\n(assert (<= Y[0] 1.0))\n"),
            ":2:0: VNN-LIB 2.0: X[0] has no lower bound",
        ),
        (
            v2(BOX + "(assert (and (>= X[0] 2.0) (<= Y[0] 1.0)))\n"),
            ":4:0: VNN-LIB 2.0: empty input box: X[0]",
        ),
    ],
)
def test_unsupported_and_bad_input_name_the_construct(text, message):
    with pytest.raises(PropertyError) as info:
        parse_vnnlib(text, "p.vnnlib")
    assert str(info.value).startswith("p.vnnlib") and message in str(info.value)
    assert "\n" not in str(info.value)


def test_sizes_are_checked_against_the_network():
    with pytest.raises(PropertyError, match="declares 3 input variables but the network has 5"):
        parse_vnnlib(v2(BOX + "(assert (<= Y[0] 0.0))\n"), n_inputs=5, n_outputs=2)


@pytest.mark.parametrize("kind", ["sat", "unsat"])
def test_shipped_2_0_property_verifies_end_to_end(kind):
    net = ROOT / "examples" / "mlp.onnx"
    two = ROOT / "examples" / f"mlp_{kind}_v2.vnnlib"
    assert (
        cv.load_vnnlib(two).cases == cv.load_vnnlib(ROOT / "examples" / f"mlp_{kind}.vnnlib").cases
    )
    result = cv.verify(net, two, timeout=60)
    assert result.status.value == kind
    if kind == "sat":
        assert result.counterexample is not None


def test_the_pypi_package_is_found_from_the_repository_root():
    """Run from the root, `import vnnlib` is this repository's folder; 2.0 must still work."""
    code = (
        "import vnnlib, completeverify.vnnlib as v; "
        "p = v.load_vnnlib('examples/mlp_unsat_v2.vnnlib'); print(len(p.cases), vnnlib.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("1 ")


def _num(value: float) -> str:
    """A float in the strict 2.0 syntax (digits on both sides of the point, no exponent)."""
    return np.format_float_positional(value, unique=True, trim="0")


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_random_properties_read_the_same_in_1_0_and_2_0(data):
    n = data.draw(st.integers(1, 4))
    m = data.draw(st.integers(1, 3))
    num = st.floats(-100, 100, allow_nan=False, allow_subnormal=False, width=64)
    lower = [data.draw(num) for _ in range(n)]
    upper = [lo + abs(data.draw(num)) for lo in lower]
    polytopes = []
    for _ in range(data.draw(st.integers(1, 3))):
        rows = data.draw(st.integers(1, 3))
        C = np.array(
            [
                [data.draw(st.sampled_from([-2.0, -1.0, 0.0, 0.5, 1.0])) for _ in range(m)]
                for _ in range(rows)
            ]
        )
        C[:, 0] = np.where(C[:, 0] == 0, 1.0, C[:, 0])
        polytopes.append((C, np.array([data.draw(num) for _ in range(rows)])))
    one = parse_vnnlib(vnnlib_text(np.array(lower), np.array(upper), polytopes))
    box = " ".join(
        f"(>= X[{i}] {_num(lo)}) (<= X[{i}] {_num(hi)})"
        for i, (lo, hi) in enumerate(zip(lower, upper))
    )
    terms = []
    for C, d in polytopes:
        atoms = []
        for row, dk in zip(C, d):
            lhs = " ".join(f"(* {_num(c)} Y[{j}])" for j, c in enumerate(row) if c != 0)
            atoms.append(f"(<= (+ {lhs} 0.0) {_num(dk)})")
        terms.append("(and " + " ".join(atoms) + ")")
    two = parse_vnnlib(v2(f"(assert (and {box}))\n(assert (or {' '.join(terms)}))\n", n, m))
    assert two.cases == one.cases
    for case in two.cases:  # the box and rows are exactly the floats written
        assert case.lower.tolist() == lower and case.upper.tolist() == upper


def test_a_number_the_package_cannot_parse_is_a_property_error():
    """A subnormal literal makes the package's C++ parser throw; the reader names it, no crash."""
    text = v2(BOX + f"(assert (<= Y[0] {_num(2.225073858507e-311)}))\n")
    with pytest.raises(PropertyError, match="cannot parse"):
        parse_vnnlib(text)

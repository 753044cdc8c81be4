"""Tests of the VNN-LIB 1.0 reader (completeverify.vnnlib)."""

from __future__ import annotations

import gzip
import math
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from paths import SHARED_BENCHMARKS

from completeverify.errors import PropertyError
from completeverify.vnnlib import Case, Polytope, Property, load_vnnlib, parse_vnnlib

BENCHMARKS = SHARED_BENCHMARKS


def decl(n_in: int, n_out: int) -> str:
    """Declarations of X_0..X_{n_in-1} and Y_0..Y_{n_out-1}, one per line."""
    lines = [f"(declare-const X_{i} Real)" for i in range(n_in)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    return "\n".join(lines) + "\n"


def box(i: int, lo: float, hi: float) -> str:
    """Two bound atoms for X_i."""
    return f"(>= X_{i} {lo}) (<= X_{i} {hi})"


def unit_box(n_in: int) -> str:
    """Top-level asserts bounding every input in [0, 1]."""
    return "".join(f"(assert (>= X_{i} 0))\n(assert (<= X_{i} 1))\n" for i in range(n_in))


def rows(polytope: Polytope) -> list[tuple[list[float], float]]:
    """The polytope's rows as (coefficients, rhs) lists for easy comparison."""
    return [(list(c), float(d)) for c, d in zip(polytope.C.tolist(), polytope.d.tolist())]


def error_of(text: str, **kwargs) -> PropertyError:
    """The PropertyError that parsing ``text`` raises."""
    with pytest.raises(PropertyError) as info:
        parse_vnnlib(text, **kwargs)
    return info.value


# ---------------------------------------------------------------- basics


def test_single_box_and_output_row():
    prop = parse_vnnlib(decl(2, 3) + unit_box(2) + "(assert (<= Y_1 Y_2))\n")
    assert isinstance(prop, Property)
    assert (prop.n_inputs, prop.n_outputs, prop.source) == (2, 3, "<string>")
    (case,) = prop.cases
    assert isinstance(case, Case)
    assert case.lower.dtype == np.float64 and case.lower.shape == (2,)
    np.testing.assert_array_equal(case.lower, [0, 0])
    np.testing.assert_array_equal(case.upper, [1, 1])
    (poly,) = case.polytopes
    assert poly.C.dtype == np.float64 and poly.C.shape == (1, 3) and poly.d.shape == (1,)
    assert rows(poly) == [([0.0, 1.0, -1.0], 0.0)]


def test_constants_on_either_side():
    text = (
        decl(2, 2)
        + """
(assert (<= 0.25 X_0)) (assert (>= 0.75 X_0))
(assert (>= X_1 -1)) (assert (<= X_1 1))
(assert (<= 1 Y_0))
(assert (>= 2 Y_1))
"""
    )
    (case,) = parse_vnnlib(text).cases
    np.testing.assert_array_equal(case.lower, [0.25, -1])
    np.testing.assert_array_equal(case.upper, [0.75, 1])
    assert rows(case.polytopes[0]) == [([-1.0, 0.0], -1.0), ([0.0, 1.0], 2.0)]


@pytest.mark.parametrize("token", ["1e-3", "-.5", "+2", "5.", "1E+07", "-0.5", "0", "-0", ".5e1"])
def test_float_syntax(token):
    text = decl(1, 1) + f"(assert (>= X_0 {token}))\n(assert (<= X_0 1e9))\n"
    text += f"(assert (<= Y_0 {token}))"
    (case,) = parse_vnnlib(text).cases
    assert case.lower[0] == float(token)
    assert case.polytopes[0].d[0] == float(token)


@pytest.mark.parametrize("token", ["1.2.3", "inf", "nan", "0x10", "1_000", "--1", "1e", "e5"])
def test_bad_numbers_rejected(token):
    err = error_of(decl(1, 1) + f"(assert (<= Y_0 {token}))")
    assert err.line == 3 and err.column == 17


def test_number_out_of_range():
    err = error_of(decl(1, 1) + "(assert (<= Y_0 1e400))")
    assert "out of float64 range" in str(err) and (err.line, err.column) == (3, 17)


def test_comments_everywhere():
    text = """; header (with parens) ( ((
(declare-const X_0 Real) ; trailing ) comment
(declare-const Y_0 Real);no space
(assert ; inside a command
  (<= X_0 ; between tokens
      1))
(assert (>= X_0 0))
(assert (<= Y_0 2)) ; last comment without newline (assert (<= Y_0 -5))"""
    (case,) = parse_vnnlib(text).cases
    assert (case.lower[0], case.upper[0]) == (0, 1)
    assert rows(case.polytopes[0]) == [([1.0], 2.0)]


def test_no_space_between_parens():
    text = (
        "(declare-const X_0 Real)(declare-const Y_0 Real)(declare-const Y_1 Real)"
        "(assert(and(>= X_0 0)(<= X_0 1)))(assert(or(and(<= Y_0 Y_1))(and(>= Y_0 3))))"
    )
    (case,) = parse_vnnlib(text).cases
    assert [rows(p) for p in case.polytopes] == [[([1.0, -1.0], 0.0)], [([-1.0, 0.0], -3.0)]]


def test_tabs_crlf_and_bom():
    text = "\ufeff" + decl(1, 1).replace("\n", "\r\n")
    text += "(assert\t(and (> X_0 0)\t(< X_0 1)))\r\n(assert (< Y_0 0))"
    (case,) = parse_vnnlib(text).cases
    assert (case.lower[0], case.upper[0]) == (0, 1)


def test_strict_comparisons_are_non_strict_and_routed_correctly():
    # nnv PR #319: '>' must give a LOWER bound, '<' an UPPER bound.
    text = (
        decl(2, 2)
        + """
(assert (> X_0 -1)) (assert (< X_0 1))
(assert (< -2 X_1)) (assert (> 2 X_1))
(assert (> Y_0 3)) (assert (< Y_1 4))
"""
    )
    (case,) = parse_vnnlib(text).cases
    np.testing.assert_array_equal(case.lower, [-1, -2])
    np.testing.assert_array_equal(case.upper, [1, 2])
    assert rows(case.polytopes[0]) == [([-1.0, 0.0], -3.0), ([0.0, 1.0], 4.0)]


def test_unary_and_binary_minus_plus():
    text = (
        decl(1, 3)
        + unit_box(1)
        + """
(assert (<= Y_0 (- 3)))
(assert (>= (- Y_1) 1))
(assert (<= (- Y_0 Y_1 Y_2) (+ 1 0.5)))
(assert (<= (+ Y_2 (- 2)) 0))
"""
    )
    (case,) = parse_vnnlib(text).cases
    assert rows(case.polytopes[0]) == [
        ([1.0, 0.0, 0.0], -3.0),
        ([0.0, 1.0, 0.0], -1.0),
        ([1.0, -1.0, -1.0], 1.5),
        ([0.0, 0.0, 1.0], 2.0),
    ]


def test_multiplication_terms():
    text = (
        decl(2, 2)
        + """
(assert (<= (* 2 X_0) 1)) (assert (<= (* -1 X_0) 1))
(assert (>= (* X_1 4) 1)) (assert (<= X_1 1))
(assert (<= (+ (* 2 Y_0) (* Y_1 -3)) 1))
(assert (<= (* 2 3 Y_0) (* 0.5 4)))
"""
    )
    (case,) = parse_vnnlib(text).cases
    np.testing.assert_array_equal(case.lower, [-1, 0.25])
    np.testing.assert_array_equal(case.upper, [0.5, 1])
    assert rows(case.polytopes[0]) == [([2.0, -3.0], 1.0), ([6.0, 0.0], 2.0)]


def test_inexact_arithmetic_rounds_outward():
    text = decl(1, 1) + "(assert (<= (* 3 X_0) 1)) (assert (>= (* 3 X_0) 1))\n"
    text += "(assert (<= Y_0 (+ 0.1 0.2)))"
    (case,) = parse_vnnlib(text).cases
    assert Fraction(float(case.lower[0])) <= Fraction(1, 3) <= Fraction(float(case.upper[0]))
    assert Fraction(float(case.polytopes[0].d[0])) >= Fraction(0.1) + Fraction(0.2)


def test_nonlinear_and_division():
    assert "nonlinear" in str(error_of(decl(1, 2) + "(assert (<= (* Y_0 Y_1) 1))"))
    text = decl(1, 1) + unit_box(1) + "(assert (<= (/ Y_0 4) 1))"
    assert rows(parse_vnnlib(text).cases[0].polytopes[0]) == [([0.25], 1.0)]
    assert "division by zero" in str(error_of(decl(1, 1) + "(assert (<= (/ Y_0 0) 1))"))


def test_equality_and_chained_comparison():
    text = decl(2, 1) + "(assert (= X_0 0.5)) (assert (<= -1 X_1 1)) (assert (<= 0 Y_0 2))"
    (case,) = parse_vnnlib(text).cases
    np.testing.assert_array_equal(case.lower, [0.5, -1])
    np.testing.assert_array_equal(case.upper, [0.5, 1])
    assert rows(case.polytopes[0]) == [([-1.0], 0.0), ([1.0], 2.0)]


def test_single_disjunct_or_and_unit_clauses():
    # Marabou #563/#607: a one-argument or/and is just its argument.
    text = decl(1, 2) + "(assert (or (and (>= X_0 0) (<= X_0 1))))\n"
    text += "(assert (or (and (<= Y_0 Y_1))))"
    (case,) = parse_vnnlib(text).cases
    assert [rows(p) for p in case.polytopes] == [[([1.0, -1.0], 0.0)]]
    unit = parse_vnnlib(decl(1, 2) + "(assert (>= X_0 0))(assert (<= X_0 1))(assert (<= Y_0 Y_1))")
    assert unit == parse_vnnlib(text)


# ---------------------------------------------------------------- DNF structure


def test_nested_and_or_both_ways():
    text = (
        decl(1, 3)
        + unit_box(1)
        + """
(assert (and (or (and (<= Y_0 0) (or (<= Y_1 0) (<= Y_2 0))) (>= Y_0 5)) (<= Y_2 9)))
"""
    )
    (case,) = parse_vnnlib(text).cases
    assert [rows(p) for p in case.polytopes] == [
        [([1, 0, 0], 0.0), ([0, 1, 0], 0.0), ([0, 0, 1], 9.0)],
        [([1, 0, 0], 0.0), ([0, 0, 1], 0.0), ([0, 0, 1], 9.0)],
        [([-1, 0, 0], -5.0), ([0, 0, 1], 9.0)],
    ]


def test_constraint_after_or_conjoins():
    # nnv PR #315: the assert after the or must be ANDed into every disjunct,
    # not appended as one more disjunct.
    text = (
        decl(1, 3)
        + unit_box(1)
        + """
(assert (or (<= Y_0 0) (<= Y_1 0)))
(assert (<= Y_2 5))
"""
    )
    (case,) = parse_vnnlib(text).cases
    assert [rows(p) for p in case.polytopes] == [
        [([1, 0, 0], 0.0), ([0, 0, 1], 5.0)],
        [([0, 1, 0], 0.0), ([0, 0, 1], 5.0)],
    ]
    inside = decl(1, 3) + unit_box(1) + "(assert (and (or (<= Y_0 0) (<= Y_1 0)) (<= Y_2 5)))"
    inside = parse_vnnlib(inside)
    assert inside == parse_vnnlib(text)


def test_input_bounds_do_not_leak_between_disjuncts():
    # nnv PR #335: each disjunct's input constraints define its own box.
    text = (
        decl(2, 2)
        + """
(assert (or
  (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1) (<= Y_0 0))
  (and (>= X_0 2) (<= X_0 3) (>= X_1 -1) (<= X_1 5) (<= Y_1 0))
))
"""
    )
    first, second = parse_vnnlib(text).cases
    np.testing.assert_array_equal(first.lower, [0, 0])
    np.testing.assert_array_equal(first.upper, [1, 1])
    np.testing.assert_array_equal(second.lower, [2, -1])
    np.testing.assert_array_equal(second.upper, [3, 5])
    assert [rows(p) for p in first.polytopes] == [[([1, 0], 0.0)]]
    assert [rows(p) for p in second.polytopes] == [[([0, 1], 0.0)]]
    # X_1 bounded only in the first disjunct: the second must not inherit it.
    leaky = (
        decl(2, 1)
        + """(assert (>= X_0 0)) (assert (<= X_0 1))
(assert (or (and (>= X_1 0) (<= X_1 1)) (and (<= Y_0 0) (>= X_1 7))))"""
    )
    err = error_of(leaky)
    assert "X_1 has no upper bound" in str(err) and (err.line, err.column) == (5, 46)


def test_cross_product_of_box_or_and_output_or_groups_cases():
    # The shape of ACAS Xu property 6: two boxes times four output disjuncts.
    text = (
        decl(1, 3)
        + """
(assert (or (and (>= X_0 0) (<= X_0 1)) (and (>= X_0 2) (<= X_0 3))))
(assert (or (<= Y_1 Y_0) (<= Y_2 Y_0)))
"""
    )
    prop = parse_vnnlib(text)
    assert [(c.lower[0], c.upper[0]) for c in prop.cases] == [(0, 1), (2, 3)]
    for case in prop.cases:
        assert [rows(p) for p in case.polytopes] == [[([-1, 1, 0], 0.0)], [([-1, 0, 1], 0.0)]]


def test_term_without_output_atoms_is_fully_unsafe():
    text = decl(1, 2) + "(assert (or (and (>= X_0 0) (<= X_0 1))\n"
    text += "  (and (>= X_0 5) (<= X_0 6) (<= Y_0 1))))"
    first, second = parse_vnnlib(text).cases
    (everything,) = first.polytopes
    assert everything.C.shape == (0, 2) and everything.d.shape == (0,)
    assert second.polytopes[0].C.shape == (1, 2)


def test_equal_boxes_grouped_and_duplicates_dropped():
    text = (
        decl(1, 2)
        + """
(assert (or
  (and (>= X_0 0) (<= X_0 1) (<= Y_0 0))
  (and (>= X_0 4) (<= X_0 5) (<= Y_0 0))
  (and (<= X_0 1) (>= X_0 -0) (<= Y_1 0))
  (and (>= X_0 0) (<= X_0 1) (<= Y_0 0))
  (and (>= X_0 0) (<= X_0 1) (<= Y_0 0) (<= Y_0 0))
))"""
    )
    first, second = parse_vnnlib(text).cases
    assert [rows(p) for p in first.polytopes] == [[([1, 0], 0.0)], [([0, 1], 0.0)]]
    assert [rows(p) for p in second.polytopes] == [[([1, 0], 0.0)]]


def test_tightest_bound_wins_and_zero_width_box_allowed():
    text = (
        decl(2, 1)
        + """
(assert (>= X_0 -5)) (assert (>= X_0 0.5)) (assert (<= X_0 9)) (assert (<= X_0 0.5))
(assert (>= X_1 1)) (assert (<= X_1 2)) (assert (<= X_1 1.5))
(assert (<= Y_0 0))"""
    )
    (case,) = parse_vnnlib(text).cases
    np.testing.assert_array_equal(case.lower, [0.5, 1])
    np.testing.assert_array_equal(case.upper, [0.5, 1.5])


def test_constant_atoms():
    base = decl(1, 1) + unit_box(1)
    (case,) = parse_vnnlib(base + "(assert (or (<= 1 0) (<= Y_0 3)))").cases
    assert [rows(p) for p in case.polytopes] == [[([1.0], 3.0)]]
    (case,) = parse_vnnlib(base + "(assert (and (<= 0 1) (<= Y_0 3)))").cases
    assert [rows(p) for p in case.polytopes] == [[([1.0], 3.0)]]
    (case,) = parse_vnnlib(base + "(assert (<= Y_0 Y_0))").cases
    assert case.polytopes[0].C.shape == (0, 1)
    assert parse_vnnlib(base + "(assert (and (<= Y_0 3) (> 0 1)))").cases == ()
    assert parse_vnnlib(base + "(assert false)").cases == ()


def test_deep_nesting_does_not_recurse():
    depth = 5000
    formula = "(and " * depth + "(<= Y_0 1)" + ")" * depth
    (case,) = parse_vnnlib(decl(1, 1) + unit_box(1) + f"(assert {formula})").cases
    assert rows(case.polytopes[0]) == [([1.0], 1.0)]


def test_dnf_blowup_is_refused():
    text = decl(1, 2) + unit_box(1) + "(assert (or (<= Y_0 0) (<= Y_1 0)))\n" * 21
    err = error_of(text)
    assert "2097152" in str(err) and "limit" in str(err)


def test_declare_fun_and_harmless_commands():
    text = "(set-logic QF_LRA)\n(declare-fun X_0 () Real)\n(declare-const Y_0 Real)\n"
    text += unit_box(1) + "(assert (<= Y_0 1))\n(check-sat)\n(get-model)\n(exit)\n"
    assert parse_vnnlib(text).n_inputs == 1


def test_counts_given_and_matching():
    prop = parse_vnnlib(decl(2, 1) + unit_box(2) + "(assert (<= Y_0 0))", n_inputs=2, n_outputs=1)
    assert (prop.n_inputs, prop.n_outputs) == (2, 1)


def test_equality_and_hash_of_results():
    text = decl(1, 1) + unit_box(1) + "(assert (<= Y_0 0))"
    a, b = parse_vnnlib(text), parse_vnnlib(text)
    assert a == b and hash(a.cases[0]) == hash(b.cases[0])
    assert a != parse_vnnlib(text.replace("(<= Y_0 0)", "(<= Y_0 1)"))


# ---------------------------------------------------------------- errors


def test_error_unexpected_close_paren():
    err = error_of(decl(1, 1) + "(assert (<= Y_0 0)))")
    assert "unbalanced" in str(err) and (err.line, err.column) == (3, 20)
    assert str(err).startswith("<string>:3:20: ")


def test_error_unclosed_paren():
    err = error_of(decl(1, 1) + "(assert (<= Y_0 0)\n(assert (<= X_0 0))")
    assert "never closed" in str(err) and (err.line, err.column) == (3, 1)


def test_error_undeclared_variable():
    err = error_of(decl(1, 1) + "(assert\n   (<= Y_0 X_1))")
    assert "undeclared variable 'X_1'" in str(err) and (err.line, err.column) == (4, 12)


def test_error_variable_used_before_declaration():
    err = error_of("(declare-const X_0 Real)\n(assert (<= Y_0 0))\n(declare-const Y_0 Real)")
    assert "undeclared" in str(err) and (err.line, err.column) == (2, 13)


def test_error_empty_box():
    # Marabou #813: contradictory bounds must not be silently dropped.
    text = decl(4, 1) + unit_box(3)
    text += "(assert (>= X_3 1.5))\n(assert (<= X_3 0.5))\n(assert (<= Y_0 0))"
    err = error_of(text)
    assert "empty input box: X_3 lower 1.5 > upper 0.5" in str(err)
    assert (err.line, err.column) == (13, 9)


def test_error_unbounded_input():
    text = decl(2, 1) + "(assert (>= X_0 0)) (assert (<= X_0 1)) (assert (>= X_1 0))\n"
    err = error_of(text + "(assert (<= Y_0 0))")
    assert "X_1 has no upper bound" in str(err) and (err.line, err.column) == (2, 16)
    err = error_of(decl(2, 1) + "(assert (>= X_0 0)) (assert (<= X_0 1))")
    assert "X_1 has no lower or upper bound" in str(err)


def test_error_mixing_inputs_and_outputs():
    err = error_of(decl(1, 1) + unit_box(1) + "  (assert (<= X_0 Y_0))")
    assert "mix" in str(err) and (err.line, err.column) == (5, 11)
    err = error_of(decl(1, 1) + unit_box(1) + "(assert (<= (+ X_0 Y_0) 1))")
    assert "mix" in str(err) and (err.line, err.column) == (5, 9)


def test_error_general_linear_input_constraint():
    err = error_of(decl(2, 1) + "(assert (<= (+ X_0 X_1) 1))")
    assert "bounds on single variables" in str(err) and (err.line, err.column) == (4, 9)
    assert "single variables" in str(error_of(decl(2, 1) + "(assert (<= X_0 X_1))"))


def test_error_count_mismatch():
    text = decl(5, 2) + unit_box(5) + "(assert (<= Y_0 0))"
    err = error_of(text, n_inputs=6)
    assert "5 input" in str(err) and "6" in str(err) and (err.line, err.column) == (5, 16)
    err = error_of(text, n_outputs=3)
    assert "2 output" in str(err) and "3" in str(err) and (err.line, err.column) == (7, 16)


def test_error_index_gap():
    text = "(declare-const X_0 Real)\n(declare-const X_2 Real)\n(declare-const Y_0 Real)\n"
    text += "(assert (<= Y_0 0))"
    err = error_of(text)
    assert "X_1 is missing" in str(err) and (err.line, err.column) == (2, 16)


def test_error_unknown_command_and_operator():
    err = error_of(decl(1, 1) + "\n  (maximize Y_0)")
    assert "unknown command 'maximize'" in str(err) and (err.line, err.column) == (4, 4)
    err = error_of(decl(1, 1) + "(assert (not (<= Y_0 0)))")
    assert "unknown operator 'not'" in str(err) and (err.line, err.column) == (3, 10)


def test_error_malformed_expressions():
    for bad, where in [
        ("(assert ())", (3, 9)),
        ("(assert (<= Y_0))", (3, 9)),
        ("(assert (<= Y_0 0) (<= Y_0 1))", (3, 2)),
        ("(assert (or))", (3, 10)),
        ("stray", (3, 1)),
        ("(assert ((<= Y_0 0)))", (3, 10)),
        ("(assert Y_0)", (3, 9)),
        ("(declare-const Z Real)", (3, 16)),
        ("(declare-const X_0 Real)", (3, 16)),
        ("(declare-const X_1 Int)", (3, 20)),
        ("(declare-const X_01 Real)", (3, 16)),
    ]:
        err = error_of(decl(1, 1) + bad)
        assert (err.line, err.column) == where, (bad, str(err))


def test_error_empty_property():
    err = error_of(decl(1, 1) + "; nothing asserted\n")
    assert "no assertions" in str(err)
    assert "no output variables" in str(error_of("(declare-const X_0 Real)\n(assert (<= X_0 0))"))


def test_error_missing_file(tmp_path):
    path = tmp_path / "absent.vnnlib"
    with pytest.raises(PropertyError, match="file not found"):
        load_vnnlib(path)


# ---------------------------------------------------------------- files


def test_load_plain_and_gzip(tmp_path):
    text = decl(1, 1) + unit_box(1) + "(assert (<= Y_0 0))\n"
    expected = parse_vnnlib(text)
    plain = tmp_path / "p.vnnlib"
    plain.write_text(text)
    zipped = tmp_path / "p.vnnlib.gz"
    zipped.write_bytes(gzip.compress(text.encode()))
    hidden = tmp_path / "q.vnnlib"  # gzip data without the suffix
    hidden.write_bytes(gzip.compress(text.encode()))
    fake = tmp_path / "r.vnnlib.gz"  # plain text with a .gz suffix
    fake.write_text(text)
    for path in (plain, zipped, hidden, fake, str(plain)):
        prop = load_vnnlib(path)
        assert prop.cases == expected.cases and prop.source == str(path)
    corrupt = tmp_path / "c.vnnlib.gz"
    corrupt.write_bytes(gzip.compress(text.encode())[:20])
    with pytest.raises(PropertyError, match="gzip"):
        load_vnnlib(corrupt)


def test_error_location_names_file(tmp_path):
    path = tmp_path / "bad.vnnlib"
    path.write_text(decl(1, 1) + "(assert (<= Y_0 X_9))")
    with pytest.raises(PropertyError) as info:
        load_vnnlib(path)
    assert str(info.value).startswith(f"{path}:3:17: ")


def test_large_file_parses_fast():
    rng = np.random.default_rng(0)
    n_in, n_disjuncts = 36, 5000
    lows = rng.uniform(-1, 0, size=(n_disjuncts, n_in))
    parts = [decl(n_in, 4), "(assert (or\n"]
    for k in range(n_disjuncts):
        atoms = " ".join(
            f"(>= X_{i} {float(lows[k, i])!r}) (<= X_{i} {float(lows[k, i] + 1)!r})"
            for i in range(n_in)
        )
        parts.append(f"  (and {atoms})\n")
    parts.append("))\n(assert (or (<= Y_0 Y_1) (<= Y_2 Y_3)))\n(assert (>= Y_0 -1))\n")
    text = "".join(parts)
    assert len(text) > 10_000_000
    start = time.perf_counter()
    prop = parse_vnnlib(text)
    elapsed = time.perf_counter() - start
    print(f"\nparsed {len(text) / 1e6:.1f} MB, {n_disjuncts} disjuncts in {elapsed:.2f} s")
    assert elapsed < 20
    assert len(prop.cases) == n_disjuncts
    np.testing.assert_array_equal(prop.cases[4321].lower, lows[4321])
    np.testing.assert_array_equal(prop.cases[4321].upper, lows[4321] + 1)
    assert [rows(p) for p in prop.cases[0].polytopes] == [
        [([1, -1, 0, 0], 0.0), ([-1, 0, 0, 0], 1.0)],
        [([0, 0, 1, -1], 0.0), ([-1, 0, 0, 0], 1.0)],
    ]


def _benchmark(relative: str) -> Path:
    """A real benchmark property, or skip when the benchmarks are absent."""
    path = BENCHMARKS / relative
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


def test_real_acasxu_prop_6_has_two_boxes():
    prop = load_vnnlib(_benchmark("acasxu/vnnlib/prop_6.vnnlib"), n_inputs=5, n_outputs=5)
    first, second = prop.cases
    assert first.upper[1] == 0.499999896 and second.upper[1] == -0.11140846
    for case in prop.cases:
        assert len(case.polytopes) == 4
        assert rows(case.polytopes[0]) == [([-1, 1, 0, 0, 0], 0.0)]


def test_real_mnist_robustness():
    directory = _benchmark("mnist_fc/vnnlib")
    path = sorted(directory.glob("*.vnnlib"))[0]
    (case,) = load_vnnlib(path, n_inputs=784, n_outputs=10).cases
    assert len(case.polytopes) == 9
    assert np.all(case.lower <= case.upper) and np.all(np.isfinite(case.lower))
    assert all(p.C.shape == (1, 10) and math.isclose(p.C.sum(), 0) for p in case.polytopes)

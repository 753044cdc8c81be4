"""Tests for completeverify.solvers: one suite of known-optimum problems run on every backend."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from completeverify.errors import SolverError
from completeverify.solvers import (
    MilpProgram,
    SolveLimits,
    SolveStatus,
    available_solvers,
    get_solver,
    safe_lp_lower_bound,
)
from completeverify.solvers.base import max_violation

INF = math.inf
BACKENDS = available_solvers()
AT_LIMIT = {SolveStatus.FEASIBLE_AT_LIMIT, SolveStatus.NO_SOLUTION_AT_LIMIT}
needs_highs = pytest.mark.skipif("highs" not in BACKENDS, reason="highspy not available")


def dense(c, A, row_lower, row_upper, col_lower, col_upper, integer, offset=0.0) -> MilpProgram:
    """A MilpProgram from a dense matrix (zeros dropped)."""
    A = np.asarray(A, dtype=float).reshape(len(row_lower), len(c))
    rows, cols = np.nonzero(A)
    return MilpProgram(
        c=np.asarray(c, float),
        col_lower=np.asarray(col_lower, float),
        col_upper=np.asarray(col_upper, float),
        A_rows=rows,
        A_cols=cols,
        A_vals=A[rows, cols],
        row_lower=np.asarray(row_lower, float),
        row_upper=np.asarray(row_upper, float),
        integrality=np.asarray(integer, dtype=bool),
        offset=offset,
    )


def small_lp() -> MilpProgram:
    """min -x - 2y + 0.5 s.t. x + y <= 4, x - y >= -2, 0 <= x, y <= 10; optimum -6.5 at (1, 3)."""
    return dense(
        [-1, -2],
        [[1, 1], [1, -1]],
        [-INF, -2],
        [4, INF],
        [0, 0],
        [10, 10],
        [False, False],
        offset=0.5,
    )


def knapsack(n: int, m: int, seed: int) -> MilpProgram:
    """Random 0/1 multi-dimensional knapsack, maximise value (minimise -value)."""
    rng = np.random.default_rng(seed)
    W = rng.integers(10, 100, size=(m, n)).astype(float)
    v = rng.integers(10, 100, size=n).astype(float)
    return dense(-v, W, [-INF] * m, W.sum(axis=1) / 2, [0] * n, [1] * n, [True] * n)


def brute_force(program: MilpProgram) -> float:
    """Optimum of a pure 0/1 program by enumeration (inf if infeasible)."""
    n = program.num_cols()
    best = INF
    for bits in itertools.product((0.0, 1.0), repeat=n):
        x = np.array(bits)
        if max_violation(program, x) <= 0.0:
            best = min(best, float(program.c @ x + program.offset))
    return best


def relu_program(sense: float, x_fixed: float | None = None) -> MilpProgram:
    """Big-M encoding of y = max(0, x), x in [-1, 2]; columns (x, y, d); minimise sense * y."""
    lx, ux = (-1.0, 2.0) if x_fixed is None else (x_fixed, x_fixed)
    A = [
        [-1, 1, 0],  # y - x >= 0
        [-1, 1, 1],  # y - x + d <= 1  (y <= x - l (1 - d), l = -1)
        [0, 1, -2],
    ]  # y - 2 d <= 0    (y <= u d, u = 2)
    return dense(
        [0, sense, 0],
        A,
        [0, -INF, -INF],
        [INF, 1, 0],
        [lx, 0, 0],
        [ux, INF, 1],
        [False, False, True],
    )


KNOWN = {
    "lp": (small_lp, -6.5),
    "equality_rows": (
        lambda: dense(
            [1, 3, 2], [[1, 1, 1], [1, 0, -1]], [1, 0], [1, 0], [0, 0, 0], [1, 1, 1], [False] * 3
        ),
        1.5,
    ),
    "free_vars_lp": (
        lambda: dense(
            [0, 1], [[-1, 1], [1, 1]], [-3, 3], [INF, INF], [-INF, -INF], [INF, INF], [False, False]
        ),
        0.0,
    ),
    "free_integer": (
        lambda: dense(
            [0, 1],
            [[-1, 1], [1, 1]],
            [-2.5, 2.5],
            [INF, INF],
            [-INF, -INF],
            [INF, INF],
            [True, False],
        ),
        0.5,
    ),
    "relu_min_y": (lambda: relu_program(1.0), 0.0),
    "relu_max_y": (lambda: relu_program(-1.0), -2.0),
    "relu_x_pos": (lambda: relu_program(1.0, 1.5), 1.5),
    "relu_x_pos_max": (lambda: relu_program(-1.0, 1.5), -1.5),
    "relu_x_neg_max": (lambda: relu_program(-1.0, -0.5), 0.0),
}


def duplicated_lp() -> MilpProgram:
    """small_lp with A split into duplicate COO entries (including a pair summing to zero)."""
    base = small_lp()
    rows = np.array([0, 0, 0, 1, 1, 1, 1, 0, 0])
    cols = np.array([0, 0, 1, 0, 1, 1, 0, 1, 1])
    vals = np.array([0.25, 0.75, 1.0, 1.0, 2.0, -3.0, 0.0, 5.0, -5.0])
    return MilpProgram(
        c=base.c,
        col_lower=base.col_lower,
        col_upper=base.col_upper,
        A_rows=rows,
        A_cols=cols,
        A_vals=vals,
        row_lower=base.row_lower,
        row_upper=base.row_upper,
        integrality=base.integrality,
        offset=base.offset,
    )


KNOWN["duplicates"] = (duplicated_lp, -6.5)


def assert_optimal(program: MilpProgram, result, expected: float) -> None:
    """OPTIMAL, a feasible x, objective and dual bound consistent with expected."""
    assert result.status is SolveStatus.OPTIMAL, result.message
    assert result.x is not None and max_violation(program, result.x) <= 1e-6
    assert result.objective == pytest.approx(expected, abs=1e-6)
    assert result.objective == pytest.approx(float(program.c @ result.x + program.offset), abs=1e-6)
    assert result.dual_bound is not None and result.dual_bound <= expected + 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(KNOWN))
def test_known_optimum(backend: str, case: str) -> None:
    """Every backend finds the known optimum of each small problem."""
    build, expected = KNOWN[case]
    program = build()
    assert_optimal(program, get_solver(backend).solve(program), expected)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_knapsack_matches_brute_force(backend: str, seed: int) -> None:
    """A small random knapsack's optimum equals enumeration; the dual bound is within the gap."""
    program = knapsack(n=10, m=2, seed=seed)
    expected = brute_force(program)
    result = get_solver(backend).solve(program, SolveLimits(mip_rel_gap=0.0, mip_abs_gap=1e-9))
    assert_optimal(program, result, expected)
    assert result.dual_bound == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_infeasible_mip(backend: str) -> None:
    """2x + 2y = 1 has no integer solution; +inf dual bound, no x."""
    program = dense([1, 1], [[2, 2]], [1], [1], [0, 0], [5, 5], [True, True])
    result = get_solver(backend).solve(program)
    assert result.status is SolveStatus.INFEASIBLE, result.message
    assert result.x is None and result.dual_bound == INF


@pytest.mark.parametrize("backend", BACKENDS)
def test_infeasible_empty_row(backend: str) -> None:
    """A row with no entries whose bounds exclude 0 makes the program infeasible."""
    program = dense([1, 1], [[0, 0], [1, 1]], [1, 0], [2, 1], [0, 0], [1, 1], [False, False])
    assert get_solver(backend).solve(program).status is SolveStatus.INFEASIBLE


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("integer", [False, True])
def test_unbounded(backend: str, integer: bool) -> None:
    """min -x s.t. x - y <= 1, x, y >= 0 is unbounded, never reported infeasible."""
    program = dense([-1, 0], [[1, -1]], [-INF], [1], [0, 0], [INF, INF], [integer, integer])
    result = get_solver(backend).solve(program)
    assert result.status is SolveStatus.UNBOUNDED, result.message
    assert result.dual_bound is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_columns(backend: str) -> None:
    """A program without columns is decided exactly from its rows."""
    empty = np.zeros(0)
    ok = MilpProgram(
        c=empty,
        col_lower=empty,
        col_upper=empty,
        A_rows=np.zeros(0, np.int64),
        A_cols=np.zeros(0, np.int64),
        A_vals=empty,
        row_lower=np.array([-1.0]),
        row_upper=np.array([0.0]),
        integrality=np.zeros(0, bool),
        offset=3.0,
    )
    result = get_solver(backend).solve(ok)
    assert result.status is SolveStatus.OPTIMAL and result.objective == 3.0
    ok.row_lower = np.array([0.5])
    ok.row_upper = np.array([1.0])
    assert get_solver(backend).solve(ok).status is SolveStatus.INFEASIBLE


@pytest.mark.parametrize("backend", BACKENDS)
def test_isolated_columns_and_zero_objective(backend: str) -> None:
    """Columns in no row with zero cost still get values inside their bounds."""
    program = dense(
        [0, 1, 0], [[0, 1, 0]], [0.5], [INF], [-3, 0, 2.5], [-1, 1, 4], [True, False, True]
    )
    assert_optimal(program, get_solver(backend).solve(program), 0.5)
    program.c = np.zeros(3)
    assert_optimal(program, get_solver(backend).solve(program), 0.0)
    program.col_lower[2], program.col_upper[2] = 2.3, 2.7  # no integer in [2.3, 2.7]
    assert get_solver(backend).solve(program).status is SolveStatus.INFEASIBLE


@pytest.mark.parametrize("seed", range(4))
def test_backends_agree_on_random_mips(seed: int) -> None:
    """Random small mixed-integer programs: every backend agrees with the others."""
    rng = np.random.default_rng(100 + seed)
    n, m = 6, 4
    A = rng.normal(size=(m, n)).round(2)
    program = dense(
        rng.normal(size=n).round(2),
        A,
        [-INF] * m,
        np.abs(A).sum(1) * 0.3,
        [-2] * n,
        [3] * n,
        rng.random(n) < 0.5,
    )
    limits = SolveLimits(mip_rel_gap=0.0, mip_abs_gap=1e-9)
    objectives = []
    for backend in BACKENDS:
        result = get_solver(backend).solve(program, limits)
        assert result.status is SolveStatus.OPTIMAL, (backend, result.message)
        assert max_violation(program, result.x) <= 1e-6
        objectives.append(result.objective)
    assert max(objectives) - min(objectives) <= 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_time_limit_is_never_a_verdict(backend: str) -> None:
    """A MIP that cannot finish in 0.2 s comes back *_AT_LIMIT, or OPTIMAL only within the limit."""
    program = knapsack(n=200, m=15, seed=0)
    limit = 0.2
    result = get_solver(backend).solve(
        program, SolveLimits(time_limit=limit, mip_rel_gap=0.0, mip_abs_gap=0.0)
    )
    assert result.status is not SolveStatus.INFEASIBLE
    if result.status is not SolveStatus.OPTIMAL:
        assert result.status in AT_LIMIT, result.message
    else:
        assert result.seconds < limit
    if result.status is SolveStatus.FEASIBLE_AT_LIMIT:
        assert max_violation(program, result.x) <= 1e-6
        assert result.objective == pytest.approx(float(program.c @ result.x), abs=1e-6)
    if result.dual_bound is not None and result.objective is not None:
        assert result.dual_bound <= result.objective + 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_node_limit_is_never_a_verdict(backend: str) -> None:
    """A node limit on a hard MIP stops the solve with a limit status."""
    program = knapsack(n=200, m=15, seed=0)
    limits = SolveLimits(time_limit=10.0, node_limit=2, mip_rel_gap=0.0, mip_abs_gap=0.0)
    result = get_solver(backend).solve(program, limits)
    assert result.status in AT_LIMIT, result.message


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_time_limit(backend: str) -> None:
    """time_limit=0 can only produce a limit status on a non-trivial MIP."""
    result = get_solver(backend).solve(knapsack(n=200, m=15, seed=0), SolveLimits(time_limit=0.0))
    assert result.status in AT_LIMIT, result.message


@needs_highs
def test_cancel_stops_a_running_mip() -> None:
    """SolveLimits.cancel set from another thread stops a long HiGHS solve with a limit status."""
    import threading

    program = knapsack(n=200, m=15, seed=0)
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    result = get_solver("highs").solve(
        program, SolveLimits(time_limit=60.0, mip_rel_gap=0.0, mip_abs_gap=0.0, cancel=cancel)
    )
    timer.cancel()
    assert result.status in AT_LIMIT, result.message
    assert result.seconds < 5.0
    already = threading.Event()
    already.set()
    assert get_solver("highs").solve(program, SolveLimits(cancel=already)).status in AT_LIMIT


@needs_highs
def test_stop_above_interrupts_with_proven_bound() -> None:
    """stop_above below the root bound stops at once with a dual bound above the threshold."""
    program = knapsack(n=200, m=15, seed=0)
    program.offset = 1000.0
    threshold = -7700.0 + 1000.0  # the optimum is -7569 + 1000; the root bound is near -7614
    result = get_solver("highs").solve(program, SolveLimits(time_limit=20, stop_above=threshold))
    assert result.stopped_early and result.status in AT_LIMIT, result.message
    assert result.dual_bound is not None and result.dual_bound > threshold
    assert result.seconds < 5


@needs_highs
def test_stop_below_interrupts_with_good_solution() -> None:
    """stop_below above the first incumbent stops with a feasible x below the threshold."""
    program = knapsack(n=200, m=15, seed=0)
    threshold = -7400.0
    result = get_solver("highs").solve(program, SolveLimits(time_limit=20, stop_below=threshold))
    assert result.stopped_early and result.status is SolveStatus.FEASIBLE_AT_LIMIT, result.message
    assert result.objective is not None and result.objective < threshold
    assert max_violation(program, result.x) <= 1e-6
    assert result.seconds < 5


@needs_highs
def test_stop_thresholds_not_reached_solve_to_optimality() -> None:
    """Thresholds that are never crossed leave an ordinary optimal solve."""
    program = knapsack(n=10, m=2, seed=3)
    expected = brute_force(program)
    limits = SolveLimits(stop_above=expected + 10.0, stop_below=expected - 10.0, mip_rel_gap=0.0)
    result = get_solver("highs").solve(program, limits)
    assert not result.stopped_early
    assert_optimal(program, result, expected)


@needs_highs
def test_thread_count_can_change_between_solves() -> None:
    """HiGHS's scheduler is reset when a later solve asks for another thread count."""
    program = knapsack(n=30, m=3, seed=1)
    objectives = []
    for threads in (1, 2, 1):
        result = get_solver("highs").solve(program, SolveLimits(threads=threads, mip_rel_gap=0.0))
        assert result.status is SolveStatus.OPTIMAL, result.message
        objectives.append(result.objective)
    assert len(set(objectives)) == 1


@needs_highs
def test_highs_status_map_covers_every_model_status() -> None:
    """Only kOptimal maps to OPTIMAL, only kInfeasible to INFEASIBLE; the rest are non-verdicts."""
    import highspy

    from completeverify.solvers.highs import _collect

    program = small_lp()
    expected_special = {
        "kOptimal": SolveStatus.OPTIMAL,
        "kInfeasible": SolveStatus.INFEASIBLE,
        "kUnbounded": SolveStatus.UNBOUNDED,
        "kUnboundedOrInfeasible": SolveStatus.UNBOUNDED,
    }
    for name in highspy.HighsModelStatus.__members__:
        for has_x in (False, True):
            fake = SimpleNamespace(
                getModelStatus=lambda name=name: SimpleNamespace(name=name),
                getInfo=lambda has_x=has_x: SimpleNamespace(
                    primal_solution_status=2 if has_x else 0,
                    objective_function_value=-6.5,
                    mip_dual_bound=-7.0,
                    mip_node_count=0,
                ),
                getSolution=lambda has_x=has_x: SimpleNamespace(
                    value_valid=has_x,
                    col_value=[1.0, 3.0],
                    dual_valid=has_x,
                    row_dual=[-1.5, 0.5],
                    col_dual=[0.0, 0.0],
                ),
            )
            result = _collect(fake, program, SimpleNamespace(name="kOk"), None, 0.0)
            if name in expected_special:
                want = expected_special[name]
                if name == "kOptimal" and not has_x:
                    want = SolveStatus.ERROR
                assert result.status is want, name
            else:
                assert result.status not in (
                    SolveStatus.OPTIMAL,
                    SolveStatus.INFEASIBLE,
                    SolveStatus.UNBOUNDED,
                ), name
                if result.status is not SolveStatus.ERROR:
                    assert result.status is (
                        SolveStatus.FEASIBLE_AT_LIMIT if has_x else SolveStatus.NO_SOLUTION_AT_LIMIT
                    ), name
                else:
                    assert name in result.message


def test_pulp_time_limit_is_not_optimal() -> None:
    """PuLP's 'Stopped on time - objective value' (status 1) is FEASIBLE_AT_LIMIT, never OPTIMAL."""
    from completeverify.solvers.pulp import _interpret

    program = small_lp()
    prob = SimpleNamespace(status=1, sol_status=2)
    result = _interpret(
        program,
        SolveLimits(time_limit=10),
        prob,
        "Stopped on time - objective value -7.0",
        [1.0, 3.0],
        time.perf_counter(),
    )
    assert result.status is SolveStatus.FEASIBLE_AT_LIMIT and result.dual_bound is None
    # CBC says optimal but the wall time reached the limit: not trusted.
    started = time.perf_counter() - 11.0
    optimal = SimpleNamespace(status=1, sol_status=1)
    result = _interpret(
        program,
        SolveLimits(time_limit=10),
        optimal,
        "Optimal - objective value -7.0",
        [1.0, 3.0],
        started,
    )
    assert result.status is SolveStatus.FEASIBLE_AT_LIMIT
    infeasible = SimpleNamespace(status=-1, sol_status=-1)
    result = _interpret(
        program,
        SolveLimits(time_limit=10),
        infeasible,
        "Infeasible - objective value 0",
        [None, None],
        started,
    )
    assert result.status is SolveStatus.NO_SOLUTION_AT_LIMIT
    # An 'optimal' whose x violates the program is an error, not a verdict.
    result = _interpret(
        program,
        SolveLimits(),
        optimal,
        "Optimal - objective value -7.0",
        [5.0, 5.0],
        time.perf_counter(),
    )
    assert result.status is SolveStatus.ERROR


@needs_highs
@pytest.mark.parametrize("case", ["lp", "equality_rows", "duplicates"])
def test_safe_bound_equals_optimum_with_highs_duals(case: str) -> None:
    """HiGHS row duals follow the y_i > 0 <=> lower-side convention: the bound is the optimum."""
    build, expected = KNOWN[case]
    program = build()
    result = get_solver("highs").solve(program)
    assert result.row_duals is not None and result.col_duals is not None
    bound = safe_lp_lower_bound(program, result.row_duals)
    assert bound <= expected
    assert bound == pytest.approx(expected, abs=1e-8)


@needs_highs
def test_highs_dual_sign_convention() -> None:
    """For minimisation, a row active at its upper side has y <= 0, at its lower side y >= 0."""
    result = get_solver("highs").solve(small_lp())
    assert result.row_duals is not None
    assert result.row_duals[0] < 0 < result.row_duals[1]  # x + y <= 4 ; x - y >= -2
    np.testing.assert_allclose(
        result.col_duals,
        small_lp().c - np.array([[1, 1], [1, -1]]).T @ result.row_duals,
        atol=1e-12,
    )


@needs_highs
@pytest.mark.parametrize("seed", range(3))
def test_safe_bound_random_lp(seed: int) -> None:
    """Random boxed LPs: equal to the optimum with HiGHS duals, below it with any random duals."""
    rng = np.random.default_rng(seed)
    n, m = 8, 6
    A = rng.normal(size=(m, n))
    center = rng.uniform(-1, 1, size=n)
    activity = A @ center
    lower = np.where(rng.random(m) < 0.5, activity - rng.random(m), -INF)
    upper = np.where(np.isinf(lower) | (rng.random(m) < 0.5), activity + rng.random(m), INF)
    program = dense(
        rng.normal(size=n),
        A,
        lower,
        upper,
        [-2] * n,
        [2] * n,
        [False] * n,
        offset=float(rng.normal()),
    )
    result = get_solver("highs").solve(program)
    assert result.status is SolveStatus.OPTIMAL
    optimum = result.objective
    assert safe_lp_lower_bound(program, result.row_duals) == pytest.approx(optimum, abs=1e-8)
    for _ in range(50):
        y = rng.normal(size=m) * 3
        y = np.where(np.isinf(lower) & (y > 0), -y, y)
        y = np.where(np.isinf(upper) & (y < 0), -y, y)
        assert safe_lp_lower_bound(program, y) <= optimum + 1e-12
    assert safe_lp_lower_bound(program, np.zeros(m)) <= optimum


def test_safe_bound_infinite_sides() -> None:
    """A nonzero multiplier against an infinite side, or r_j against an infinite column: -inf."""
    program = small_lp()  # row 0 has lower = -inf, row 1 has upper = +inf
    assert safe_lp_lower_bound(program, np.array([1.0, 0.0])) == -INF
    assert safe_lp_lower_bound(program, np.array([0.0, -1.0])) == -INF
    # a tiny wrong-signed multiplier is clamped to zero, giving a finite valid bound
    clamped = safe_lp_lower_bound(program, np.array([1e-9, 0.5]))
    assert math.isfinite(clamped) and clamped <= -6.5
    free = KNOWN["free_vars_lp"][0]()
    assert safe_lp_lower_bound(free, np.array([0.0, 0.0])) == -INF
    assert safe_lp_lower_bound(free, np.array([0.5, 0.5])) == pytest.approx(0.0, abs=1e-10)
    assert safe_lp_lower_bound(free, np.array([0.5, 0.5])) <= 0.0


def test_safe_bound_rejects_bad_duals() -> None:
    """Wrong shape or NaN multipliers are an error, not a bound."""
    with pytest.raises(SolverError):
        safe_lp_lower_bound(small_lp(), np.zeros(3))
    with pytest.raises(SolverError):
        safe_lp_lower_bound(small_lp(), np.array([np.nan, 0.0]))


def test_safe_bound_rounding_allowance() -> None:
    """Exact multipliers give a bound strictly below the exact optimum, by a tiny margin."""
    program = small_lp()
    bound = safe_lp_lower_bound(program, np.array([-1.5, 0.5]))
    assert bound < -6.5 and bound > -6.5 - 1e-9


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda p: setattr(p, "c", np.array([np.nan, 1.0])), "c"),
        (lambda p: setattr(p, "A_vals", np.array([1.0, np.inf, 1.0, -1.0])), "A_vals"),
        (lambda p: setattr(p, "col_lower", np.array([0.0, np.nan])), "col_lower"),
        (lambda p: setattr(p, "row_upper", np.array([4.0])), "row_upper"),
        (lambda p: setattr(p, "integrality", np.array([True])), "integrality"),
        (lambda p: setattr(p, "A_cols", np.array([0, 1, 0, 2])), "A_cols"),
        (lambda p: setattr(p, "col_lower", np.array([0.0, 11.0])), "lower > upper"),
        (lambda p: setattr(p, "row_lower", np.array([INF, -2.0])), "+inf"),
        (lambda p: setattr(p, "offset", INF), "offset"),
        (lambda p: setattr(p, "names", ["a"]), "names"),
    ],
)
def test_validate_rejects(mutate, fragment: str) -> None:
    """validate() names the offending field for NaN, infinities, shapes and bound order."""
    program = small_lp()
    mutate(program)
    with pytest.raises(SolverError, match=fragment.replace("+", r"\+")):
        program.validate()


def test_validate_accepts_and_coerces() -> None:
    """Lists and integer arrays are coerced to the documented dtypes."""
    program = MilpProgram(
        c=[1, 2],
        col_lower=[0, 0],
        col_upper=[1, 1],
        A_rows=[0],
        A_cols=[1],
        A_vals=[3],
        row_lower=[0],
        row_upper=[2],
        integrality=[0, 1],
    )
    program.validate()
    assert program.num_cols() == 2 and program.num_rows() == 1
    assert program.integrality.dtype == np.bool_ and program.A_rows.dtype == np.int64


def test_solve_rejects_invalid_program() -> None:
    """Solving an invalid program raises SolverError instead of returning a status."""
    program = small_lp()
    program.c = np.array([np.nan, 1.0])
    for backend in BACKENDS:
        with pytest.raises(SolverError):
            get_solver(backend).solve(program)


def test_get_solver_errors() -> None:
    """Unknown names list the valid ones."""
    with pytest.raises(SolverError, match=r"'nope'.*highs.*pulp"):
        get_solver("nope")
    assert BACKENDS and BACKENDS[0] == "highs"
    assert get_solver().name == "highs"


def test_limits_validate() -> None:
    """Nonsensical limits are rejected."""
    for bad in (
        SolveLimits(time_limit=-1),
        SolveLimits(threads=0),
        SolveLimits(mip_rel_gap=float("nan")),
        SolveLimits(stop_above=float("nan")),
    ):
        with pytest.raises(SolverError):
            bad.validate()


def test_import_is_cheap_and_silent() -> None:
    """Importing the package loads neither highspy, pulp nor torch; HiGHS prints no banner."""
    code = (
        "import sys, numpy as np, completeverify\n"
        "before = set(sys.modules)\n"
        "import completeverify.solvers as s\n"
        "new = set(sys.modules) - before\n"
        "assert not {'highspy', 'pulp', 'torch'} & new, new\n"
        "if 'highs' in s.available_solvers():\n"
        "    p = s.MilpProgram(c=[1.0], col_lower=[0.0], col_upper=[1.0], A_rows=[],\n"
        "        A_cols=[], A_vals=[], row_lower=[], row_upper=[], integrality=[False])\n"
        "    assert s.get_solver('highs').solve(p).status is s.SolveStatus.OPTIMAL\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


def _infeasible_lp() -> MilpProgram:
    """x + y >= 3 with x, y in [0, 1], and a second, harmless row: infeasible by 1."""
    return dense([1, 0], [[1, 1], [1, -1]], [3, -INF], [INF, 5], [0, 0], [1, 1], [False, False])


@needs_highs
@pytest.mark.parametrize("presolve", [None, True, False])
def test_highs_infeasible_lp_gives_a_farkas_ray(presolve) -> None:
    """An infeasible LP comes with a ray whose multipliers prove the zero objective's min > 0."""
    program = _infeasible_lp()
    result = get_solver("highs").solve(program, SolveLimits(presolve=presolve))
    assert result.status is SolveStatus.INFEASIBLE
    assert result.dual_ray is not None and result.dual_ray.shape == (2,)
    zero = dense([0, 0], [[1, 1], [1, -1]], [3, -INF], [INF, 5], [0, 0], [1, 1], [False, False])
    assert safe_lp_lower_bound(zero, result.dual_ray) > 0.5  # exactly 1 for y = (1, 0)
    mip = dense([1, 0], [[1, 1], [1, -1]], [3, -INF], [INF, 5], [0, 0], [1, 1], [True, False])
    assert get_solver("highs").solve(mip).dual_ray is None  # only LPs carry one


@pytest.mark.skipif("pulp" not in BACKENDS, reason="PuLP/CBC not available")
@pytest.mark.parametrize("case", ["lp", "equality_rows", "duplicates"])
def test_pulp_lp_row_duals_give_the_optimum(case: str) -> None:
    """CBC's LP duals, one per program row, in HiGHS's sign convention; none for a MIP."""
    build, expected = KNOWN[case]
    program = build()
    result = get_solver("pulp").solve(program, SolveLimits(presolve=False))
    assert result.row_duals is not None and result.row_duals.shape == (program.num_rows(),)
    bound = safe_lp_lower_bound(program, result.row_duals)
    assert bound <= expected and bound == pytest.approx(expected, abs=1e-8)
    assert get_solver("pulp").solve(knapsack(6, 2, 0)).row_duals is None


@needs_highs
def test_highs_infeasibility_contradicted_without_presolve_is_no_verdict(monkeypatch) -> None:
    """If the check run without presolve does not confirm an LP's infeasibility: ERROR, no ray."""
    import completeverify.solvers.highs as highs_mod

    monkeypatch.setattr(highs_mod, "_rerun_without_presolve", lambda h: "kOptimal")
    result = get_solver("highs").solve(_infeasible_lp())
    assert result.status is SolveStatus.ERROR and result.dual_ray is None
    assert result.dual_bound is None and "not infeasible" in result.message


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "name, optimum",
    [("highs_presolve_milp", -0.0017738), ("highs_feastol_milp", 4.9947351)],
)
def test_mips_highs_got_wrong_solve_to_the_enumerated_optimum(backend, name, optimum) -> None:
    """Two encodings of small planted CNNs (4 and 2 binaries) on which HiGHS 1.16 at its
    defaults answered wrongly: the first 'infeasible' in MIP presolve (optimum -0.00177, read as
    unsat), the second 'optimal' at 5.0206 (its optimum, enumerating the binaries, is 4.99474:
    a dual bound 0.026 too high). The backend re-solves without presolve and runs with a MIP
    feasibility tolerance of 1e-9 (solvers/highs.py)."""
    from paths import REPO

    data = np.load(REPO / "tests" / "data" / f"{name}.npz")
    program = MilpProgram(**{k: data[k] for k in data.files})
    limits = SolveLimits(time_limit=30.0, mip_rel_gap=0.0, mip_abs_gap=1e-9)
    result = get_solver(backend).solve(program, limits)
    assert result.status is SolveStatus.OPTIMAL, result.message
    assert result.objective == pytest.approx(optimum, abs=1e-5)
    assert result.dual_bound <= optimum + 1e-6
    assert max_violation(program, result.x) < 1e-6


class _ClaimsInfeasible:
    """A backend that answers INFEASIBLE to everything (what HiGHS 1.16 did on a feasible MIP
    at the root with presolve off, tests/data/highs_root_cnn.*)."""

    name = "claims-infeasible"

    def solve(self, program, limits=None):
        from completeverify.solvers import SolveResult

        return SolveResult(SolveStatus.INFEASIBLE, None, None, INF, 0.0, "claimed")


@pytest.mark.parametrize("integer", [True, False])
def test_an_infeasibility_claim_without_a_certificate_is_not_a_proof(integer: bool) -> None:
    """min t s.t. t >= b - 1 (b binary or in [0, 1]): feasible, so a claim of infeasibility
    must leave the pair undecided; x + y >= 3 on [0, 1]^2 is really infeasible (its relaxation
    too, with a Farkas ray), so the same claim is then a proof."""
    from completeverify.milp.decide import Outcome, solve_pair
    from completeverify.milp.encoder import Encoding

    feasible = dense([0, 1], [[-1, 1]], [-1], [INF], [0, -5], [1, 5], [integer, False])
    enc = Encoding(feasible, np.array([0]), np.array([0]), 1, int(integer))
    assert solve_pair(enc, _ClaimsInfeasible(), 5.0, 1e-5).outcome is Outcome.UNKNOWN
    empty = dense(
        [0, 0, 1], [[1, 1, 0]], [3], [INF], [0, 0, -5], [1, 1, 5], [integer] * 2 + [False]
    )
    enc = Encoding(empty, np.array([0, 1]), np.array([0]), 2, 2 * int(integer))
    assert solve_pair(enc, _ClaimsInfeasible(), 5.0, 1e-5).outcome is Outcome.PROVEN

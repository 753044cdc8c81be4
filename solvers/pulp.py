"""PuLP + CBC backend (imported lazily): a cross-check and a fallback for HiGHS.

PuLP's own status mapping is not trusted: it turns CBC's "Stopped on time - objective value"
into LpStatusOptimal. This backend reads CBC's raw status line, cross-checks it against
prob.status and prob.sol_status, and never reports OPTIMAL or INFEASIBLE once the wall time
reached the limit. stop_above / stop_below are not supported by CBC through PuLP and are
ignored (the solve simply runs to its ordinary end), so stopped_early is always False.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import time
from typing import Any

import numpy as np

from .base import (
    MilpProgram,
    SolveLimits,
    SolveResult,
    compressed,
    max_violation,
    start_solve,
)
from .children import private_tmpdir
from .status import SolveStatus, at_limit

_VIOLATION_TOL = 1e-5


def _bundled_cbc_path() -> str | None:
    """Path of the CBC binary bundled with PuLP, if present and executable."""
    from pulp.apis import coin_api

    path = getattr(coin_api, "pulp_cbc_path", None)
    if path and os.path.isfile(path) and os.access(path, os.X_OK):
        return str(path)
    return None


def _make_cbc(**kwargs: Any) -> Any:
    """A pulp COIN_CMD (CBC) instance that also records CBC's raw status line."""
    import pulp

    class _RecordingCbc(pulp.COIN_CMD):
        """COIN_CMD that keeps the first line of CBC's solution file."""

        raw_status = ""

        def get_status(self, filename: str) -> Any:
            """Record CBC's status line, then defer to PuLP's parsing."""
            with open(filename) as handle:
                self.raw_status = handle.readline().strip()
            return super().get_status(filename)

    return _RecordingCbc(path=_bundled_cbc_path(), **kwargs)


class PulpSolver:
    """MilpSolver backed by CBC through PuLP."""

    name = "pulp"

    def is_available(self) -> bool:
        """True when pulp is importable and its CBC binary can run."""
        if importlib.util.find_spec("pulp") is None:
            return False
        try:
            return bool(_make_cbc(msg=False).available())
        except Exception:  # noqa: BLE001 - any failure here means "not available"
            return False

    def solve(self, program: MilpProgram, limits: SolveLimits | None = None) -> SolveResult:
        """Solve program with CBC; solver failures come back as status ERROR."""
        t0 = time.perf_counter()
        limits, done = start_solve(program, limits, t0)
        if done is not None:
            return done
        empty_rows = _violated_empty_rows(program)
        if empty_rows.size:
            return SolveResult(
                SolveStatus.INFEASIBLE,
                None,
                None,
                math.inf,
                time.perf_counter() - t0,
                f"rows without entries exclude 0: {empty_rows[:5].tolist()}",
            )
        isolated, isolated_values = _isolated_columns(program)
        if np.any(np.isnan(isolated_values)):
            bad = np.flatnonzero(np.isnan(isolated_values))[:5].tolist()
            return SolveResult(
                SolveStatus.INFEASIBLE,
                None,
                None,
                math.inf,
                time.perf_counter() - t0,
                f"integer columns with no integer between their bounds: {bad}",
            )
        try:
            with private_tmpdir("completeverify-cbc-") as folder:
                prob, variables, solver = self._run_cbc(program, limits, folder)
            values = [var.varValue for var in variables]
            for j in np.flatnonzero(isolated).tolist():
                values[j] = float(isolated_values[j])
        except Exception as exc:  # noqa: BLE001 - any failure is a non-verdict, reported as ERROR
            return SolveResult(
                SolveStatus.ERROR,
                None,
                None,
                None,
                time.perf_counter() - t0,
                f"PuLP/CBC failed: {type(exc).__name__}: {exc}",
            )
        result = _interpret(program, limits, prob, solver.raw_status, values, t0)
        if result.status is SolveStatus.INFEASIBLE and program.is_mip() and limits.presolve is None:
            # as for HiGHS (solvers/highs.py): a presolve's infeasibility is not taken; the solve
            # without presolve, within what is left of the time limit, is the answer
            left = max(0.0, limits.time_limit - (time.perf_counter() - t0))
            again = self.solve(
                program, dataclasses.replace(limits, presolve=False, time_limit=left)
            )
            again.seconds = time.perf_counter() - t0
            if again.status is not SolveStatus.INFEASIBLE:
                again.message += "; CBC's presolve had declared the program infeasible"
            return again
        if result.status is SolveStatus.OPTIMAL and not program.is_mip():
            result.row_duals = _row_duals(program, prob)
        return result

    @staticmethod
    def _run_cbc(program: MilpProgram, limits: SolveLimits, folder: str) -> tuple[Any, list, Any]:
        """Build and solve with CBC, its files in ``folder``: (problem, variables, solver)."""
        prob, variables = _build(program)
        solver = _make_cbc(
            msg=False,
            timeLimit=limits.time_limit if math.isfinite(limits.time_limit) else None,
            threads=int(limits.threads),
            gapRel=float(limits.mip_rel_gap) if program.is_mip() else None,
            gapAbs=float(limits.mip_abs_gap) if program.is_mip() else None,
            maxNodes=int(limits.node_limit) if limits.node_limit is not None else None,
            timeMode="elapsed",
            presolve=limits.presolve,
        )
        solver.tmpDir = folder
        prob.solve(solver)
        return prob, variables, solver


def _row_duals(program: MilpProgram, prob: Any) -> np.ndarray | None:
    """CBC's row duals of an LP, one per program row (HiGHS's signs: y > 0 at the lower side).

    A program row became up to two PuLP constraints (r{i}_eq, or r{i}_lo and r{i}_up); its
    multiplier is their sum, and 0 for a row _build left out.  CBC prints them with limited
    precision, so they are only candidates for solvers.safe_lp_lower_bound (valid for any y).
    None when CBC reported none.
    """
    y = np.zeros(program.num_rows())
    constraints = prob.constraints
    try:
        # PuLP >= 3.3: a callable giving the list (its dict view is deprecated); older: a dict
        listed = constraints() if callable(constraints) else list(constraints.values())
        for con in listed:
            row, _, _ = str(con.name)[1:].partition("_")
            pi = con.pi
            if pi is None:
                return None
            y[int(row)] += float(pi)
    except (AttributeError, ValueError, TypeError):
        return None
    return y if np.all(np.isfinite(y)) else None


def _violated_empty_rows(program: MilpProgram) -> np.ndarray:
    """Indices of rows with no nonzero entries whose bounds exclude activity 0."""
    start, _, _ = compressed(program, by_column=False)
    empty = np.diff(start) == 0
    excluded = (program.row_lower > 0.0) | (program.row_upper < 0.0)
    return np.flatnonzero(empty & excluded)


def _isolated_columns(program: MilpProgram) -> tuple[np.ndarray, np.ndarray]:
    """Columns in no row and with zero cost (PuLP leaves them out of CBC's model), and a value
    for each: the point of its bounds nearest 0 (integer for integer columns; NaN if none)."""
    start, _, _ = compressed(program, by_column=True)
    isolated = (np.diff(start) == 0) & (program.c == 0.0)
    lower, upper = program.col_lower.copy(), program.col_upper.copy()
    integer = program.integrality
    lower[integer], upper[integer] = np.ceil(lower[integer]), np.floor(upper[integer])
    with np.errstate(invalid="ignore"):
        chosen = np.where(lower > upper, np.nan, np.clip(0.0, lower, upper))
    return isolated, np.where(isolated, chosen, 0.0)


def _build(program: MilpProgram) -> tuple[Any, list[Any]]:
    """A pulp.LpProblem (minimise) equal to program, without the objective offset."""
    import pulp

    prob = pulp.LpProblem("completeverify", pulp.LpMinimize)
    lows = [None if math.isinf(v) else v for v in program.col_lower.tolist()]
    ups = [None if math.isinf(v) else v for v in program.col_upper.tolist()]
    cats = [pulp.LpInteger if flag else pulp.LpContinuous for flag in program.integrality.tolist()]
    make = getattr(prob, "add_variable", None)
    if make is None:  # PuLP < 3: the model picks variables up from its constraints and objective
        make = pulp.LpVariable
    variables = [make(f"x{j}", lows[j], ups[j], cat=cats[j]) for j in range(len(lows))]
    prob += pulp.LpAffineExpression(
        [(variables[j], coef) for j, coef in enumerate(program.c.tolist()) if coef != 0.0]
    )
    start, index, value = compressed(program, by_column=False)
    starts, indices, values = start.tolist(), index.tolist(), value.tolist()
    bounds = zip(program.row_lower.tolist(), program.row_upper.tolist(), strict=True)
    for i, (lo, up) in enumerate(bounds):
        a, b = starts[i], starts[i + 1]
        if a == b or (math.isinf(lo) and math.isinf(up)):
            continue
        expr = pulp.LpAffineExpression(
            [(variables[k], v) for k, v in zip(indices[a:b], values[a:b], strict=True)]
        )
        if lo == up:
            prob += pulp.LpConstraint(expr, pulp.LpConstraintEQ, f"r{i}_eq", lo)
            continue
        if not math.isinf(lo):
            prob += pulp.LpConstraint(expr, pulp.LpConstraintGE, f"r{i}_lo", lo)
        if not math.isinf(up):
            prob += pulp.LpConstraint(expr, pulp.LpConstraintLE, f"r{i}_up", up)
    return prob, variables


def _raw_verdict(raw: str) -> str:
    """Classify CBC's status line: optimal, infeasible, unbounded, stopped or unknown."""
    head = raw.split(" - ")[0].strip().lower()
    if head == "optimal":
        return "optimal"
    if head in ("infeasible", "integer infeasible"):
        return "infeasible"
    if head in ("unbounded", "integer unbounded"):
        return "unbounded"
    if head.startswith("stopped"):
        return "stopped"
    return "unknown"


def _interpret(
    program: MilpProgram,
    limits: SolveLimits,
    prob: Any,
    raw: str,
    values: list[float | None],
    t0: float,
) -> SolveResult:
    """Map CBC's raw status, PuLP's two status codes and the wall time to a SolveResult."""
    seconds = time.perf_counter() - t0
    verdict = _raw_verdict(raw)
    status_code, sol_code = int(prob.status), int(prob.sol_status)
    message = f"CBC: {raw!r}; pulp status {status_code}, sol_status {sol_code}"
    x: np.ndarray | None = None
    if all(v is not None for v in values):
        x = np.asarray(values, dtype=np.float64)
    feasible_x = x is not None and max_violation(program, x) <= _VIOLATION_TOL
    hit_limit = seconds >= limits.time_limit

    if verdict == "optimal" and status_code == 1 and sol_code == 1 and feasible_x:
        status = SolveStatus.OPTIMAL
    elif verdict == "infeasible" and status_code == -1:
        status = SolveStatus.INFEASIBLE
    elif verdict == "unbounded" and status_code == -2:
        status = SolveStatus.UNBOUNDED
    elif verdict == "stopped":
        has_solution = "objective" in raw.lower() and "no integer solution" not in raw.lower()
        status = at_limit(has_solution and feasible_x)
    else:
        status = SolveStatus.ERROR
        if verdict == "optimal" and not feasible_x:
            message += "; reported solution violates the program"
    if hit_limit and status in (SolveStatus.OPTIMAL, SolveStatus.INFEASIBLE):
        message += f"; wall time {seconds:.3f}s reached the limit, not trusted as {status.value}"
        status = at_limit(feasible_x)
    if status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE_AT_LIMIT) or not feasible_x:
        x = None
    objective = None if x is None else float(program.c @ x + program.offset)
    dual_bound: float | None = None
    if status is SolveStatus.INFEASIBLE:
        dual_bound = math.inf
    elif status is SolveStatus.OPTIMAL and objective is not None:
        dual_bound = objective - _gap_allowance(program, limits, objective)
    return SolveResult(status, x, objective, dual_bound, seconds, message)


def _gap_allowance(program: MilpProgram, limits: SolveLimits, objective: float) -> float:
    """How far below objective the optimum may lie when CBC stops within the MIP gaps."""
    if not program.is_mip():
        return 0.0
    rel = float(limits.mip_rel_gap)
    return float(limits.mip_abs_gap) + rel * abs(objective) / (1.0 - rel)

"""Solve one encoded (box, polytope) pair and turn the solver's answer into a sound outcome."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from ..solvers import MilpSolver, SolveLimits, SolveStatus
from .encoder import Encoding


class Outcome(enum.Enum):
    """What one MILP solve established."""

    PROVEN = "proven"  # min t > margin: the polytope is unreachable from the box
    CANDIDATE = "candidate"  # a solution with t <= 0: replay it
    UNKNOWN = "unknown"  # solver finished without a usable answer (e.g. knife edge)
    TIMEOUT = "timeout"  # the time limit ran out


@dataclass
class MilpAnswer:
    """Outcome plus what the caller needs: the candidate input and solver facts."""

    outcome: Outcome
    x_input: np.ndarray | None
    dual_bound: float | None
    objective: float | None
    status: SolveStatus
    seconds: float


def solve_pair(enc: Encoding, solver: MilpSolver, time_limit: float, margin: float,
               threads: int = 1, stop_below: float | None = 0.0) -> MilpAnswer:
    """Minimise t; PROVEN only from a proven dual bound above ``margin`` or a proven infeasibility.

    Infeasibility is accepted as a proof because the box and every bound in the
    encoding are already widened outward (see encoder.widen), so a knife-edge
    infeasibility cannot come from our own constants; the solver's feasibility
    tolerances only enlarge the feasible set, which errs on the safe side.
    """
    limits = SolveLimits(time_limit=max(0.05, time_limit), threads=threads, stop_above=margin,
                         stop_below=stop_below, mip_rel_gap=0.0, mip_abs_gap=margin / 10)
    res = solver.solve(enc.program, limits)
    x_in = enc.input_of(res.x) if res.x is not None else None
    db = res.dual_bound
    if res.status == SolveStatus.INFEASIBLE:
        return MilpAnswer(Outcome.PROVEN, None, math.inf, None, res.status, res.seconds)
    if db is not None and math.isfinite(db) and db > margin:
        return MilpAnswer(Outcome.PROVEN, x_in, db, res.objective, res.status, res.seconds)
    if x_in is not None and res.objective is not None and res.objective <= margin:
        return MilpAnswer(Outcome.CANDIDATE, x_in, db, res.objective, res.status, res.seconds)
    if res.status in (SolveStatus.FEASIBLE_AT_LIMIT, SolveStatus.NO_SOLUTION_AT_LIMIT):
        return MilpAnswer(Outcome.TIMEOUT, x_in, db, res.objective, res.status, res.seconds)
    return MilpAnswer(Outcome.UNKNOWN, x_in, db, res.objective, res.status, res.seconds)

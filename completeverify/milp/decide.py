"""Solve one encoded (box, polytope) pair and turn the solver's answer into a sound outcome.

MILPs (some binary left): PROVEN when the solver's proven dual bound exceeds the margin, or
when the program is infeasible with a certificate: the solver's claim alone is not one.  HiGHS
1.16 declared feasible MIPs infeasible, in presolve (``solvers/highs.py`` now re-solves
without it) and in its root propagation with presolve off (a 2-binary encoding with an
exactly feasible point).  So an infeasible MIP is PROVEN only when its LP relaxation is
infeasible with a Farkas ray that checks (below, ``relaxation_infeasibility_certified``);
otherwise it is UNKNOWN.  The margin (1e-5, far above HiGHS's tolerances) covers round-off in
the solver's bound.  The dual bound itself has no certificate: it is the part of a MILP proof
that rests on the solver (HiGHS runs MIPs with a feasibility tolerance of 1e-9, under which
every wrong answer the planted campaigns found went away; tests/property/fuzz/CAMPAIGN.md).

LPs (no integer column: the leaves of ReLU branch and bound, or a network whose ReLUs are
all stable): the solver's objective is not trusted.  PROVEN needs a rigorous certificate
checked here in float64 with outward rounding (``solvers.safe_lp_lower_bound``, weak
Lagrangian duality over the encoding's finite column bounds):

* optimal: the safe bound built from the solver's row duals must exceed the margin;
* infeasible: the solver's Farkas ray y must give a safe bound > 0 for the zero objective
  (then no point satisfies the rows and column bounds).

Fallbacks, where a backend gives no multipliers at all (PuLP/CBC: no ray for an infeasible
LP, or an LP without duals; HiGHS: no ray, e.g. when its re-solve without presolve ran out
of time): an infeasible LP gets its ray from HiGHS as above, or stays UNKNOWN; an optimal LP
without duals falls back to the solver's bound.  That fallback leans on the encoding being
widened outward (every big-M and column bound is a widened over-approximation, so a
knife-edge optimum cannot come from our own constants) and on solver tolerances enlarging
the feasible set (which lowers the objective).  A certificate that the solver did give but
that fails the check is never overruled by the solver's claim.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
from dataclasses import dataclass

import numpy as np

from ..solvers import (
    MilpProgram,
    MilpSolver,
    SolveLimits,
    SolveResult,
    SolveStatus,
    safe_lp_lower_bound,
)
from .encoder import Encoding

logger = logging.getLogger(__name__)

# LPs up to this many columns are solved without presolve: on small LP leaves that is faster
# (about 0.5 -> 0.3 ms on 2-6-6-2 leaves, 32 -> 18 ms at 330 columns), and when such an LP is
# infeasible the simplex has its Farkas ray at hand, whereas after presolve HiGHS solves again
# to produce one (it then costs more than the solve: 4 ms on a 3.4 ms solve at 330 columns).
LP_NO_PRESOLVE_MAX_COLS = 500


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


def lp_optimum_bound(program: MilpProgram, res: SolveResult) -> float | None:
    """A lower bound on the LP's optimum: rigorous from row duals, else the solver's own bound.

    None when the solver proved nothing.  With duals the solver's value is never used, so a
    dual vector that certifies nothing (wrong signs, too inexact) gives a low or -inf bound.
    """
    if res.status != SolveStatus.OPTIMAL:
        return None
    if res.row_duals is None or not np.all(np.isfinite(res.row_duals)):
        logger.debug("LP optimal without row duals: using the solver's bound %s", res.dual_bound)
        return res.dual_bound  # fallback (see the module docstring)
    return safe_lp_lower_bound(program, res.row_duals)


def lp_infeasibility_certified(program: MilpProgram, ray: np.ndarray | None) -> bool | None:
    """Whether ray (or -ray) rigorously proves the LP infeasible; None when there is no ray.

    For the zero objective every multiplier vector gives a valid lower bound on min 0 over the
    feasible set; a positive one means the set is empty.  Both signs are tried, since either
    is a valid multiplier vector and backends differ in their convention.
    """
    if ray is None or not np.all(np.isfinite(ray)) or not np.any(ray):
        return None
    zero = dataclasses.replace(program, c=np.zeros(program.num_cols()), offset=0.0)
    scale = float(np.max(np.abs(ray)))
    for sign in (1.0, -1.0):
        if safe_lp_lower_bound(zero, sign * ray / scale) > 0.0:
            return True
    return False


def relaxation_infeasibility_certified(program: MilpProgram, time_limit: float) -> bool:
    """Whether the LP relaxation of ``program`` is infeasible with a Farkas ray that checks.

    HiGHS solves the relaxation (integrality dropped, zero objective, no presolve, so that the
    simplex holds the ray); the ray is checked by ``lp_infeasibility_certified``.  An empty
    relaxation empties the program; a feasible one (or no ray in time) proves nothing.
    """
    from ..solvers import get_solver

    zero = dataclasses.replace(
        program,
        c=np.zeros(program.num_cols()),
        offset=0.0,
        integrality=np.zeros(program.num_cols(), dtype=bool),
        hessian_diag=None,
    )
    res = get_solver("highs").solve(
        zero, SolveLimits(time_limit=max(0.05, time_limit), presolve=False)
    )
    if res.status != SolveStatus.INFEASIBLE:
        return False
    return bool(lp_infeasibility_certified(zero, res.dual_ray))


def solve_pair(
    enc: Encoding,
    solver: MilpSolver,
    time_limit: float,
    margin: float,
    threads: int = 1,
    stop_below: float | None = 0.0,
    cancel=None,
) -> MilpAnswer:
    """Minimise t; PROVEN only from a bound above ``margin`` or a proven infeasibility.

    For an LP (no integer column) both must be certified from the solver's multipliers where
    it gives them (see the module docstring); for a MILP HiGHS's proven dual bound decides.
    cancel (a threading.Event) stops the solve early, as a time limit would (HiGHS only).
    """
    program = enc.program
    is_lp = not program.is_mip()
    presolve = False if is_lp and program.num_cols() <= LP_NO_PRESOLVE_MAX_COLS else None
    limits = SolveLimits(
        time_limit=max(0.05, time_limit),
        threads=threads,
        stop_above=margin,
        stop_below=stop_below,
        mip_rel_gap=0.0,
        mip_abs_gap=margin / 10,
        presolve=presolve,
        cancel=cancel,
    )
    res = solver.solve(program, limits)
    x_in = enc.input_of(res.x) if res.x is not None else None
    db = res.dual_bound
    if res.status == SolveStatus.INFEASIBLE:
        certified = lp_infeasibility_certified(program, res.dual_ray) if is_lp else None
        if certified is None:  # a MIP, or an LP without a ray: certify the relaxation
            certified = relaxation_infeasibility_certified(program, max(0.05, time_limit / 4))
        if not certified:
            logger.info(
                "%s declared infeasible without a certificate that checks: unknown",
                "LP" if is_lp else "MIP",
            )
            return MilpAnswer(Outcome.UNKNOWN, None, None, None, res.status, res.seconds)
        return MilpAnswer(Outcome.PROVEN, None, math.inf, None, res.status, res.seconds)
    if is_lp:
        db = lp_optimum_bound(program, res)
        if db is not None and res.dual_bound is not None and res.dual_bound > margin >= db:
            logger.info(
                "LP objective %.3g > margin but its rigorous bound is only %.3g: not proven",
                res.dual_bound,
                db,
            )
    if db is not None and math.isfinite(db) and db > margin:
        return MilpAnswer(Outcome.PROVEN, x_in, db, res.objective, res.status, res.seconds)
    if x_in is not None and res.objective is not None and res.objective <= margin:
        return MilpAnswer(Outcome.CANDIDATE, x_in, db, res.objective, res.status, res.seconds)
    if res.status in (SolveStatus.FEASIBLE_AT_LIMIT, SolveStatus.NO_SOLUTION_AT_LIMIT):
        return MilpAnswer(Outcome.TIMEOUT, x_in, db, res.objective, res.status, res.seconds)
    return MilpAnswer(Outcome.UNKNOWN, x_in, db, res.objective, res.status, res.seconds)

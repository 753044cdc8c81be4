"""The closed set of outcomes a solver backend may report."""

from __future__ import annotations

from enum import Enum


class SolveStatus(str, Enum):
    """Outcome of one solve; only OPTIMAL and INFEASIBLE are verdicts about the program."""

    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    FEASIBLE_AT_LIMIT = "feasible_at_limit"
    NO_SOLUTION_AT_LIMIT = "no_solution_at_limit"
    UNBOUNDED = "unbounded"
    ERROR = "error"

    def is_limit(self) -> bool:
        """True for the two statuses that mean a limit or interrupt stopped the solve."""
        return self in (SolveStatus.FEASIBLE_AT_LIMIT, SolveStatus.NO_SOLUTION_AT_LIMIT)


def at_limit(has_solution: bool) -> SolveStatus:
    """The limit status that matches whether a primal solution is known."""
    return SolveStatus.FEASIBLE_AT_LIMIT if has_solution else SolveStatus.NO_SOLUTION_AT_LIMIT

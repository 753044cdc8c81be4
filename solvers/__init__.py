"""MILP/LP solver backends (installed as completeverify.solvers).

Importing this package is cheap: highspy and pulp are imported only inside solve calls.
Only OPTIMAL and INFEASIBLE are verdicts; a limit, an interrupt or an error never is.
"""

from __future__ import annotations

from completeverify.errors import SolverError

from .base import MilpProgram, MilpSolver, SolveLimits, SolveResult
from .duality import safe_lp_lower_bound
from .highs import HighsLpSession, HighsSolver
from .pulp import PulpSolver
from .status import SolveStatus

__all__ = [
    "HighsLpSession",
    "HighsSolver",
    "MilpProgram",
    "MilpSolver",
    "PulpSolver",
    "SolveLimits",
    "SolveResult",
    "SolveStatus",
    "available_solvers",
    "get_solver",
    "safe_lp_lower_bound",
    "solver_names",
]


def solver_names() -> list[str]:
    """Every backend name this package knows, default first."""
    return ["highs", "pulp"]


def _construct(name: str) -> MilpSolver:
    """A fresh backend instance for a known name."""
    if name == "highs":
        return HighsSolver()
    return PulpSolver()


def get_solver(name: str = "highs") -> MilpSolver:
    """The backend called name; SolverError if the name is unknown or the backend unavailable."""
    if name not in solver_names():
        raise SolverError(f"unknown solver {name!r}; valid names: {', '.join(solver_names())}")
    solver = _construct(name)
    if not solver.is_available():
        raise SolverError(
            f"solver {name!r} is not available in this environment "
            f"(available: {', '.join(available_solvers()) or 'none'})"
        )
    return solver


def available_solvers() -> list[str]:
    """Names of the backends that can run here, default first."""
    return [name for name in solver_names() if _construct(name).is_available()]

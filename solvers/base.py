"""Solver-neutral MILP program, limits, result, and the backend protocol."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from completeverify.errors import SolverError

from .status import SolveStatus

_FLOAT_FIELDS = ("c", "col_lower", "col_upper", "A_vals", "row_lower", "row_upper")
_INDEX_FIELDS = ("A_rows", "A_cols")


@dataclass
class MilpProgram:
    """Minimise c @ x + offset s.t. row_lower <= A x <= row_upper, col bounds, integrality.

    A is given as COO triplets (A_rows, A_cols, A_vals); duplicate entries are summed.
    Shapes: c, col_lower, col_upper, integrality (n,); row_lower, row_upper (m,);
    A_rows, A_cols, A_vals (nnz,).
    """

    c: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    A_rows: np.ndarray
    A_cols: np.ndarray
    A_vals: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    integrality: np.ndarray
    offset: float = 0.0
    names: list[str] | None = None
    # optional diagonal Hessian h (n,) >= 0: minimise c @ x + 0.5 * sum_j h_j x_j^2 + offset
    # (a convex QP; no integer column allowed: HiGHS has no MIQP)
    hessian_diag: np.ndarray | None = None

    def __post_init__(self) -> None:
        """Coerce array fields to numpy arrays of the documented dtypes where lossless."""
        for name in _FLOAT_FIELDS:
            value = np.asarray(getattr(self, name))
            if value.dtype.kind in "biuf":
                value = value.astype(np.float64, copy=False)
            setattr(self, name, value)
        for name in _INDEX_FIELDS:
            value = np.asarray(getattr(self, name))
            if value.dtype.kind in "iu" or (value.dtype.kind == "f" and value.size == 0):
                value = value.astype(np.int64, copy=False)
            setattr(self, name, value)
        integ = np.asarray(self.integrality)
        if integ.dtype.kind in "iu" and np.all((integ == 0) | (integ == 1)):
            integ = integ.astype(bool)
        self.integrality = integ

    def num_cols(self) -> int:
        """Number of columns (variables) n."""
        return int(np.asarray(self.c).shape[0])

    def num_rows(self) -> int:
        """Number of rows (linear constraints) m."""
        return int(np.asarray(self.row_lower).shape[0])

    def is_mip(self) -> bool:
        """True when at least one column is integer."""
        return bool(np.any(self.integrality))

    def validate(self) -> None:
        """Check shapes, dtypes, finiteness and bound order; SolverError on the first problem."""
        for name in _FLOAT_FIELDS:
            arr = getattr(self, name)
            if arr.dtype != np.float64 or arr.ndim != 1:
                raise SolverError(
                    f"MilpProgram.{name} must be a 1-D float64 array, got "
                    f"dtype {arr.dtype} and shape {arr.shape}"
                )
        for name in _INDEX_FIELDS:
            arr = getattr(self, name)
            if arr.dtype != np.int64 or arr.ndim != 1:
                raise SolverError(
                    f"MilpProgram.{name} must be a 1-D int64 array, got "
                    f"dtype {arr.dtype} and shape {arr.shape}"
                )
        if self.integrality.dtype != np.bool_ or self.integrality.ndim != 1:
            raise SolverError(
                "MilpProgram.integrality must be a 1-D bool array, got dtype "
                f"{self.integrality.dtype} and shape {self.integrality.shape}"
            )
        n, m, nnz = self.num_cols(), self.num_rows(), self.A_vals.shape[0]
        for name, size in (
            ("col_lower", n),
            ("col_upper", n),
            ("integrality", n),
            ("row_upper", m),
            ("A_rows", nnz),
            ("A_cols", nnz),
        ):
            if getattr(self, name).shape[0] != size:
                raise SolverError(
                    f"MilpProgram.{name} has length {getattr(self, name).shape[0]}, expected {size}"
                )
        if self.names is not None and len(self.names) != n:
            raise SolverError(f"MilpProgram.names has {len(self.names)} entries, expected {n}")
        if not np.all(np.isfinite(self.c)):
            bad = _first_bad(~np.isfinite(self.c))
            raise SolverError(f"MilpProgram.c has non-finite entries at {bad}")
        if not np.all(np.isfinite(self.A_vals)):
            raise SolverError(
                "MilpProgram.A_vals has non-finite entries at "
                f"{_first_bad(~np.isfinite(self.A_vals))}"
            )
        if not math.isfinite(float(self.offset)):
            raise SolverError(f"MilpProgram.offset must be finite, got {self.offset}")
        if nnz and (self.A_rows.min() < 0 or self.A_rows.max() >= m):
            raise SolverError(f"MilpProgram.A_rows has indices outside [0, {m})")
        if nnz and (self.A_cols.min() < 0 or self.A_cols.max() >= n):
            raise SolverError(f"MilpProgram.A_cols has indices outside [0, {n})")
        _check_bounds("col", self.col_lower, self.col_upper)
        _check_bounds("row", self.row_lower, self.row_upper)
        if self.hessian_diag is not None:
            h = np.asarray(self.hessian_diag)
            if h.shape != (n,) or not np.all(np.isfinite(h)) or np.any(h < 0) or self.is_mip():
                raise SolverError(
                    "MilpProgram.hessian_diag must be (n,) finite >= 0, "
                    "and a QP has no integer column"
                )


def _first_bad(mask: np.ndarray, limit: int = 5) -> list[int]:
    """The first few indices where mask is True, for error messages."""
    return [int(i) for i in np.flatnonzero(mask)[:limit]]


def _check_bounds(kind: str, lower: np.ndarray, upper: np.ndarray) -> None:
    """Reject NaN, lower=+inf, upper=-inf and lower > upper."""
    for side, arr in (("lower", lower), ("upper", upper)):
        if np.any(np.isnan(arr)):
            raise SolverError(f"MilpProgram.{kind}_{side} has NaN at {_first_bad(np.isnan(arr))}")
    if np.any(lower == np.inf):
        raise SolverError(f"MilpProgram.{kind}_lower is +inf at {_first_bad(lower == np.inf)}")
    if np.any(upper == -np.inf):
        raise SolverError(f"MilpProgram.{kind}_upper is -inf at {_first_bad(upper == -np.inf)}")
    if np.any(lower > upper):
        bad = _first_bad(lower > upper)
        raise SolverError(f"MilpProgram {kind} bounds have lower > upper at {bad}")


@dataclass
class SolveLimits:
    """Budgets and early-stop thresholds for one solve."""

    time_limit: float = math.inf
    threads: int = 1
    stop_above: float | None = None
    stop_below: float | None = None
    mip_rel_gap: float = 1e-4
    mip_abs_gap: float = 1e-6
    node_limit: int | None = None
    presolve: bool | None = None  # None: the backend's default
    # an object with is_set() (a threading.Event): once set, the solve stops as at a time limit
    # (HiGHS checks it in its interrupt callbacks; PuLP/CBC cannot be interrupted and ignores it)
    cancel: Any = None

    def validate(self) -> None:
        """Raise SolverError for limits no backend can honour."""
        if math.isnan(self.time_limit) or self.time_limit < 0:
            raise SolverError(f"SolveLimits.time_limit must be >= 0, got {self.time_limit}")
        if int(self.threads) < 1:
            raise SolverError(f"SolveLimits.threads must be >= 1, got {self.threads}")
        for name in ("mip_rel_gap", "mip_abs_gap"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise SolverError(f"SolveLimits.{name} must be finite and >= 0, got {value}")
        if self.mip_rel_gap >= 1:
            raise SolverError(f"SolveLimits.mip_rel_gap must be < 1, got {self.mip_rel_gap}")
        for name in ("stop_above", "stop_below"):
            value = getattr(self, name)
            if value is not None and math.isnan(value):
                raise SolverError(f"SolveLimits.{name} must not be NaN")
        if self.node_limit is not None and int(self.node_limit) < 0:
            raise SolverError(f"SolveLimits.node_limit must be >= 0, got {self.node_limit}")


@dataclass
class SolveResult:
    """What a backend found; dual_bound is a lower bound the solver proved (None if unknown)."""

    status: SolveStatus
    x: np.ndarray | None
    objective: float | None
    dual_bound: float | None
    seconds: float
    message: str = ""
    node_count: int | None = None
    row_duals: np.ndarray | None = None
    col_duals: np.ndarray | None = None
    stopped_early: bool = False
    dual_ray: np.ndarray | None = None  # LP declared infeasible: a Farkas ray (row multipliers)


@runtime_checkable
class MilpSolver(Protocol):
    """A MILP/LP backend: cheap availability check and one solve entry point."""

    name: str

    def is_available(self) -> bool:
        """Whether the backend can run here, without importing native code if possible."""
        ...

    def solve(self, program: MilpProgram, limits: SolveLimits | None = None) -> SolveResult:
        """Solve program within limits (None: defaults); solver failures give status ERROR."""
        ...


def compressed(program: MilpProgram, by_column: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSC (by_column) or CSR arrays (start, index, value) of A with duplicates summed.

    Entries that sum to exactly zero are dropped. start has length n+1 (CSC) or m+1 (CSR).
    """
    n, m = program.num_cols(), program.num_rows()
    if by_column:
        major, minor = program.A_cols, program.A_rows
    else:
        major, minor = program.A_rows, program.A_cols
    n_major, n_minor = (n, m) if by_column else (m, n)
    if program.A_vals.size == 0:
        return (
            np.zeros(n_major + 1, dtype=np.int64),
            np.zeros(0, dtype=np.int64),
            np.zeros(0, dtype=np.float64),
        )
    key = major * np.int64(max(n_minor, 1)) + minor
    unique_keys, inverse = np.unique(key, return_inverse=True)
    values = np.bincount(inverse.ravel(), weights=program.A_vals, minlength=unique_keys.size)
    keep = values != 0.0
    unique_keys, values = unique_keys[keep], values[keep]
    major_idx = unique_keys // max(n_minor, 1)
    minor_idx = unique_keys - major_idx * max(n_minor, 1)
    start = np.zeros(n_major + 1, dtype=np.int64)
    np.cumsum(np.bincount(major_idx, minlength=n_major), out=start[1:])
    return start, minor_idx.astype(np.int64), values.astype(np.float64)


def max_violation(program: MilpProgram, x: np.ndarray) -> float:
    """Largest relative violation of rows, column bounds and integrality by x (0 if feasible)."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape != (program.num_cols(),) or not np.all(np.isfinite(x)):
        return math.inf
    activity = np.bincount(
        program.A_rows, weights=program.A_vals * x[program.A_cols], minlength=program.num_rows()
    )
    parts = [0.0]
    for value, lower, upper in (
        (activity, program.row_lower, program.row_upper),
        (x, program.col_lower, program.col_upper),
    ):
        if value.size:
            below = (lower - value) / (1.0 + np.abs(np.where(np.isfinite(lower), lower, 0.0)))
            above = (value - upper) / (1.0 + np.abs(np.where(np.isfinite(upper), upper, 0.0)))
            parts.append(float(np.max(np.maximum(below, above))))
    integer_x = x[program.integrality]
    if integer_x.size:
        parts.append(float(np.max(np.abs(integer_x - np.round(integer_x)))))
    return max(parts)


def solve_without_columns(program: MilpProgram, seconds: float) -> SolveResult:
    """Decide a program with no columns exactly: feasible iff every row admits activity 0."""
    feasible = bool(np.all(program.row_lower <= 0.0) and np.all(program.row_upper >= 0.0))
    if feasible:
        value = float(program.offset)
        return SolveResult(
            SolveStatus.OPTIMAL,
            np.zeros(0),
            value,
            value,
            seconds,
            "no columns",
            row_duals=np.zeros(program.num_rows()),
            col_duals=np.zeros(0),
        )
    return SolveResult(
        SolveStatus.INFEASIBLE, None, None, math.inf, seconds, "no columns and a row excludes 0"
    )


def start_solve(
    program: MilpProgram, limits: SolveLimits | None, t0: float
) -> tuple[SolveLimits, SolveResult | None]:
    """Shared preamble of every backend: validate, default limits, and decide column-free programs.

    Returns the limits to use and, for a program without columns, its final result.
    """
    limits = SolveLimits() if limits is None else limits
    program.validate()
    limits.validate()
    if program.num_cols() == 0:
        return limits, solve_without_columns(program, time.perf_counter() - t0)
    return limits, None

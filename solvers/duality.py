"""Rigorous LP lower bounds from arbitrary row multipliers (weak Lagrangian duality)."""

from __future__ import annotations

import math

import numpy as np

from completeverify.errors import SolverError

from .base import MilpProgram

_EPS = float(np.finfo(np.float64).eps)


def safe_lp_lower_bound(
    program: MilpProgram, row_duals: np.ndarray, clamp_tol: float = 1e-7
) -> float:
    """A lower bound on min c@x + offset over the LP relaxation, valid for ANY row_duals y (m,).

    With r = c - A^T y, every x in the box with row_lower <= A x <= row_upper satisfies
    c@x = r@x + y@(A x) >= sum_j min(r_j l_j, r_j u_j) + sum_i (y_i lo_i if y_i > 0 else y_i up_i).
    A multiplier whose sign points at an infinite row side is set to 0 when |y_i| <= clamp_tol
    (a different y, so still valid); a larger one makes the bound -inf, as does a nonzero r_j
    against an infinite column bound. A rounding allowance is subtracted so that float64
    error cannot push the result above the true value of the bound.
    """
    program.validate()
    m, n = program.num_rows(), program.num_cols()
    y = np.array(row_duals, dtype=np.float64, copy=True)
    if y.shape != (m,):
        raise SolverError(f"row_duals has shape {y.shape}, expected ({m},)")
    if not np.all(np.isfinite(y)):
        raise SolverError("row_duals contains non-finite values")
    if not (math.isfinite(clamp_tol) and clamp_tol >= 0):
        raise SolverError(f"clamp_tol must be finite and >= 0, got {clamp_tol}")

    lower, upper = program.row_lower, program.row_upper
    wrong = ((y > 0) & np.isneginf(lower)) | ((y < 0) & np.isposinf(upper))
    small = wrong & (np.abs(y) <= clamp_tol)
    y[small] = 0.0
    if np.any(wrong & ~small):
        return -math.inf

    side = np.where(y > 0, lower, np.where(y < 0, upper, 0.0))
    side = np.where(y == 0, 0.0, side)
    row_terms = y * side

    y_at = y[program.A_rows]
    aty = np.bincount(program.A_cols, weights=program.A_vals * y_at, minlength=n)
    abs_weights = np.abs(program.A_vals) * np.abs(y_at)
    abs_aty = np.bincount(program.A_cols, weights=abs_weights, minlength=n)
    r = program.c - aty
    col_bound = np.where(r > 0, program.col_lower, np.where(r < 0, program.col_upper, 0.0))
    col_bound = np.where(r == 0, 0.0, col_bound)
    if not np.all(np.isfinite(col_bound)):
        return -math.inf
    col_terms = r * col_bound

    total = float(program.offset) + float(np.sum(row_terms)) + float(np.sum(col_terms))
    magnitude = (
        abs(float(program.offset))
        + float(np.sum(np.abs(row_terms)))
        + float(np.sum(np.abs(col_bound) * (np.abs(program.c) + abs_aty)))
    )
    if not (math.isfinite(total) and math.isfinite(magnitude)):
        return -math.inf
    operations = program.A_vals.size + n + m + 8
    allowance = 2.0 * operations * _EPS * magnitude + 1e-12
    return total - allowance

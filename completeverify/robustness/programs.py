"""Exact MILP/QP programs for norm balls and minimal adversarial distances.

Both start from ``milp.encoder.encode`` (the network on a box that contains the ball, with the
unsafe polytope "class j scores at least class k" and its column t >= y_k - y_j) and append:

* ``with_ball``: the ball as constraints (verification of one radius, objective t as before):
  l1: s_i >= |x_i - c_i|, sum s <= eps; l0: binaries z_i, |x_i - c_i| <= z_i * room_i,
  sum z <= k; linf: nothing (the box is the ball).  l2 has no linear form (see qp_bab).
* ``with_distance``: t <= 0 (the attacker reaches the polytope) and the distance as objective:
  linf: e >= |x_i - c_i|; l1: sum s_i; l0: sum z_i; l2: sum (x_i - c_i)^2 as a diagonal
  Hessian (a convex QP once the ReLU binaries are fixed or relaxed).

Rigorous bound of a QP from any row multipliers (``safe_qp_lower_bound``): weak Lagrangian
duality, as ``solvers.safe_lp_lower_bound`` for LPs, with each column's separable term
0.5 h_j x_j^2 + r_j x_j minimised in closed form over its bounds.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..bounds.input_sets import Ball
from ..milp.encoder import Encoding
from ..solvers import MilpProgram

_EPS = float(np.finfo(np.float64).eps)


@dataclasses.dataclass
class DistanceProgram:
    """A program whose objective is the distance (l2: squared) and where to read the input."""

    program: MilpProgram
    input_cols: np.ndarray
    squared: bool  # l2: the objective is ||x - c||^2


def _append(p: MilpProgram, lo, hi, integer: bool, n: int) -> tuple[MilpProgram, np.ndarray]:
    """p with n new columns (bounds lo, hi); returns (program, their indices)."""
    idx = np.arange(p.num_cols(), p.num_cols() + n)
    p = dataclasses.replace(
        p,
        c=np.concatenate([p.c, np.zeros(n)]),
        col_lower=np.concatenate([p.col_lower, np.broadcast_to(lo, (n,))]),
        col_upper=np.concatenate([p.col_upper, np.broadcast_to(hi, (n,))]),
        integrality=np.concatenate([p.integrality, np.full(n, integer)]),
        names=None,
    )
    return p, idx


def _rows(p: MilpProgram, rows, cols, vals, lo, hi, m: int) -> MilpProgram:
    """p with m new rows given by local row indices, columns and values."""
    return dataclasses.replace(
        p,
        A_rows=np.concatenate([p.A_rows, np.asarray(rows, dtype=np.int64) + p.num_rows()]),
        A_cols=np.concatenate([p.A_cols, np.asarray(cols, dtype=np.int64)]),
        A_vals=np.concatenate([p.A_vals, np.asarray(vals, dtype=np.float64)]),
        row_lower=np.concatenate([p.row_lower, np.broadcast_to(np.asarray(lo, np.float64), (m,))]),
        row_upper=np.concatenate([p.row_upper, np.broadcast_to(np.asarray(hi, np.float64), (m,))]),
    )


def _abs_dev(p: MilpProgram, x: np.ndarray, c: np.ndarray, s: np.ndarray) -> MilpProgram:
    """Rows s_i - x_i >= -c_i and s_i + x_i >= c_i (so s_i >= |x_i - c_i|)."""
    n = x.size
    ar = np.arange(n)
    p = _rows(p, np.r_[ar, ar], np.r_[s, x], np.r_[np.ones(n), -np.ones(n)], -c, np.inf, n)
    return _rows(p, np.r_[ar, ar], np.r_[s, x], np.ones(2 * n), c, np.inf, n)


def _changed(
    p: MilpProgram,
    x: np.ndarray,
    c: np.ndarray,
    z: np.ndarray,
    room_dn: np.ndarray,
    room_up: np.ndarray,
) -> MilpProgram:
    """Rows x_i - c_i <= room_up_i z_i and c_i - x_i <= room_dn_i z_i (z_i = 0: x_i = c_i)."""
    n = x.size
    ar = np.arange(n)
    p = _rows(p, np.r_[ar, ar], np.r_[x, z], np.r_[np.ones(n), -room_up], -np.inf, c, n)
    return _rows(p, np.r_[ar, ar], np.r_[x, z], np.r_[-np.ones(n), -room_dn], -np.inf, -c, n)


def with_ball(enc: Encoding, ball: Ball) -> MilpProgram:
    """enc's program (minimise t) restricted to the ball (its box is already the column bounds)."""
    p, x = enc.program, enc.input_cols
    c = ball.center
    room_dn, room_up = c - ball.lower, ball.upper - c
    n = x.size
    if ball.norm == "l1":
        p, s = _append(p, 0.0, np.maximum(room_dn, room_up), False, n)
        p = _abs_dev(p, x, c, s)
        return _rows(p, np.zeros(n), s, np.ones(n), -np.inf, ball.eps, 1)
    if ball.norm == "l0":
        p, z = _append(p, 0.0, 1.0, True, n)
        p = _changed(p, x, c, z, room_dn, room_up)
        return _rows(p, np.zeros(n), z, np.ones(n), -np.inf, float(ball.k), 1)
    if ball.norm == "l2":
        raise ValueError("an L2 ball has no linear encoding; use the QP branch and bound")
    return p


def with_distance(
    enc: Encoding,
    center: np.ndarray,
    norm: str,
    lower: np.ndarray,
    upper: np.ndarray,
    max_dist: float,
) -> DistanceProgram:
    """min dist(x, center) subject to the network in the unsafe polytope (t <= 0).

    lower/upper: the domain box (room for the L0 indicators); max_dist caps the distance column
    (linf/l1; it is implied by the encoding's box, so nothing is cut off).
    """
    p, x = enc.program, enc.input_cols
    c = np.asarray(center, dtype=np.float64).reshape(-1)
    n = x.size
    cu = p.col_upper.copy()
    cu[enc.t_col] = min(cu[enc.t_col], 0.0)
    p = dataclasses.replace(p, col_upper=cu, c=np.zeros(p.num_cols()), offset=0.0)
    room_dn, room_up = c - lower, upper - c
    if norm == "linf":
        p, e = _append(p, 0.0, max(max_dist, 0.0), False, 1)
        p = _abs_dev(p, x, c, np.full(n, e[0]))
        cc = p.c.copy()
        cc[e[0]] = 1.0
        return DistanceProgram(dataclasses.replace(p, c=cc), x, False)
    if norm == "l1":
        p, s = _append(p, 0.0, np.maximum(room_dn, room_up), False, n)
        p = _abs_dev(p, x, c, s)
        cc = p.c.copy()
        cc[s] = 1.0
        return DistanceProgram(dataclasses.replace(p, c=cc), x, False)
    if norm == "l0":
        p, z = _append(p, 0.0, 1.0, True, n)
        p = _changed(p, x, c, z, room_dn, room_up)
        cc = p.c.copy()
        cc[z] = 1.0
        return DistanceProgram(dataclasses.replace(p, c=cc), x, False)
    cc = p.c.copy()
    cc[x] = -2.0 * c
    h = np.zeros(p.num_cols())
    h[x] = 2.0
    p = dataclasses.replace(p, c=cc, offset=float(c @ c), hessian_diag=h)
    return DistanceProgram(p, x, True)


def relaxed(p: MilpProgram) -> MilpProgram:
    """The program with every integer column made continuous (its LP/QP relaxation)."""
    return dataclasses.replace(p, integrality=np.zeros(p.num_cols(), dtype=bool))


def safe_qp_lower_bound(program: MilpProgram, row_duals: np.ndarray) -> float:
    """A rigorous lower bound on min c@x + 0.5 sum h_j x_j^2 + offset for ANY multipliers y (m,).

    With r = c - A^T y: for x in the column box satisfying the rows, the objective is at least
    sum_j min_{x_j in [l_j, u_j]} (0.5 h_j x_j^2 + r_j x_j) + sum_i y_i * (row side), the row
    side being lower (y_i > 0) or upper (y_i < 0).  An infinite side or column bound the
    minimum needs gives -inf.  A float64 rounding allowance is subtracted.
    """
    h = (
        np.zeros(program.num_cols())
        if program.hessian_diag is None
        else np.asarray(program.hessian_diag, dtype=np.float64)
    )
    y = np.asarray(row_duals, dtype=np.float64)
    if y.shape != (program.num_rows(),) or not np.all(np.isfinite(y)):
        return -math.inf
    lo_r, up_r = program.row_lower, program.row_upper
    side = np.where(y > 0, lo_r, np.where(y < 0, up_r, 0.0))
    if not np.all(np.isfinite(side[y != 0])):
        return -math.inf
    row_terms = np.where(y == 0, 0.0, y * np.where(y == 0, 0.0, side))
    aty = np.bincount(
        program.A_cols, weights=program.A_vals * y[program.A_rows], minlength=program.num_cols()
    )
    abs_aty = np.bincount(
        program.A_cols,
        weights=np.abs(program.A_vals * y[program.A_rows]),
        minlength=program.num_cols(),
    )
    r = program.c - aty
    lo, hi = program.col_lower, program.col_upper
    quad = h > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        x_q = np.clip(np.where(quad, -r / np.where(quad, h, 1.0), 0.0), lo, hi)
    x_l = np.where(r > 0, lo, np.where(r < 0, hi, 0.0))
    xs = np.where(quad, x_q, x_l)
    if not np.all(np.isfinite(xs)):
        return -math.inf
    col_terms = 0.5 * h * xs * xs + r * xs
    total = float(program.offset) + float(np.sum(row_terms)) + float(np.sum(col_terms))
    mag = (
        abs(float(program.offset))
        + float(np.sum(np.abs(row_terms)))
        + float(np.sum(0.5 * h * xs * xs + np.abs(xs) * (np.abs(program.c) + abs_aty)))
    )
    ops = program.A_vals.size + 2 * program.num_cols() + program.num_rows() + 8
    return total - (2.0 * ops * _EPS * mag + 1e-12)

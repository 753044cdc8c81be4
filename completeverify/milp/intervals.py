"""Float-safe interval arithmetic for the MILP's big-M constants and column boxes.

Every bound the exact encoding turns into a constraint constant is widened outward here, so
float64 rounding in the bounds it was given, or in the sums it computes, never cuts off a
point of the program: ``widen`` pads given bounds, ``interval_affine`` bounds an affine map
over a box with a rounding allowance that holds whatever the summation order.
"""

from __future__ import annotations

import numpy as np


def widen(lower: np.ndarray, upper: np.ndarray, rel: float) -> tuple[np.ndarray, np.ndarray]:
    """Widen bounds outward by a relative and absolute margin (float rounding cover)."""
    pad = rel * (1.0 + np.maximum(np.abs(lower), np.abs(upper)))
    return lower - pad, upper + pad


def widened(bounds: tuple[np.ndarray, np.ndarray], rel: float) -> tuple[np.ndarray, np.ndarray]:
    """widen() of one node's (lower, upper) as flat float64 arrays."""
    lo, hi = (np.asarray(a, dtype=np.float64).reshape(-1) for a in bounds)
    return widen(lo, hi, rel)


_EPS = float(np.finfo(np.float64).eps)
_TINY = 1e-290  # covers underflow of products, per term


def interval_affine(
    n: int, rows: np.ndarray, vals: np.ndarray, const: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rigorous bounds of v_r = const_r + sum_k vals_k x_k (over rows_k == r), x_k in [lo_k, hi_k].

    lo/hi are given per term (already gathered).  The float64 sums are widened by an allowance
    2 (k_r + 2) eps sum|terms| (k_r terms in row r), which covers the rounding of every product
    and addition whatever the summation order.  Infinite input bounds give infinite results.
    """
    vals = np.asarray(vals, dtype=np.float64)
    const = np.broadcast_to(np.asarray(const, dtype=np.float64), (n,))
    with np.errstate(invalid="ignore", over="ignore"):
        a, b = vals * lo, vals * hi
    zero = vals == 0.0
    a, b = np.where(zero, 0.0, a), np.where(zero, 0.0, b)
    t_lo, t_hi = np.minimum(a, b), np.maximum(a, b)
    low = np.bincount(rows, weights=t_lo, minlength=n) + const
    up = np.bincount(rows, weights=t_hi, minlength=n) + const
    count = np.bincount(rows, minlength=n) + 2.0
    mag = np.bincount(rows, weights=np.maximum(np.abs(t_lo), np.abs(t_hi)), minlength=n)
    mag = mag + np.abs(const)
    with np.errstate(invalid="ignore"):
        slack = 2.0 * count * _EPS * mag + count * _TINY
        low, up = low - slack, up + slack
    return np.where(np.isnan(low), -np.inf, low), np.where(np.isnan(up), np.inf, up)


def widen_finite(lower: np.ndarray, upper: np.ndarray, rel: float) -> tuple[np.ndarray, ...]:
    """widen, with the pad taken from the finite sides only (an infinite side stays infinite)."""
    mag = np.maximum(
        np.where(np.isfinite(lower), np.abs(lower), 0.0),
        np.where(np.isfinite(upper), np.abs(upper), 0.0),
    )
    pad = rel * (1.0 + mag)
    return lower - pad, upper + pad

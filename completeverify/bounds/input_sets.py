"""Norm balls intersected with a domain box as input sets, and their sound concretisation.

An input set S = {x : ||x - c||_p <= eps} ∩ [dom_lo, dom_hi] (p in linf, l1, l2, l0; for l0
eps is the number of features that may change, each anywhere in the domain).  The bound engine
keeps working on a box that contains S (``Ball.box``); a linear lower bound A x + b found by
CROWN is then concretised over S as the larger of its minimum over the box and its minimum over
S computed here (both are valid lower bounds, so their maximum is too).

Minimum of a @ x over S, exact for every norm (the domain box included):

* l1: a fractional knapsack: moving x_i towards the better side gains |a_i| per unit, up to the
  distance to the box; the budget eps goes to the largest |a_i| first.
* l0: each changed feature goes to its best box end; the k most negative gains are taken.
* l2: Lagrangian duality: for every lam > 0, min over the box of a@d + lam (||d||^2 - eps^2) is a
  lower bound (weak duality, d = x - c); lam is found by bisection so that ||d(lam)|| = eps,
  where the bound is exact (strong duality for this convex problem).  Any lam is sound, so an
  inexact bisection only loosens it.

Float safety: the result is lowered by rel * (|value| + magnitude) + abs, like
``backward.concretize``; NaN becomes -inf.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ModelError

NORMS = ("linf", "l1", "l2", "l0")


@dataclass(frozen=True, eq=False)
class Ball:
    """{x : ||x - center||_norm <= eps} ∩ [lower, upper]; center, lower, upper flat (n,) float64.

    For norm "l0" eps is the number of features allowed to change (each anywhere in the domain).
    """

    center: np.ndarray
    eps: float
    norm: str
    lower: np.ndarray
    upper: np.ndarray

    def __post_init__(self) -> None:
        """Validate the norm, shapes and that the centre lies in the domain."""
        if self.norm not in NORMS:
            raise ModelError(f"unknown norm '{self.norm}' (choose from {', '.join(NORMS)})")
        c = np.asarray(self.center, dtype=np.float64).reshape(-1)
        lo = np.broadcast_to(np.asarray(self.lower, dtype=np.float64), c.shape).copy()
        hi = np.broadcast_to(np.asarray(self.upper, dtype=np.float64), c.shape).copy()
        if not (np.all(np.isfinite(c)) and np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ModelError("ball: centre and domain must be finite")
        if np.any(lo > hi) or np.any(c < lo) or np.any(c > hi):
            raise ModelError("ball: the centre must lie inside the domain box")
        if not (float(self.eps) >= 0):
            raise ModelError(f"ball: eps must be >= 0, got {self.eps}")
        object.__setattr__(self, "center", c)
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)
        object.__setattr__(self, "eps", float(self.eps))

    @property
    def k(self) -> int:
        """The L0 budget as a whole number of features."""
        return int(np.floor(self.eps + 1e-9))

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """The tightest box containing the set: (lower (n,), upper (n,))."""
        if self.norm == "l0":
            if self.k == 0:
                return self.center.copy(), self.center.copy()
            return self.lower.copy(), self.upper.copy()
        return (
            np.maximum(self.lower, self.center - self.eps),
            np.minimum(self.upper, self.center + self.eps),
        )

    def distance(self, x: np.ndarray) -> float:
        """||x - center|| in this ball's norm (l0: the number of changed features)."""
        return norm_distance(np.asarray(x, dtype=np.float64).reshape(-1) - self.center, self.norm)

    def contains(self, x: np.ndarray) -> bool:
        """Whether x lies in the set (exact float64 comparisons)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        in_box = bool(np.all(x >= self.lower) and np.all(x <= self.upper))
        return in_box and self.distance(x) <= self.eps

    def lower_bound(
        self, a: torch.Tensor, bias: torch.Tensor, rel: float = 1e-9, abs_: float = 1e-12
    ) -> torch.Tensor:
        """Sound lower bound (B, M) of min over the set of a @ x + bias; a (B, M, n), bias (B,
        M)."""
        return concretize_set(a, bias, self, rel, abs_)


def norm_distance(delta: np.ndarray, norm: str) -> float:
    """The norm of a flat perturbation (l0: count of nonzero entries)."""
    if norm == "linf":
        return float(np.max(np.abs(delta))) if delta.size else 0.0
    if norm == "l1":
        return float(np.sum(np.abs(delta)))
    if norm == "l2":
        return float(np.sqrt(np.sum(delta * delta)))
    return float(np.count_nonzero(delta))


def concretize_set(
    a: torch.Tensor, bias: torch.Tensor, ball: Ball, rel: float, abs_: float
) -> torch.Tensor:
    """min over ball ∩ domain of a @ x + bias, lowered for rounding; a (B, M, n) -> (B, M)."""
    a = a.to(torch.float64)
    c = torch.as_tensor(ball.center, dtype=torch.float64)
    room_dn = torch.as_tensor(ball.center - ball.lower, dtype=torch.float64)  # (n,) >= 0
    room_up = torch.as_tensor(ball.upper - ball.center, dtype=torch.float64)
    base = a @ c  # (B, M)
    if ball.norm == "linf":
        gain, mag = _linf(a, room_dn, room_up, ball.eps)
    elif ball.norm == "l1":
        gain, mag = _l1(a, room_dn, room_up, ball.eps)
    elif ball.norm == "l0":
        gain, mag = _l0(a, room_dn, room_up, ball.k)
    else:
        gain, mag = _l2(a, room_dn, room_up, ball.eps)
    val = base - gain + bias
    mag = mag + (a.abs() @ c.abs()) + bias.abs()
    lb = val - rel * (val.abs() + mag) - abs_
    return torch.where(torch.isnan(lb), torch.full_like(lb, float("-inf")), lb)


def _caps(a: torch.Tensor, room_dn: torch.Tensor, room_up: torch.Tensor) -> torch.Tensor:
    """How far each x_i may move in its decreasing direction of a_i x_i: (B, M, n)."""
    return torch.where(a > 0, room_dn, room_up)


def _linf(a, room_dn, room_up, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest decrease of a @ d over |d_i| <= eps within the box (exact): (gain, magnitude)."""
    cap = _caps(a, room_dn, room_up).clamp(max=eps)
    gain = (a.abs() * cap).sum(-1)
    return gain, gain


def _l1(a, room_dn, room_up, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest decrease of a @ d over ||d||_1 <= eps within the box (fractional knapsack)."""
    g = a.abs()
    cap = torch.where(g > 0, _caps(a, room_dn, room_up), torch.zeros_like(g))
    g_sorted, order = torch.sort(g, dim=-1, descending=True)
    cap_sorted = torch.gather(cap, -1, order)
    before = torch.cumsum(cap_sorted, -1) - cap_sorted
    take = torch.minimum(cap_sorted, (eps - before).clamp(min=0.0))
    gain = (g_sorted * take).sum(-1)
    return gain, gain


def _l0(a, room_dn, room_up, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest decrease of a @ d changing at most k features, each within the box (exact)."""
    per = a.abs() * _caps(a, room_dn, room_up)
    k = min(k, per.shape[-1])
    if k <= 0:
        z = per.new_zeros(per.shape[:-1])
        return z, z
    gain = torch.topk(per, k, dim=-1).values.sum(-1)
    return gain, gain


def _l2(a, room_dn, room_up, eps: float, iters: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest decrease of a @ d over ||d||_2 <= eps within the box, by its Lagrangian dual.

    For lam > 0: d_i(lam) = clip(-a_i / (2 lam), -room_dn_i, room_up_i) minimises
    a@d + lam ||d||^2 over the box, and q(lam) = a@d + lam (||d||^2 - eps^2) <= min over the set.
    Returns (-q(lam), magnitude) with lam bisected (in log scale) towards ||d(lam)|| = eps; the
    ball-only value eps ||a|| and the box-only value are both looser and are covered by it.
    """
    if eps <= 0:
        z = a.new_zeros(a.shape[:-1])
        return z, z
    lo_d, hi_d = -room_dn, room_up

    def d_of(lam: torch.Tensor) -> torch.Tensor:
        return torch.minimum(torch.maximum(-a / (2.0 * lam.unsqueeze(-1)), lo_d), hi_d)

    norm_a = a.norm(dim=-1).clamp(min=1e-300)
    # lam_hi: ball-only optimum lam = ||a|| / (2 eps) makes ||d|| <= eps; lam_lo makes it larger
    log_hi = torch.log(norm_a / (2.0 * eps)) + 1.0
    log_lo = log_hi - 80.0
    for _ in range(iters):
        mid = (log_lo + log_hi) / 2
        too_long = d_of(torch.exp(mid)).norm(dim=-1) > eps
        log_lo = torch.where(too_long, mid, log_lo)
        log_hi = torch.where(too_long, log_hi, mid)
    candidates = []
    for log_lam in (log_lo, log_hi):
        lam = torch.exp(log_lam)
        d = d_of(lam)
        q = (a * d).sum(-1) + lam * ((d * d).sum(-1) - eps * eps)
        candidates.append(q)
    q_best = torch.maximum(*candidates)
    # the box alone (lam -> 0) is exact when its minimiser already lies in the ball
    box_min = -(a.abs() * _caps(a, room_dn, room_up)).sum(-1)
    box_d_norm = torch.where(a > 0, room_dn, torch.where(a < 0, room_up, 0.0 * room_up)).norm(
        dim=-1
    )
    q_best = torch.where(box_d_norm <= eps, torch.maximum(q_best, box_min), q_best)
    mag = (a.abs() * torch.maximum(room_dn, room_up)).sum(-1) + torch.exp(log_hi) * eps * eps
    return -q_best, mag

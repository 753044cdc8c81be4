"""Exact certified radius: the minimal adversarial distance under L-inf, L1, L2 or L0.

``certified_radius`` returns a proven lower bound L (every ball of radius below L is certified)
and an upper bound U (the distance of an adversarial example replayed in the ONNX model); it is
exact when U - L <= atol + rtol * U (L0: when ceil(L) >= U, distances being whole numbers).

Method ("auto" = one-shot, then bisection on what is left):

1. warm start: PGD over L-inf boxes gives a replayed example (U in every norm); the bound
   engine's certified radius (CROWN over the ball, dual-norm concretisation) gives L;
2. one-shot: for linf / l1 / l0 one MILP per other class j with the distance as objective on
   the box of radius U (``programs.with_distance``); L_j is HiGHS's proven dual bound less the
   MILP margin (an LP: the rigorous bound from row duals), the candidate is replayed.  For l2:
   branch and bound with QP nodes (``qp_bab``);
3. bisection: ``decide`` on the midpoint of [L, U] until the gap closes (also the baseline and
   test oracle: ``bisect_radius``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import Deadline, MilpConfig
from ..errors import InputError
from ..milp.decide import lp_optimum_bound
from ..milp.encoder import encode
from ..solvers import SolveLimits, SolveStatus, get_solver
from .ball_verify import decide
from .problem import (
    Problem,
    attack_radius,
    check_norm,
    crown_certified,
    crown_radius,
    default_max_radius,
    greedy_attack,
    l2_attack,
    make_problem,
    shrink,
)
from .programs import with_distance
from .qp_bab import l2_search

RTOL, ATOL = 1e-3, 1e-4


@dataclass
class RadiusResult:
    """Proven lower bound, replayed upper bound, whether they meet, the adversarial example."""

    lower: float
    upper: float
    exact: bool
    adversarial: np.ndarray | None  # flat input (float64 of the model's dtype values) or None
    stats: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            "lower": self.lower,
            "upper": self.upper,
            "exact": self.exact,
            "tolerance": {"rtol": RTOL, "atol": ATOL},
            "stats": self.stats,
        }


def meets(lower: float, upper: float, norm: str) -> bool:
    """Whether the bounds meet within the stated tolerance (l0: as whole numbers)."""
    if norm == "l0":
        return math.ceil(lower - 1e-9) >= upper
    return upper - lower <= ATOL + RTOL * upper


class _Bounds:
    """The running [lower, upper] with the witness of the upper bound."""

    def __init__(self, prob: Problem, norm: str, r_max: float) -> None:
        """Start from [0, r_max]; upper is infinite until an example replays."""
        self.prob, self.norm = prob, norm
        self.lower, self.upper, self.r_max = 0.0, math.inf, r_max
        self.adv: np.ndarray | None = None

    def offer(self, x: np.ndarray | None) -> None:
        """Take a replayed adversarial example if it is closer."""
        if x is not None:
            d = self.prob.distance(x, self.norm)
            if d < self.upper:
                self.upper, self.adv = d, x

    def raise_lower(self, value: float) -> None:
        """Raise the proven lower bound (never above a replayed distance)."""
        if self.norm == "l0":
            value = math.ceil(value - 1e-9)
        self.lower = max(self.lower, min(value, self.upper))

    def exact(self) -> bool:
        """Whether the bounds meet."""
        return math.isfinite(self.upper) and meets(self.lower, self.upper, self.norm)


def _pre(prob: Problem, norm: str, radius: float) -> tuple[np.ndarray, np.ndarray, dict, list[int]]:
    """The ball's box, CROWN pre-activation bounds over the ball, the classes CROWN rules out."""
    ball = prob.ball(radius, norm)
    lo, hi = ball.box()
    _, pre, proven = crown_certified(prob, ball)
    return lo, hi, pre, proven


def _milp_radius(b: _Bounds, deadline: Deadline, margin: float) -> bool:
    """One MILP per class with the distance as objective; True when every class finished."""
    prob, norm = b.prob, b.norm
    radius = min(b.upper, b.r_max)
    lo, hi, pre, proven = _pre(prob, norm, radius)
    solver = get_solver("highs")
    n_out = prob.graph.n_outputs
    complete = True
    per_class = [radius] * len(proven)  # CROWN: no example of these classes within the radius
    classes = [j for j in prob.other_classes() if j not in proven]
    for idx, j in enumerate(classes):
        if deadline.expired():
            return False  # a class without a bound: the lower bound stays as it was
        row = np.zeros((1, n_out))
        row[0, prob.label], row[0, j] = 1.0, -1.0
        try:
            enc = encode(prob.graph, lo, hi, pre, row, np.zeros(1))
        except ValueError:
            return False
        if enc.program.col_lower[enc.t_col] > 0:
            per_class.append(radius)  # j never reaches k inside the box
            continue
        dp = with_distance(enc, prob.center, norm, prob.lower, prob.upper, radius)
        share = deadline.remaining() / max(1, len(classes) - idx)
        stop = b.upper + margin if math.isfinite(b.upper) else None
        res = solver.solve(
            dp.program,
            SolveLimits(
                time_limit=max(0.05, share),
                threads=1,
                stop_above=stop,
                mip_rel_gap=1e-5,
                mip_abs_gap=margin / 10,
            ),
        )
        if res.status == SolveStatus.INFEASIBLE:
            # a proof only with a certificate: the LP's own ray, or the relaxation's
            from ..milp.decide import lp_infeasibility_certified, relaxation_infeasibility_certified

            certified = None
            if not dp.program.is_mip():
                certified = lp_infeasibility_certified(dp.program, res.dual_ray)
            if certified is None:
                certified = relaxation_infeasibility_certified(dp.program, max(0.05, share / 4))
            per_class.append(radius if certified else 0.0)
            complete = complete and certified
            continue
        if res.x is not None:
            b.offer(prob.replay_towards(res.x[dp.input_cols]))
        db = lp_optimum_bound(dp.program, res) if not dp.program.is_mip() else res.dual_bound
        if res.status != SolveStatus.OPTIMAL and not res.stopped_early:
            complete = False
        per_class.append(db - margin if db is not None and math.isfinite(db) else 0.0)
    if per_class:
        b.raise_lower(min(min(per_class), radius))
    return complete


def _l2_radius(b: _Bounds, deadline: Deadline) -> None:
    """Branch and bound with QP nodes on the box of radius U."""
    radius = min(b.upper, b.r_max)
    lo, hi, pre, proven = _pre(b.prob, "l2", radius)
    res = l2_search(
        b.prob, lo, hi, pre, deadline, incumbent=b.adv, lower0=b.lower, skip=tuple(proven)
    )
    b.offer(res.best)
    b.raise_lower(min(res.lower, radius))


def _l2_attack(b: _Bounds, deadline: Deadline, seed: int) -> None:
    """Bisect eps below the current upper bound with L2 PGD (upper-bound witnesses only)."""
    lo, hi = 0.0, b.upper
    for _ in range(8):
        if deadline.expired():
            return
        mid = (lo + hi) / 2
        hit = l2_attack(b.prob, mid, deadline, seed=seed)
        if hit is None:
            lo = mid
        else:
            b.offer(shrink(b.prob, hit, "l2"))
            hi = min(mid, b.upper)


def _bisect(b: _Bounds, deadline: Deadline, config_timeout: float, stats: dict) -> None:
    """Bisection on [lower, upper] with ``decide`` at each midpoint."""
    hi = min(b.upper, b.r_max)
    while not b.exact() and not deadline.expired():
        lo = b.lower
        if b.norm == "l0":  # whole numbers: certified at k means at least k + 1 changes
            mid = float((int(lo) + int(hi) - 1) // 2)
            if not lo <= mid < hi:
                break
        else:
            mid = (lo + hi) / 2
            if mid <= lo or mid >= hi:
                break
        stats["bisection_steps"] = stats.get("bisection_steps", 0) + 1
        verdict, x = decide(b.prob, b.prob.ball(mid, b.norm), deadline.sub(1.0, config_timeout))
        if verdict == "certified":
            b.raise_lower(mid + 1 if b.norm == "l0" else mid)
        elif verdict == "counterexample":
            b.offer(x)
            hi = min(b.upper, mid)
        else:
            break


def certified_radius(
    net,
    x,
    norm: str = "linf",
    label: int | None = None,
    domain=None,
    timeout: float = 60.0,
    max_radius: float | None = None,
    method: str = "auto",
    seed: int = 0,
) -> RadiusResult:
    """The exact certified radius of input x under ``norm`` (see the module docstring).

    net: anything ``api.as_graph`` takes.  x: one input (any shape with n_inputs values).
    label: the class to keep (default: the predicted one).  domain: (lo, hi) scalars or
    arrays bounding the valid inputs (default: x +- 1; required for l0).  max_radius: search
    no further (default: the largest distance inside the domain).  method: "auto", "milp"
    (one-shot only) or "bisect" (bisection over ``decide`` verdicts, warm-started).
    """
    from ..loading import as_graph

    check_norm(norm)
    if method not in ("auto", "milp", "bisect"):
        raise InputError(f"unknown radius method '{method}' (auto, milp, bisect)")
    if norm == "l0" and domain is None:
        raise InputError(
            "the L0 radius needs a domain (--domain LO HI): a changed feature may "
            "take any value in it"
        )
    t0 = time.monotonic()
    deadline = Deadline(timeout)
    graph = as_graph(net)
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        prob = make_problem(graph, x, label, domain)
        r_max = default_max_radius(prob, norm) if max_radius is None else float(max_radius)
        stats: dict = {"norm": norm, "label": prob.label, "prediction": prob.prediction}
        b = _Bounds(prob, norm, r_max)
        if prob.prediction != prob.label:
            b.offer(prob.replay(prob.center))
        else:
            t1 = time.monotonic()
            box_r = (
                r_max if norm in ("linf", "l0") else min(r_max, default_max_radius(prob, "linf"))
            )
            b.offer(attack_radius(prob, box_r, deadline.sub(0.1), seed))
            if norm in ("l0", "l1"):
                b.offer(greedy_attack(prob, deadline.sub(0.05)))
            if b.adv is not None:
                b.offer(shrink(prob, b.adv, norm))
            if norm == "l2" and b.adv is not None:
                _l2_attack(b, deadline.sub(0.05), seed)
            stats["attack_s"] = time.monotonic() - t1
            stats["attack_upper"] = b.upper
            t1 = time.monotonic()
            b.raise_lower(crown_radius(prob, norm, min(b.upper, r_max), deadline.sub(0.1)))
            stats["bounds_s"] = time.monotonic() - t1
            stats["bounds_lower"] = b.lower
            margin = MilpConfig().margin
            # the one-shot programs are exact encodings: piecewise-linear networks only
            exact_ok = graph.is_piecewise_linear()
            if not b.exact() and method in ("auto", "milp") and exact_ok and not deadline.expired():
                t1 = time.monotonic()
                share = deadline.sub(0.7 if method == "auto" else 1.0)
                if norm == "l2":
                    _l2_radius(b, share)
                else:
                    _milp_radius(b, share, margin)
                stats["exact_s"] = time.monotonic() - t1
            if not b.exact() and method in ("auto", "bisect") and not deadline.expired():
                t1 = time.monotonic()
                _bisect(b, deadline, timeout, stats)
                stats["bisect_s"] = time.monotonic() - t1
        # no example anywhere in the domain: the radius is infinite (and that is exact)
        whole = max_radius is None and b.lower >= r_max and not math.isfinite(b.upper)
        stats["certified_whole_domain"] = whole
        stats["seconds"] = time.monotonic() - t0
        return RadiusResult(b.lower, b.upper, b.exact() or whole, b.adv, stats)
    finally:
        torch.set_num_threads(prev)


def bisect_radius(
    net,
    x,
    norm: str = "linf",
    label: int | None = None,
    domain=None,
    timeout: float = 60.0,
    max_radius: float | None = None,
) -> RadiusResult:
    """Baseline and oracle: bisection from [0, max_radius] over ``decide`` verdicts only."""
    from ..loading import as_graph

    check_norm(norm)
    t0 = time.monotonic()
    deadline = Deadline(timeout)
    graph = as_graph(net)
    prob = make_problem(graph, x, label, domain)
    r_max = default_max_radius(prob, norm) if max_radius is None else float(max_radius)
    b = _Bounds(prob, norm, r_max)
    stats: dict = {"norm": norm, "label": prob.label}
    verdict, adv = decide(prob, prob.ball(r_max, norm), deadline)
    if verdict == "certified":
        b.lower = r_max  # nothing adversarial up to the largest radius searched
    elif verdict == "counterexample":
        b.offer(adv)
        _bisect(b, deadline, timeout, stats)
    stats["seconds"] = time.monotonic() - t0
    return RadiusResult(b.lower, b.upper, b.exact(), b.adv, stats)

"""L2 minimal adversarial distance: branch and bound over ReLU phases with convex QP nodes.

The exact problem min ||x - c||_2^2 over the MILP encoding (``programs.with_distance``) is a
mixed-integer QP, which HiGHS does not solve.  Relaxing the ReLU binaries to [0, 1] gives a
convex QP whose optimum is a lower bound; fixing a binary to 0 or 1 is exactly the ReLU phase
(the big-M rows are exact then).  Best-first search over all classes j (one tree each) with:

* node bound: ``safe_qp_lower_bound`` from HiGHS's row duals (weak duality in float64 with a
  rounding allowance; HiGHS's objective is never trusted).  A node declared infeasible is pruned
  only if the LP feasibility problem's Farkas ray certifies it (``milp.decide``);
* incumbent: the node's input, replayed in the ONNX model (also pushed slightly outward);
* pruning: nodes whose bound reaches the incumbent (or, to decide one radius, exceeds it);
* dual-norm pruning at the root: every tree starts from the bound engine's certified radius
  (CROWN concretised over the L2 ball by its dual norm, ``bounds.input_sets``).

The proven lower bound is the smallest bound over open and closed-but-unreplayed leaves.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..config import Deadline
from ..milp.decide import relaxation_infeasibility_certified
from ..milp.encoder import encode
from ..solvers import MilpProgram, SolveLimits, SolveStatus, get_solver
from .problem import Problem
from .programs import relaxed, safe_qp_lower_bound, with_distance

_FRAC = 1e-6


@dataclass
class L2Search:
    """Result of the search: lower bound on the distance, the best replayed example, counts."""

    lower: float
    best: np.ndarray | None
    best_dist: float
    nodes: int
    complete: bool


def _node_bound(
    solver, p: MilpProgram, parent_lb: float, time_limit: float
) -> tuple[float, np.ndarray | None, bool]:
    """(bound on the squared distance, solution or None, certified-infeasible) for one node."""
    res = solver.solve(p, SolveLimits(time_limit=max(0.05, time_limit), threads=1))
    if res.status == SolveStatus.INFEASIBLE:
        if relaxation_infeasibility_certified(p, time_limit):
            return math.inf, None, True
        return parent_lb, None, False
    if res.status != SolveStatus.OPTIMAL or res.x is None:
        return parent_lb, None, False
    lb = parent_lb
    if res.row_duals is not None:
        y = res.row_duals
        lb = max(lb, safe_qp_lower_bound(p, y), safe_qp_lower_bound(p, -y))
    return lb, res.x, False


def l2_search(
    prob: Problem,
    box_lo: np.ndarray,
    box_hi: np.ndarray,
    pre: dict,
    deadline: Deadline,
    incumbent: np.ndarray | None = None,
    lower0: float = 0.0,
    target: float | None = None,
    widening: float = 1e-7,
    skip: tuple[int, ...] = (),
) -> L2Search:
    """Minimal L2 distance over the box [box_lo, box_hi] (which must contain the ball searched).

    target: decide one radius instead: stop once an example within target is replayed, and
    prune nodes whose bound exceeds target.  lower0: a proven lower bound to start from.
    skip: classes already proven unable to reach the label's score anywhere in the box's ball.
    """
    solver = get_solver("highs")
    best = incumbent
    best_d = prob.distance(best, "l2") if best is not None else math.inf
    n_out = prob.graph.n_outputs
    trees: dict[int, tuple[MilpProgram, np.ndarray, np.ndarray]] = {}
    heap: list[tuple[float, int, int, dict]] = []
    counter = itertools.count()
    floor = math.inf  # smallest bound of closed leaves that did not replay
    lb0 = lower0 * lower0
    for j in prob.other_classes():
        if j in skip:
            continue
        row = np.zeros((1, n_out))
        row[0, prob.label], row[0, j] = 1.0, -1.0
        try:
            enc = encode(prob.graph, box_lo, box_hi, pre, row, np.zeros(1), widening=widening)
        except ValueError:
            floor = min(floor, lb0)  # unexpected empty bounds: no claim about this class
            continue
        if enc.program.col_lower[enc.t_col] > 0:
            continue  # class j cannot reach class k anywhere in the box
        dp = with_distance(enc, prob.center, "l2", prob.lower, prob.upper, math.inf)
        zcols = np.flatnonzero(dp.program.integrality)
        trees[j] = (relaxed(dp.program), zcols, dp.input_cols)
        heapq.heappush(heap, (lb0, next(counter), j, {}))
    nodes = 0

    def cutoff() -> float:
        c = best_d if target is None else min(best_d, target)
        return c * c

    while heap:
        if deadline.expired() or (target is not None and best_d <= target):
            break
        lb_parent, _, j, fixed = heapq.heappop(heap)
        if lb_parent >= cutoff() and (target is None or lb_parent > target * target):
            heap.clear()
            break
        base, zcols, xcols = trees[j]
        lo, hi = base.col_lower.copy(), base.col_upper.copy()
        for col, v in fixed.items():
            lo[col] = hi[col] = float(v)
        p = dataclasses.replace(base, col_lower=lo, col_upper=hi)
        nodes += 1
        lb, x, infeasible = _node_bound(solver, p, lb_parent, deadline.remaining())
        if infeasible or (x is None and lb > lb_parent):
            continue
        pruned = lb >= cutoff() if target is None else lb > cutoff()
        if x is not None:
            hit = prob.replay_towards(x[xcols])
            if hit is not None:
                d = prob.distance(hit, "l2")
                if d < best_d:
                    best, best_d = hit, d
        if pruned:
            continue
        if x is None:
            floor = min(floor, lb)  # the solver gave nothing usable: keep the claim open
            continue
        z = x[zcols]
        frac = np.minimum(z, 1.0 - z)
        free = np.array([c not in fixed for c in zcols.tolist()], dtype=bool)
        frac = np.where(free, frac, -1.0)
        k = int(np.argmax(frac)) if frac.size else -1
        if k < 0 or frac[k] <= _FRAC:
            if lb < cutoff():
                floor = min(floor, lb)  # an exact leaf: its minimum is lb (up to tolerance)
            continue
        for v in (0, 1):
            child = dict(fixed)
            child[int(zcols[k])] = v
            heapq.heappush(heap, (lb, next(counter), j, child))
    if target is not None:  # deciding one radius: proven only when nothing at or below it is left
        done = not heap and floor == math.inf and best_d > target and not deadline.expired()
        return L2Search(max(target, lower0) if done else lower0, best, best_d, nodes, done)
    open_lb = min((h[0] for h in heap), default=math.inf)
    low_sq = min(floor, open_lb, best_d * best_d)
    low = math.sqrt(max(low_sq, 0.0)) * (1.0 - 1e-12) if math.isfinite(low_sq) else math.inf
    complete = not heap and floor >= best_d * best_d * (1.0 - 1e-6)
    return L2Search(max(low, lower0), best, best_d, nodes, complete)

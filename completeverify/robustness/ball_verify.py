"""Verification over a norm ball: is every input of the ball classified as the label?

``decide`` answers "certified" (proven), "counterexample" (an input of the ball replayed in the
ONNX model with another class scoring at least the label's) or "unknown":

* linf: the ball is a box, so the full pipeline runs (attack, bounds, branch and bound, MILP);
* l1 / l0: PGD inside the inscribed box, CROWN concretised over the ball (dual norm), then the
  exact MILP with the ball's rows (``programs.with_ball``) per class, decided by
  ``milp.decide.solve_pair`` and its margin rules;
* l2: QP branch and bound with the target radius (``qp_bab.l2_search``).

``verify_ball`` wraps it as a ``Result`` for ``cv.verify(net, BallProperty(...))``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ..bounds.input_sets import Ball
from ..config import Deadline, VerifyConfig
from ..verdict import Counterexample, Result, Status
from ..vnnlib.property_types import Case, Property
from .problem import Problem, crown_certified


@dataclass(frozen=True)
class BallProperty:
    """The robustness property "every x in ball is classified as label" (label None: predicted)."""

    ball: Ball
    label: int | None = None


def inscribed_attack(prob: Problem, ball: Ball, deadline: Deadline) -> np.ndarray | None:
    """PGD in the largest L-inf box inside the ball; a replayed example inside the ball or None."""
    from ..attack import pgd
    from ..config import AttackConfig

    n = prob.center.size
    r = {"linf": ball.eps, "l1": ball.eps / n, "l2": ball.eps / math.sqrt(n)}.get(ball.norm)
    if r is None or r <= 0:
        return None
    lo = np.maximum(prob.lower, prob.center - r)
    hi = np.minimum(prob.upper, prob.center + r)
    cands = pgd(
        prob.graph,
        lo,
        hi,
        prob.polytopes(),
        AttackConfig(restarts=8, steps=30),
        deadline,
        np.random.default_rng(0),
    )
    for x in cands[:2]:
        hit = prob.replay(x)
        if hit is not None and ball.contains(hit):
            return hit
    return None


def _inside(prob: Problem, ball: Ball, x: np.ndarray) -> np.ndarray | None:
    """A replayed example inside the ball near x (pulled slightly inwards for float casts)."""
    c = prob.center
    x = np.where(np.abs(x - c) <= 1e-6 * (1.0 + np.abs(c)), c, np.asarray(x, dtype=np.float64))
    for s in (0.0, 1e-7, 1e-6, 1e-5, 1e-4):
        hit = prob.replay(c + (x - c) * (1.0 - s))
        if hit is not None and ball.contains(hit):
            return hit
    return None


def _decide_linf(prob: Problem, ball: Ball, deadline: Deadline) -> tuple[str, np.ndarray | None]:
    """The full pipeline on the box."""
    from ..pipeline import verify_graph

    lo, hi = ball.box()
    prop = Property(
        prob.graph.n_inputs, prob.graph.n_outputs, (Case(lo, hi, prob.polytopes()),), "<ball>"
    )
    cfg = VerifyConfig(timeout=max(0.1, deadline.remaining()), check_import_points=0)
    res = verify_graph(prob.graph, prop, cfg, deadline)
    if res.status == Status.UNSAT:
        return "certified", None
    if res.status == Status.SAT and res.counterexample is not None:
        return "counterexample", np.asarray(res.counterexample.input, dtype=np.float64).reshape(-1)
    return "unknown", None


def _decide_milp(
    prob: Problem, ball: Ball, pre: dict, deadline: Deadline, skip: tuple[int, ...] = ()
) -> tuple[str, np.ndarray | None]:
    """Exact MILP with the ball's rows, one polytope (class) at a time."""
    from ..milp.decide import Outcome, solve_pair
    from ..milp.encoder import encode
    from ..solvers import get_solver
    from .programs import with_ball

    solver = get_solver("highs")
    margin = VerifyConfig().milp.margin
    lo, hi = ball.box()
    verdict = "certified"
    for j, poly in zip(prob.other_classes(), prob.polytopes()):
        if j in skip:
            continue  # CROWN already proved this class
        if deadline.expired():
            return "unknown", None
        try:
            enc = encode(prob.graph, lo, hi, pre, poly.C, poly.d)
        except ValueError:
            verdict = "unknown"
            continue
        enc = dataclasses.replace(enc, program=with_ball(enc, ball))
        ans = solve_pair(enc, solver, deadline.remaining(), margin)
        if ans.outcome == Outcome.CANDIDATE and ans.x_input is not None:
            hit = _inside(prob, ball, ans.x_input)
            if hit is not None:
                return "counterexample", hit
            verdict = "unknown"
        elif ans.outcome != Outcome.PROVEN:
            verdict = "unknown"
    return verdict, None


def decide(prob: Problem, ball: Ball, deadline: Deadline) -> tuple[str, np.ndarray | None]:
    """ "certified" / "counterexample" (with the replayed input) / "unknown" for one ball."""
    if prob.prediction != prob.label:
        return "counterexample", prob.replay(prob.center)
    if ball.norm == "linf":
        return _decide_linf(prob, ball, deadline)
    if ball.norm == "l0" and ball.k == 0:
        return "certified", None
    hit = inscribed_attack(prob, ball, deadline.sub(0.05))
    if hit is None and ball.norm in ("l0", "l1"):
        from .problem import greedy_attack

        hit = greedy_attack(prob, deadline.sub(0.05), max_changes=max(1, min(ball.k, 64)))
        hit = hit if hit is not None and ball.contains(hit) else None
    if hit is not None:
        return "counterexample", hit
    ok, pre, proven = crown_certified(prob, ball)
    if ok:
        return "certified", None
    if not prob.graph.is_piecewise_linear():
        return "unknown", None  # the MILP and QP searches below encode the network exactly
    if ball.norm in ("l1", "l0"):
        return _decide_milp(prob, ball, pre, deadline, tuple(proven))
    from .qp_bab import l2_search

    lo, hi = ball.box()
    res = l2_search(prob, lo, hi, pre, deadline, target=ball.eps, skip=tuple(proven))
    if res.best is not None and res.best_dist <= ball.eps and ball.contains(res.best):
        return "counterexample", res.best
    return ("certified", None) if res.complete else ("unknown", None)


def verify_ball(graph, prop: BallProperty, config: VerifyConfig, deadline: Deadline) -> Result:
    """``cv.verify`` for a BallProperty: UNSAT (certified), SAT with a replayed example, UNKNOWN."""
    from .problem import make_problem

    ball = prop.ball
    prob = make_problem(graph, ball.center, prop.label, (ball.lower, ball.upper))
    verdict, x = decide(prob, ball, deadline)
    stats = {"total": deadline.elapsed(), "norm": ball.norm, "eps": ball.eps}
    if verdict == "certified":
        return Result(Status.UNSAT, None, stats, "certified on the ball")
    if verdict == "counterexample" and x is not None:
        y = prob.replayer.run(x.astype(prob.replayer.dtype))
        cex = Counterexample(x.astype(prob.replayer.dtype).reshape(prob.replayer.shape), y)
        return Result(Status.SAT, cex, stats, "counterexample replayed in the ONNX model")
    status = Status.TIMEOUT if deadline.expired() else Status.UNKNOWN
    return Result(status, None, stats)

"""The exact leaf: decide one polytope on one box by MILP/LP, with replay before any ``sat``.

One sequence, used by the pipeline's MILP stage, the input-splitting leaves and the
ReLU-splitting leaves (and the MILP race):

1. encode the network on the box with the given sound intermediate bounds (and ReLU splits);
   bounds with no common point are the typed outcome ``LeafVerdict.EMPTY``;
2. solve (``decide.solve_pair``: proofs only from certified bounds);
3. a candidate counts only once the ONNX replay confirms it (``verdict.confirm``);
4. a candidate the replay rejects is a knife edge or a tolerance artefact: solve once more to
   optimality (``resolve``) and replay that;
5. if that is rejected too, polish it with PGD (``polish``) and replay the results;
6. if still nothing replays, ``repair`` it (the callers pass bab/knife_edge.py: the float grid
   around the candidate, then the activation-pattern LP's most violating point), replayed too.

Each caller keeps its own policy around this: what an empty domain means (a proof only when
split constraints made it empty), how a polish step is budgeted, what it times.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..attack import pgd
from ..bounds.pre import PreBounds
from ..config import AttackConfig, Deadline, MilpConfig
from ..graph import Graph
from ..solvers import MilpSolver
from ..verdict import Counterexample, Replayer, confirm
from ..vnnlib import Case, Polytope
from . import encoder
from .decide import Outcome, solve_pair
from .outcomes import EmptyDomain

Polish = Callable[[np.ndarray], "Counterexample | None"]
"""Given a rejected candidate input (n_in,), try to turn it into a confirmed counterexample."""


class LeafVerdict(enum.Enum):
    """What an exact leaf established."""

    PROVEN = "proven"  # the polytope is unreachable from the box
    FALSIFIED = "falsified"  # a replay-confirmed counterexample
    EMPTY = "empty"  # the encoding's bounds have no common point (see outcomes.EmptyDomain)
    UNKNOWN = "unknown"  # the solver finished without a usable answer
    TIMEOUT = "timeout"  # the solver's time limit ran out


@dataclass(frozen=True)
class LeafProblem:
    """One exact decision: the polytope ``poly`` on the box [lower, upper].

    case: the case a replayed point must violate (``confirm`` checks all its polytopes and
    reports which one); case_index: its index in the property.  pre: sound intermediate
    bounds of this box; splits: relu node -> (size,) int of +1/-1/0 sign constraints.
    """

    graph: Graph
    case: Case
    case_index: int
    poly: Polytope
    lower: np.ndarray  # (n_in,) float64
    upper: np.ndarray  # (n_in,) float64
    pre: PreBounds
    splits: dict[int, np.ndarray] | None = None


@dataclass(frozen=True)
class LeafResult:
    """A leaf's verdict, its counterexample when FALSIFIED, and where its time went."""

    verdict: LeafVerdict
    counterexample: Counterexample | None = None
    encode_s: float = 0.0  # building the program
    decide_s: float = 0.0  # solving, replaying, re-solving and polishing


def exact_leaf(
    problem: LeafProblem,
    solver: MilpSolver,
    replayer: Replayer,
    milp: MilpConfig,
    deadline: Deadline,
    *,
    resolve: bool = True,
    polish: Polish | None = None,
    repair: Polish | None = None,
    cancel: threading.Event | None = None,
) -> LeafResult:
    """Decide one leaf exactly (module docstring); ``sat`` only from an ONNX replay.

    resolve: on a rejected candidate, solve again to optimality (step 4); polish: step 5,
    repair: step 6 (None: skip).  cancel stops the solves early, as a time limit would (HiGHS only).
    """
    t0 = time.monotonic()
    try:
        enc = encoder.encode(
            problem.graph,
            problem.lower,
            problem.upper,
            problem.pre,
            problem.poly.C,
            problem.poly.d,
            splits=problem.splits,
            widening=milp.bound_widening,
        )
    except EmptyDomain:
        return LeafResult(LeafVerdict.EMPTY, encode_s=time.monotonic() - t0)
    t1 = time.monotonic()

    def done(verdict: LeafVerdict, cex: Counterexample | None = None) -> LeafResult:
        """The result with its timings."""
        return LeafResult(verdict, cex, t1 - t0, time.monotonic() - t1)

    ans = solve_pair(enc, solver, deadline.remaining(), milp.margin, milp.threads, cancel=cancel)
    if ans.outcome == Outcome.CANDIDATE:
        assert ans.x_input is not None  # solve_pair returns CANDIDATE only with a point
        cex = confirm(replayer, ans.x_input, problem.case, problem.case_index)
        if cex is None and resolve:
            # knife edge or tolerance artefact: solve to optimality before giving up
            ans = solve_pair(
                enc,
                solver,
                deadline.remaining(),
                milp.margin,
                milp.threads,
                stop_below=None,
                cancel=cancel,
            )
            if ans.outcome == Outcome.CANDIDATE:
                assert ans.x_input is not None
                cex = confirm(replayer, ans.x_input, problem.case, problem.case_index)
                if cex is None and polish is not None:
                    cex = polish(ans.x_input)
        if cex is None and repair is not None and ans.outcome == Outcome.CANDIDATE:
            assert ans.x_input is not None
            cex = repair(ans.x_input)
        if cex is not None:
            return done(LeafVerdict.FALSIFIED, cex)
    if ans.outcome == Outcome.PROVEN:
        return done(LeafVerdict.PROVEN)
    if ans.outcome == Outcome.TIMEOUT:
        return done(LeafVerdict.TIMEOUT)
    return done(LeafVerdict.UNKNOWN)


def pgd_polish(
    graph: Graph,
    replayer: Replayer,
    case: Case,
    case_index: int,
    polys: list[Polytope],
    config: AttackConfig,
    budget: Callable[[], Deadline],
    rng: np.random.Generator,
    replays: int = 3,
) -> Polish:
    """A ``Polish`` step: PGD on ``polys`` seeded by the candidate, the best ``replays`` replayed.

    budget() gives the PGD deadline when the step runs (e.g. a share of what is left then).
    """

    def polish(x: np.ndarray) -> Counterexample | None:
        """PGD from x (n_in,) plus random starts; the first replay-confirmed candidate or None."""
        cands = pgd(
            graph, case.lower, case.upper, polys, config, budget(), rng, extra_starts=x[None]
        )
        for cand in cands[:replays]:
            cex = confirm(replayer, cand, case, case_index)
            if cex is not None:
                return cex
        return None

    return polish

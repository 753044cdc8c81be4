"""Exact decisions and falsification for one case's polytopes inside ReLU splitting.

``PairChecks`` is what branch and bound (relu_split.py) and the MILP race (race.py) use to
settle a domain without bounds: ``exact`` decides one polytope on a domain by LP/MILP through the
shared exact leaf (milp/leaf.py: encode, solve, replay, polish, knife-edge repair), and
``replay_minimisers`` / ``attack`` look for counterexamples.  Every ``sat`` comes from
verdict.confirm, a replay in the ONNX model; every ``proven`` from the exact leaf's margins or
from split constraints that contradict sound bounds.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

import numpy as np
import torch

from ..attack import pgd
from ..bounds.pre import PreBounds
from ..config import Deadline
from ..spec import polytope_margins
from ..verdict import Counterexample, confirm

log = logging.getLogger(__name__)

CANDIDATE_SLACK = 1e-6  # graph-forward pre-filter before a (decisive) ONNX replay
REPLAYS_PER_ROUND = 3


class PairChecks:
    """Exact leaves and counterexample searches for the polytopes of one case."""

    def __init__(
        self,
        run,
        case_index: int,
        polys: list,
        C: torch.Tensor,
        d: torch.Tensor,
        slices: tuple[slice, ...],
        deadline: Deadline,
    ) -> None:
        """polys: the polytopes searched together; C, d: their stacked rows; slices: each one's."""
        self.run = run
        self.ci = case_index
        self.case = run.prop.cases[case_index]
        self.graph = run.graph
        self.polys = polys
        self.C, self.d, self.slices = C, d, slices
        self.deadline = deadline
        self._solver = None

    def solver(self):
        """The configured MILP backend (created once)."""
        if self._solver is None:
            from ..solvers import get_solver

            self._solver = get_solver(self.run.config.solver)
        return self._solver

    def exact(
        self,
        pre: PreBounds,
        splits: dict[int, np.ndarray] | None,
        p: int,
        cancel: threading.Event | None = None,
        rng: np.random.Generator | None = None,
    ) -> tuple[str, Counterexample | None]:
        """Decide polytope p (position) on a domain by LP/MILP: 'proven' | 'cex' | 'unknown' |
        'timeout'.

        cancel: a threading.Event that stops the solve (the MILP race); rng: the generator for
        PGD polishing (a thread other than the search's passes its own).
        """
        from ..milp.leaf import LeafProblem, LeafVerdict, exact_leaf

        poly = self.polys[p]
        problem = LeafProblem(
            self.graph, self.case, self.ci, poly, self.case.lower, self.case.upper, pre, splits
        )

        def polish(x: np.ndarray) -> Counterexample | None:
            """PGD seeded by the rejected candidate x (n_in,)."""
            return self.attack(x[None], 2.0, [poly], rng)

        def repair(x: np.ndarray) -> Counterexample | None:
            """Float grid and activation-pattern LP around x (bab/knife_edge.py)."""
            from .knife_edge import repair_candidate

            return repair_candidate(self.run, self.ci, x, [poly])

        out = exact_leaf(
            problem,
            self.solver(),
            self.run.replayer,
            self.run.config.milp,
            self.deadline,
            polish=polish,
            repair=repair if cancel is None else None,
            cancel=cancel,
        )
        if out.verdict == LeafVerdict.EMPTY:
            if splits and any(np.any(np.asarray(v) != 0) for v in splits.values()):
                return "proven", None  # the split constraints contradict sound bounds
            # without splits the box is not empty, so some bound is wrong: never a proof
            log.warning(
                "relu_split: sound bounds without splits came out empty; no verdict from this MILP"
            )
            return "unknown", None
        if cancel is None:  # the race keeps its own time
            self.run.add("bab_exact", out.decide_s)
        if out.verdict == LeafVerdict.FALSIFIED:
            return "cex", out.counterexample
        if out.verdict == LeafVerdict.PROVEN:
            return "proven", None
        if out.verdict == LeafVerdict.TIMEOUT or self.deadline.expired():
            return "timeout", None
        return "unknown", None

    def replay_minimisers(self, x_lb: torch.Tensor | None, idx: list[int]) -> Counterexample | None:
        """Replay the lower-bound minimisers of domains idx whose network value looks unsafe."""
        if x_lb is None or not idx:
            return None
        xs = x_lb[idx].reshape(-1, x_lb.shape[-1])
        with torch.no_grad():
            y = self.graph.forward(xs.reshape(xs.shape[0], *self.graph.input_shape)).reshape(
                xs.shape[0], -1
            )
            viol = (
                polytope_margins(y.to(torch.float64) @ self.C.T - self.d, self.slices).min(1).values
            )
        order = torch.argsort(viol)
        for k in order[:REPLAYS_PER_ROUND].tolist():
            if not float(viol[k]) <= CANDIDATE_SLACK:
                break
            cex = confirm(self.run.replayer, xs[k].cpu().numpy(), self.case, self.ci)
            if cex is not None:
                return cex
        return None

    def attack(
        self, starts: np.ndarray, at_most: float, polys=None, rng=None
    ) -> Counterexample | None:
        """Short PGD from the given starts (plus a few random ones); replays the best candidates."""
        acfg = self.run.config.attack
        if not acfg.enabled or self.deadline.expired():
            return None
        small = dataclasses.replace(acfg, restarts=min(acfg.restarts, 8), steps=min(acfg.steps, 30))
        t0 = time.monotonic()
        cands = pgd(
            self.graph,
            self.case.lower,
            self.case.upper,
            list(polys or self.polys),
            small,
            self.deadline.sub(0.05, at_most),
            rng or self.run.rng,
            extra_starts=starts,
        )
        self.run.timed("bab_pgd", t0)
        for x in cands[:REPLAYS_PER_ROUND]:
            cex = confirm(self.run.replayer, x, self.case, self.ci)
            if cex is not None:
                return cex
        return None

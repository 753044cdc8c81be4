"""Branch-and-bound driver: chooses input splitting, ReLU splitting or the plain MILP per
problem."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from ..bounds.pre import PreBounds, pre_to_numpy
from ..config import Mode
from ..context import Pair, VerifyContext
from ..verdict import Counterexample
from ..vnnlib import Case
from .types import BabOutcome, BabVerdict, MilpLeaf

MilpStage = Callable[[VerifyContext, list[Pair]], "tuple[Counterexample | None, bool]"]

log = logging.getLogger(__name__)


def choose_mode(run: VerifyContext) -> Mode:
    """The search to use: the configured mode, or by input dimension when 'auto'."""
    mode = run.config.mode
    if mode != "auto":
        return mode
    return (
        "input-split" if run.graph.n_inputs <= run.config.bab.input_split_max_dim else "relu-split"
    )


def _milp_leaf(run: VerifyContext, case_index: int) -> MilpLeaf:
    """A callback deciding one polytope exactly on a sub-box of a case."""
    import torch

    from ..bounds import BoundEngine
    from ..milp.leaf import LeafProblem, LeafVerdict, exact_leaf
    from ..solvers import get_solver
    from .knife_edge import repair_candidate

    solver = get_solver(run.config.solver)
    case = run.prop.cases[case_index]
    engine = BoundEngine(run.graph)

    def leaf(
        lower: np.ndarray, upper: np.ndarray, poly_index: int, pre: PreBounds | None = None
    ) -> BabOutcome:
        """Decide polytope poly_index on [lower, upper] (n_in,) by MILP (no re-solve, no polish)."""
        poly = case.polytopes[poly_index]
        if pre is None:
            lo = torch.as_tensor(lower)[None]
            hi = torch.as_tensor(upper)[None]
            C = torch.as_tensor(poly.C)[None]
            res = engine.compute(lo, hi, C, -torch.as_tensor(poly.d)[None], method="crown")
            pre = pre_to_numpy(res.pre)
        # a replay counts only for this polytope: confirm on a case holding just it
        sub = Case(lower=case.lower, upper=case.upper, polytopes=(poly,))
        out = exact_leaf(
            LeafProblem(run.graph, sub, case_index, poly, lower, upper, pre),
            solver,
            run.replayer,
            run.config.milp,
            run.deadline,
            resolve=False,
            repair=lambda x: repair_candidate(run, case_index, x, [poly]),
        )
        if out.verdict == LeafVerdict.EMPTY:
            # empty bounds on a non-empty box: some bound is wrong, never a proof
            log.warning("milp leaf: empty pre-activation bounds; no verdict from this leaf")
            return BabOutcome(BabVerdict.OPEN, note="milp leaf: empty bounds")
        run.add("milp", out.encode_s + out.decide_s)
        if out.verdict == LeafVerdict.PROVEN:
            return BabOutcome(BabVerdict.PROVEN, note="milp leaf")
        if out.counterexample is not None:
            cex = dataclasses.replace(out.counterexample, polytope=poly_index)
            return BabOutcome(BabVerdict.FALSIFIED, cex, note="milp leaf")
        if out.verdict == LeafVerdict.TIMEOUT:
            return BabOutcome(BabVerdict.TIMEOUT)
        return BabOutcome(BabVerdict.OPEN, note="milp leaf undecided")

    return leaf


def _settle(
    results: Sequence[tuple[Pair, BabOutcome]], note: str
) -> tuple[Counterexample | None, bool, bool]:
    """Record (pair, outcome) results on the pairs: (counterexample, stop searching, all proven)."""
    all_proven = True
    for pr, o in results:
        if o.verdict == BabVerdict.FALSIFIED:
            return o.counterexample, True, False
        if o.verdict == BabVerdict.PROVEN:
            pr.proven, pr.note = True, note
        else:
            all_proven = False
            if o.verdict == BabVerdict.TIMEOUT:
                return None, True, False
    return None, False, all_proven


def decide_pairs(
    run: VerifyContext, pairs: list[Pair], milp_stage: MilpStage
) -> tuple[Counterexample | None, bool]:
    """Decide the (case, polytope) pairs that bounds left open; returns (counterexample,
    all_decided)."""
    mode = choose_mode(run)
    if mode == "milp" or not pairs:
        return milp_stage(run, pairs)
    t0 = time.monotonic()
    all_done = True
    try:
        if mode == "input-split":
            from .input_split import input_split

            by_case: dict[int, list[Pair]] = {}
            for pr in pairs:
                by_case.setdefault(pr.case, []).append(pr)
            for ci, prs in by_case.items():
                out = input_split(
                    run, ci, [pr.poly for pr in prs], run.deadline, _milp_leaf(run, ci)
                )
                cex, stop, proven = _settle([(pr, out[pr.poly]) for pr in prs], "input split")
                if stop:
                    return cex, False
                all_done &= proven
            return None, all_done
        from .relu_split import relu_split_joint

        groups: list[list[Pair]] = []  # one search per case (all its open polytopes), or per pair
        for pr in pairs:
            if run.config.bab.joint and groups and groups[-1][0].case == pr.case:
                groups[-1].append(pr)
            else:
                groups.append([pr])
        for prs in groups:
            pre = prs[0].pre if all(pr.pre is prs[0].pre for pr in prs) else None
            o = relu_split_joint(run, prs[0].case, [pr.poly for pr in prs], pre, run.deadline)
            cex, stop, proven = _settle([(pr, o) for pr in prs], "relu split")
            if stop:
                return cex, False
            all_done &= proven
        return None, all_done
    finally:
        run.timed("bab", t0)

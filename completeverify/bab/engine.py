"""Branch-and-bound driver: chooses input splitting, ReLU splitting or the plain MILP per problem."""

from __future__ import annotations

import logging
import time

import numpy as np

from ..vnnlib import Case
from .types import BabOutcome, BabVerdict

log = logging.getLogger(__name__)


def choose_mode(run) -> str:
    """The search to use: the configured mode, or by input dimension when 'auto'."""
    mode = run.config.mode
    if mode != "auto":
        return mode
    return "input-split" if run.graph.n_inputs <= run.config.bab.input_split_max_dim else "relu-split"


def _milp_leaf(run, case_index: int):
    """A callback deciding one polytope exactly on a sub-box of a case."""
    from ..bounds import BoundEngine
    from ..milp.decide import Outcome, solve_pair
    from ..milp.encoder import encode
    from ..solvers import get_solver
    from ..verdict import confirm
    import torch

    solver = get_solver(run.config.solver)
    case = run.prop.cases[case_index]
    engine = BoundEngine(run.graph)

    def leaf(lower: np.ndarray, upper: np.ndarray, poly_index: int, pre: dict | None = None) -> BabOutcome:
        poly = case.polytopes[poly_index]
        if pre is None:
            lo = torch.as_tensor(lower)[None]
            hi = torch.as_tensor(upper)[None]
            C = torch.as_tensor(poly.C)[None]
            res = engine.compute(lo, hi, C, -torch.as_tensor(poly.d)[None], method="crown")
            pre = {k: (v[0][0].cpu().numpy(), v[1][0].cpu().numpy()) for k, v in res.pre.items()}
        t0 = time.monotonic()
        try:
            enc = encode(run.graph, lower, upper, pre, poly.C, poly.d, widening=run.config.milp.bound_widening)
        except ValueError as err:  # empty bounds on a non-empty box: some bound is wrong, never a proof
            log.warning("milp leaf: %s; no verdict from this leaf", err)
            return BabOutcome(BabVerdict.OPEN, note="milp leaf: empty bounds")
        ans = solve_pair(enc, solver, run.deadline.remaining(), run.config.milp.margin, run.config.milp.threads)
        run.stats["milp"] = run.stats.get("milp", 0.0) + time.monotonic() - t0
        if ans.outcome == Outcome.PROVEN:
            return BabOutcome(BabVerdict.PROVEN, note="milp leaf")
        if ans.outcome == Outcome.CANDIDATE:
            sub = Case(lower=case.lower, upper=case.upper, polytopes=(poly,))
            cex = confirm(run.replayer, ans.x_input, sub, case_index)
            if cex is None:  # knife edge: float grid and activation-pattern LP
                from .knife_edge import repair_candidate

                cex = repair_candidate(run, case_index, ans.x_input, [poly])
            if cex is not None:
                cex = type(cex)(cex.input, cex.output, case_index, poly_index)
                return BabOutcome(BabVerdict.FALSIFIED, cex, note="milp leaf")
        if ans.outcome == Outcome.TIMEOUT:
            return BabOutcome(BabVerdict.TIMEOUT)
        return BabOutcome(BabVerdict.OPEN, note="milp leaf undecided")

    return leaf


def _settle(results: list, note: str) -> tuple:
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


def decide_pairs(run, pairs, milp_stage):
    """Decide the (case, polytope) pairs that bounds left open; returns (counterexample, all_decided)."""
    mode = choose_mode(run)
    if mode == "milp" or not pairs:
        return milp_stage(run, pairs)
    t0 = time.monotonic()
    all_done = True
    try:
        if mode == "input-split":
            from .input_split import input_split

            by_case: dict[int, list] = {}
            for pr in pairs:
                by_case.setdefault(pr.case, []).append(pr)
            for ci, prs in by_case.items():
                out = input_split(run, ci, [pr.poly for pr in prs], run.deadline, _milp_leaf(run, ci))
                cex, stop, proven = _settle([(pr, out[pr.poly]) for pr in prs], "input split")
                if stop:
                    return cex, False
                all_done &= proven
            return None, all_done
        from .relu_split import relu_split_joint

        groups: list[list] = []  # one search per case (all its open polytopes), or per pair
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
        run.stats["bab"] = run.stats.get("bab", 0.0) + time.monotonic() - t0

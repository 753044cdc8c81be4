"""verify(): attack -> bounds -> branch and bound / MILP -> verdict, under one deadline."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .attack import pgd
from .config import Deadline, VerifyConfig
from .errors import PropertyError
from .graph import Graph
from .spec import polytope_margins, stack_rows
from .verdict import Counterexample, Replayer, Result, Status, check_graph_against_model, confirm

log = logging.getLogger(__name__)


@dataclass
class Pair:
    """One (case, polytope) sub-problem still to decide."""

    case: int
    poly: int
    proven: bool = False
    pre: dict | None = None  # intermediate bounds from the bound stage
    note: str = ""


@dataclass
class Run:
    """Mutable state of one verify() call, local to it."""

    graph: Graph
    prop: object
    config: VerifyConfig
    deadline: Deadline
    replayer: Replayer
    rng: np.random.Generator
    stats: dict = field(default_factory=dict)

    def timed(self, key: str, t0: float) -> None:
        """Add the seconds since t0 to stats[key]."""
        self.stats[key] = self.stats.get(key, 0.0) + time.monotonic() - t0


def check_sizes(graph: Graph, prop) -> None:
    """The property's X/Y counts must match the network."""
    if prop.n_inputs != graph.n_inputs:
        raise PropertyError(
            f"property declares {prop.n_inputs} inputs (X_*), network '{graph.source}' has {graph.n_inputs}",
            prop.source)
    if prop.n_outputs != graph.n_outputs:
        raise PropertyError(
            f"property declares {prop.n_outputs} outputs (Y_*), network '{graph.source}' has {graph.n_outputs}",
            prop.source)


def _attack(run: Run, budget: Deadline, cases: list[int]) -> Counterexample | None:
    """PGD on each case in turn; the first replay-confirmed candidate wins."""
    cfg = run.config.attack
    for ci in cases:
        if budget.expired():
            return None
        case = run.prop.cases[ci]
        cands = pgd(run.graph, case.lower, case.upper, case.polytopes, cfg, budget, run.rng)
        for x in cands[:3]:
            cex = confirm(run.replayer, x, case, ci)
            if cex is not None:
                return cex
    return None


def _bound_stage(run: Run, pairs: list[Pair]) -> None:
    """Prove pairs with linear bounds; record intermediate bounds for the MILP."""
    from .bounds import BoundEngine

    engine = BoundEngine(run.graph)
    by_case: dict[int, list[Pair]] = {}
    for pr in pairs:
        by_case.setdefault(pr.case, []).append(pr)
    for ci, prs in by_case.items():
        if run.deadline.expired():
            return
        case = run.prop.cases[ci]
        polys = [case.polytopes[pr.poly] for pr in prs]
        if any(p.C.shape[0] == 0 for p in polys):
            continue  # a polytope with no rows is the whole output space: nothing to prove
        C, c0, slices = stack_rows(polys)
        lo = torch.as_tensor(case.lower, dtype=torch.float64)[None]
        hi = torch.as_tensor(case.upper, dtype=torch.float64)[None]
        res = None
        methods = _methods(run.config.bound_method)
        if run.graph.n_inputs <= run.config.bab.input_split_max_dim and run.config.mode in ("auto", "input-split"):
            methods = methods[:2]  # input splitting follows: alpha at the root rarely pays off
        for method in methods:
            if run.deadline.expired():
                break
            res = engine.compute(lo, hi, C[None], c0[None], method=method, deadline=run.deadline.end)
            margins = polytope_margins(res.lb, slices)[0]
            for pr, margin in zip(prs, margins.tolist()):
                if math.isfinite(margin) and margin > 0 and not pr.proven:
                    pr.proven = True
                    pr.note = f"bounds ({method})"
            if all(pr.proven for pr in prs):
                break
        if res is not None:
            pre = {k: (v[0][0].cpu().numpy(), v[1][0].cpu().numpy()) for k, v in res.pre.items()}
            for pr in prs:
                pr.pre = pre


def _methods(final: str) -> list[str]:
    """The cheap-to-expensive sequence of bound methods ending at ``final``."""
    order = ["ibp", "crown", "alpha-crown"]
    return order[: order.index(final) + 1]


def _milp_stage(run: Run, pairs: list[Pair]) -> tuple[Counterexample | None, bool]:
    """Decide the remaining pairs exactly; returns (counterexample, all_decided)."""
    from .bounds import BoundEngine
    from .milp.decide import Outcome, solve_pair
    from .milp.encoder import encode
    from .solvers import get_solver

    solver = get_solver(run.config.solver)
    cfg = run.config.milp
    all_done = True
    for pr in pairs:
        if pr.proven:
            continue
        if run.deadline.expired():
            return None, False
        case = run.prop.cases[pr.case]
        poly = case.polytopes[pr.poly]
        pre = pr.pre
        if pre is None:
            lo = torch.as_tensor(case.lower, dtype=torch.float64)[None]
            hi = torch.as_tensor(case.upper, dtype=torch.float64)[None]
            pre = {k: (v[0][0].cpu().numpy(), v[1][0].cpu().numpy()) for k, v in BoundEngine(run.graph).ibp(lo, hi).items()}
        if cfg.lp_tighten_layers > 0:
            from .milp.tighten import tighten_bounds

            t0 = time.monotonic()
            pre = tighten_bounds(run.graph, case.lower, case.upper, pre, layers=cfg.lp_tighten_layers,
                                 relax="lp", deadline=run.deadline.sub(0.2))
            run.timed("lp_tighten", t0)
        t0 = time.monotonic()
        try:
            enc = encode(run.graph, case.lower, case.upper, pre, poly.C, poly.d, widening=cfg.bound_widening)
        except ValueError as err:  # empty bounds on a non-empty box: some bound is wrong, never a proof
            log.warning("milp stage: %s; this pair stays undecided", err)
            all_done = False
            continue
        run.timed("encode", t0)
        t0 = time.monotonic()
        ans = solve_pair(enc, solver, run.deadline.remaining(), cfg.margin, cfg.threads)
        if ans.outcome == Outcome.CANDIDATE:
            cex = confirm(run.replayer, ans.x_input, case, pr.case)
            if cex is None:
                # knife edge or tolerance artefact: solve to optimality before giving up
                ans = solve_pair(enc, solver, run.deadline.remaining(), cfg.margin, cfg.threads, stop_below=None)
                if ans.outcome == Outcome.CANDIDATE:
                    cex = confirm(run.replayer, ans.x_input, case, pr.case)
                    if cex is None:
                        cands = pgd(run.graph, case.lower, case.upper, [poly], run.config.attack,
                                    run.deadline.sub(0.2, 5.0), run.rng, extra_starts=ans.x_input[None])
                        for x in cands[:3]:
                            cex = confirm(run.replayer, x, case, pr.case)
                            if cex is not None:
                                break
                    if cex is None:  # float grid and activation-pattern LP (bab/knife_edge.py)
                        from .bab.knife_edge import repair_candidate

                        cex = repair_candidate(run, pr.case, ans.x_input, [poly])
            if cex is not None:
                run.timed("milp", t0)
                return cex, False
        run.timed("milp", t0)
        if ans.outcome == Outcome.PROVEN:
            pr.proven = True
            pr.note = "milp"
        else:
            all_done = False
            if ans.outcome == Outcome.TIMEOUT:
                return None, False
    return None, all_done


def verify_graph(graph: Graph, prop, config: VerifyConfig, deadline: Deadline | None = None) -> Result:
    """Run the pipeline on an imported Graph and a parsed Property."""
    from .device import device_scope

    previous = torch.get_num_threads()
    torch.set_num_threads(config.torch_threads)
    try:
        with device_scope(config.device):
            return _verify_graph(graph, prop, config, deadline or Deadline(config.timeout))
    finally:
        torch.set_num_threads(previous)


def _verify_graph(graph: Graph, prop, config: VerifyConfig, deadline: Deadline) -> Result:
    """verify_graph with the thread setting in place."""
    check_sizes(graph, prop)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    t0 = time.monotonic()
    replayer = Replayer(graph.onnx_model, config.replay)
    for ci, case in enumerate(prop.cases[:4]):
        check_graph_against_model(graph, replayer, case.lower, case.upper,
                                  config.check_import_points if ci == 0 else 3, rng)
    run = Run(graph, prop, config, deadline, replayer, rng)
    run.stats["replay_backend"] = replayer.backend
    run.timed("check_import", t0)

    def finish(status: Status, cex: Counterexample | None = None, message: str = "") -> Result:
        run.stats["total"] = deadline.elapsed()
        return Result(status, cex, run.stats, message)

    cases = list(range(len(prop.cases)))
    if config.attack.enabled:
        t0 = time.monotonic()
        cex = _attack(run, deadline.sub(config.attack.time_share), cases)
        run.timed("attack", t0)
        if cex is not None:
            return finish(Status.SAT, cex, "counterexample found by PGD")
    pairs = [Pair(ci, k) for ci in cases for k in range(len(prop.cases[ci].polytopes))]
    if config.use_bounds and not deadline.expired():
        t0 = time.monotonic()
        _bound_stage(run, pairs)
        run.timed("bounds", t0)
        if all(pr.proven for pr in pairs):
            return finish(Status.UNSAT, message="proven by linear bounds")
    if deadline.expired():
        return finish(Status.TIMEOUT)
    if graph.is_piecewise_linear():
        from .bab.engine import decide_pairs
    else:  # Sigmoid/Tanh: bounds-only branch and bound, decided up to the deadline
        from .bab.smooth_split import decide_pairs

    cex, done = decide_pairs(run, [pr for pr in pairs if not pr.proven], _milp_stage)
    if cex is None and not done and not deadline.expired() and graph.is_piecewise_linear():
        from .bab.keep_searching import keep_searching  # open before the deadline: again

        cex, done = keep_searching(run, [pr for pr in pairs if not pr.proven], _milp_stage)
    if cex is not None:
        return finish(Status.SAT, cex, "counterexample confirmed by ONNX replay")
    if done and all(pr.proven for pr in pairs):
        return finish(Status.UNSAT, message="proven")
    if deadline.expired():
        return finish(Status.TIMEOUT)
    return finish(Status.UNKNOWN)

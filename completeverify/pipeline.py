"""verify(): attack -> bounds -> branch and bound / MILP -> verdict, under one deadline."""

from __future__ import annotations

import functools
import logging
import math
import time

import numpy as np
import torch

from .attack import pgd
from .bounds.pre import pre_to_numpy
from .config import BOUND_METHODS, BoundMethod, Deadline, VerifyConfig
from .context import Pair, VerifyContext
from .errors import InternalError, PropertyError
from .graph import Graph
from .second_core import torch_threads
from .spec import polytope_margins, stack_rows
from .verdict import Counterexample, Replayer, Result, Status, check_graph_against_model, confirm
from .vnnlib import Property

log = logging.getLogger(__name__)


Run = VerifyContext  # the former name, kept for callers outside the package


def check_sizes(graph: Graph, prop: Property) -> None:
    """The property's X/Y counts must match the network."""
    if prop.n_inputs != graph.n_inputs:
        raise PropertyError(
            f"property declares {prop.n_inputs} inputs (X_*),"
            f" network '{graph.source}' has {graph.n_inputs}",
            prop.source,
        )
    if prop.n_outputs != graph.n_outputs:
        raise PropertyError(
            f"property declares {prop.n_outputs} outputs (Y_*),"
            f" network '{graph.source}' has {graph.n_outputs}",
            prop.source,
        )


def _attack(run: VerifyContext, budget: Deadline, cases: list[int]) -> Counterexample | None:
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


def _bound_stage(run: VerifyContext, pairs: list[Pair]) -> None:
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
        if run.graph.n_inputs <= run.config.bab.input_split_max_dim and run.config.mode in (
            "auto",
            "input-split",
        ):
            methods = methods[:2]  # input splitting follows: alpha at the root rarely pays off
        for method in methods:
            if run.deadline.expired():
                break
            res = engine.compute(
                lo, hi, C[None], c0[None], method=method, deadline=run.deadline.end
            )
            margins = polytope_margins(res.lb, slices)[0]
            for pr, margin in zip(prs, margins.tolist()):
                if math.isfinite(margin) and margin > 0 and not pr.proven:
                    pr.proven = True
                    pr.note = f"bounds ({method})"
            if all(pr.proven for pr in prs):
                break
        if res is not None:
            pre = pre_to_numpy(res.pre)
            for pr in prs:
                pr.pre = pre


def _methods(final: BoundMethod) -> list[BoundMethod]:
    """The cheap-to-expensive sequence of bound methods ending at ``final``."""
    return list(BOUND_METHODS[: BOUND_METHODS.index(final) + 1])


def _milp_stage(run: VerifyContext, pairs: list[Pair]) -> tuple[Counterexample | None, bool]:
    """Decide the remaining pairs exactly; returns (counterexample, all_decided)."""
    from .bab.knife_edge import repair_candidate
    from .bounds import BoundEngine
    from .milp.leaf import LeafProblem, LeafVerdict, exact_leaf, pgd_polish
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
            pre = pre_to_numpy(BoundEngine(run.graph).ibp(lo, hi))
        if cfg.lp_tighten_layers > 0:
            from .milp.tighten import tighten_bounds

            t0 = time.monotonic()
            pre = tighten_bounds(
                run.graph,
                case.lower,
                case.upper,
                pre,
                layers=cfg.lp_tighten_layers,
                relax="lp",
                deadline=run.deadline.sub(0.2),
            )
            run.timed("lp_tighten", t0)
        polish = pgd_polish(
            run.graph,
            run.replayer,
            case,
            pr.case,
            [poly],
            run.config.attack,
            lambda: run.deadline.sub(0.2, 5.0),
            run.rng,
        )
        leaf = exact_leaf(
            LeafProblem(run.graph, case, pr.case, poly, case.lower, case.upper, pre),
            solver,
            run.replayer,
            cfg,
            run.deadline,
            polish=polish,
            repair=functools.partial(repair_candidate, run, pr.case, polys=[poly]),
        )
        if leaf.verdict == LeafVerdict.EMPTY:
            # empty bounds on a non-empty box: some bound is wrong, never a proof
            log.warning("milp stage: empty pre-activation bounds; this pair stays undecided")
            all_done = False
            continue
        run.add("encode", leaf.encode_s)
        run.add("milp", leaf.decide_s)
        if leaf.counterexample is not None:
            return leaf.counterexample, False
        if leaf.verdict == LeafVerdict.PROVEN:
            pr.proven = True
            pr.note = "milp"
        else:
            all_done = False
            if leaf.verdict == LeafVerdict.TIMEOUT:
                return None, False
    return None, all_done


def verify_graph(
    graph: Graph, prop: Property, config: VerifyConfig, deadline: Deadline | None = None
) -> Result:
    """Run the pipeline on an imported Graph and a parsed Property."""
    from .device import device_scope

    previous = torch.get_num_threads()
    torch.set_num_threads(torch_threads(config.torch_threads, graph.has_convolutions()))
    try:
        with device_scope(config.device):
            return _verify_graph(graph, prop, config, deadline or Deadline(config.timeout))
    finally:
        torch.set_num_threads(previous)


def _verify_graph(graph: Graph, prop: Property, config: VerifyConfig, deadline: Deadline) -> Result:
    """verify_graph with the thread setting in place."""
    check_sizes(graph, prop)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    t0 = time.monotonic()
    if graph.onnx_model is None:  # every importer keeps the model: sat needs an ONNX replay
        raise InternalError(f"{graph.source}: the graph carries no ONNX model to replay in")
    replayer = Replayer(graph.onnx_model, config.replay)
    for ci, case in enumerate(prop.cases[:4]):
        check_graph_against_model(
            graph,
            replayer,
            case.lower,
            case.upper,
            config.check_import_points if ci == 0 else 3,
            rng,
        )
    run = VerifyContext(graph, prop, config, deadline, replayer, rng)
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

"""Input-splitting branch and bound for networks with few inputs (ACAS Xu, control benchmarks).

Domains are sub-boxes of one case's input box.  Each round pops a batch of the worst
domains, bounds every unsafe polytope's rows on all of them with one CROWN call, drops the
domains on which every polytope is proven unreachable (some row's lower bound > 0; once a
search has bounded bab.input_alpha_after domains, the ones CROWN leaves open also get
alpha-CROWN while that closes enough of them: AlphaGate), tries the concrete points the bounds
point at (box centres and the minimisers of the linear lower bounds) as counterexamples, and
bisects the rest (see _branch_dims): along the input with the largest gradient-times-width
"smear" at the centre and, where it differs, also along the input with the largest
|A_j| x width_j of the linear lower bound that matters most.  A long search also attacks the
whole box now and then (_box_attack).  A domain that becomes tiny, or keeps at most
LEAF_UNSTABLE unstable ReLUs, is decided by the exact MILP on its box, so completeness never
depends on the boxes shrinking to points.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..bounds.pre import pre_to_numpy
from ..config import Deadline
from ..context import VerifyContext
from ..spec import polytope_margins, stack_rows
from ..verdict import confirm
from .progress import fitting_batch
from .types import BabOutcome, BabVerdict, MilpLeaf, falsified_outcomes

log = logging.getLogger(__name__)

FALSIFY_STEPS = 8  # PGD steps inside each open domain per round
FULL_PGD_EVERY = 8  # every this many rounds PGD runs in every open domain ...
FOCUS_PGD = 32  # ... and in between only in this many worst ones (PGD was a quarter of the time)
LEAF_UNSTABLE = 3  # a domain with at most this many unstable ReLUs is decided by MILP
MIN_WIDTH = 1e-7  # relative to the case's box: below this a domain goes to the MILP
# the whole-box attack (_box_attack): first once this many domains were bounded (an instance
# the bounds decide quickly never pays for it), then each time that count has grown this
# many times over, so it takes a small, fixed share of a long search
ATTACK_AFTER = 1024
ATTACK_GROWTH = 4
ATTACK_STARTS = 256
ATTACK_STEPS = 200
ATTACK_LR = 0.05
ALPHA_WINDOW = 512  # alpha-CROWN domains AlphaGate's close rate is measured over
ALPHA_PROBE_EVERY = 8  # while that rate is low, alpha-CROWN runs in one round of this many


@dataclass
class AlphaGate:
    """Whether a round of input splitting gives its open domains alpha-CROWN.

    From ``after`` bounded domains on, while alpha-CROWN closes at least ``min_rate`` of the
    domains it is given (counted over about the last ALPHA_WINDOW of them); below that rate,
    in every ALPHA_PROBE_EVERY-th round only, which keeps the rate measured: it rises as the
    boxes shrink near a tight property.  Measured: on ACAS Xu 4_2 prop_2 the stage closes 20%
    of its domains early and 58% in all (it decides the row), on the unsat reach_prob_density
    robot rows about a third; on the sat robot_10 it closed 2% while taking two thirds of
    each round, and cost the search that row.  Counts only, no clocks: the same search makes
    the same choices.
    """

    after: int
    min_rate: float
    given: float = 0.0
    closed: float = 0.0
    rounds: int = 0

    def wanted(self, done: int) -> bool:
        """Whether this round, after done bounded domains, runs the stage."""
        if done < self.after:
            return False
        self.rounds += 1
        if self.given < ALPHA_WINDOW or self.closed >= self.min_rate * self.given:
            return True
        return self.rounds % ALPHA_PROBE_EVERY == 0

    def record(self, given: int, closed: int) -> None:
        """The stage was given this many open domains and closed this many of them."""
        self.given += given
        self.closed += closed
        if self.given > 2 * ALPHA_WINDOW:  # the older half weighs as much as the newer one
            scale = ALPHA_WINDOW / self.given
            self.given *= scale
            self.closed *= scale


def _smear_scores(
    graph,
    lo: torch.Tensor,
    hi: torch.Tensor,
    C: torch.Tensor,
    c0: torch.Tensor,
    slices: list[slice],
    open_mask: torch.Tensor,
) -> torch.Tensor:
    """For each domain, |gradient| * width of its worst open polytope at the centre (B, n_in)."""
    x = ((lo + hi) / 2).clone().requires_grad_(True)
    y = graph.forward(x.reshape((x.shape[0],) + graph.input_shape)).reshape(x.shape[0], -1)
    vals = y @ C.T + c0
    margins = polytope_margins(vals, slices)
    margins = torch.where(open_mask, margins, torch.full_like(margins, float("inf")))
    worst = margins.amin(dim=1)
    (grad,) = torch.autograd.grad(worst.sum(), x)
    width = hi - lo
    smear = grad.abs() * width
    smear = torch.where(width > 0, smear + 1e-12 * width, torch.zeros_like(smear))
    return smear


def _falsify(
    run,
    case,
    case_index: int,
    lo: torch.Tensor,
    hi: torch.Tensor,
    x_lb: torch.Tensor | None,
    C: torch.Tensor,
    c0: torch.Tensor,
    slices: list[slice],
    deadline: Deadline,
    focus: torch.Tensor | None = None,
):
    """Batched PGD inside the domains; the first candidate the ONNX replay confirms, or None.

    Starts: each domain's centre and its bound minimisers.  focus: indices of the domains that
    get PGD steps; the others' starts are only evaluated (one forward pass).  None: all.
    """
    from ..attack import pgd_batch, spec_loss

    starts, los, his = [(lo + hi) / 2], [lo], [hi]
    if x_lb is not None:
        m = x_lb.shape[1]
        starts.append(x_lb.reshape(-1, lo.shape[1]))
        los.append(lo.repeat_interleave(m, dim=0))
        his.append(hi.repeat_interleave(m, dim=0))
    x0, blo, bhi = torch.cat(starts), torch.cat(los), torch.cat(his)
    Cs = [C[s] for s in slices]
    ds = [-c0[s] for s in slices]
    if focus is None or focus.numel() >= lo.shape[0]:
        best_x, best_loss = pgd_batch(run.graph, x0, blo, bhi, Cs, ds, FALSIFY_STEPS, 0.2, deadline)
    else:
        owner = torch.cat(
            [torch.arange(lo.shape[0])]
            + (
                [torch.arange(lo.shape[0]).repeat_interleave(x_lb.shape[1])]
                if x_lb is not None
                else []
            )
        )
        best_x = x0.clone()
        with torch.no_grad():
            y = run.graph.forward(x0.reshape((x0.shape[0],) + run.graph.input_shape)).reshape(
                x0.shape[0], -1
            )
            best_loss = spec_loss(y, Cs, ds)
        k = torch.nonzero(torch.isin(owner, focus)).flatten()
        best_x[k], best_loss[k] = pgd_batch(
            run.graph, x0[k], blo[k], bhi[k], Cs, ds, FALSIFY_STEPS, 0.2, deadline
        )
    return _confirm_best(run, case, case_index, best_x, best_loss)


def _confirm_best(run, case, case_index: int, best_x: torch.Tensor, best_loss: torch.Tensor):
    """The first of the 8 lowest-loss points that the ONNX replay confirms, or None."""
    for h in torch.argsort(best_loss)[:8].tolist():
        if not float(best_loss[h]) <= 1e-9:
            break
        cex = confirm(run.replayer, best_x[h].cpu().numpy(), case, case_index)
        if cex is not None:
            return cex
    return None


def _box_attack(run, case, case_index: int, heap: list, C, c0, slices, deadline: Deadline):
    """Adam on the summed row violations (attack.adam_batch) over the case's whole box, from
    ATTACK_STARTS random points and one random point in each of the ATTACK_STARTS worst queued
    domains; a confirmed counterexample or None.

    The per-round falsification takes 8 sign-gradient steps of the max row inside each domain,
    which on a thin unsafe band (reach_prob_density robot: two outputs each within +-0.05)
    found none of three counterexamples in 60 s; this finds them in under a second.
    """
    from ..attack import adam_batch

    # the model's own precision (as the pipeline's attack): candidates are replayed anyway
    dtype = torch.float32 if run.graph.input_dtype == "float32" else torch.float64
    lo = torch.as_tensor(case.lower, dtype=dtype)
    hi = torch.as_tensor(case.upper, dtype=dtype)
    n = lo.numel()
    starts = [run.rng.uniform(case.lower, case.upper, size=(ATTACK_STARTS, n))]
    for entry in heapq.nsmallest(ATTACK_STARTS, heap):
        d_lo, d_hi = entry[2].cpu().numpy(), entry[3].cpu().numpy()
        starts.append(run.rng.uniform(d_lo, d_hi)[None])
    x0 = torch.as_tensor(np.concatenate(starts), dtype=dtype)
    Cs = [C[s].to(dtype) for s in slices]
    ds = [-c0[s].to(dtype) for s in slices]
    best_x, best_loss = adam_batch(run.graph, x0, lo, hi, Cs, ds, ATTACK_STEPS, ATTACK_LR, deadline)
    return _confirm_best(run, case, case_index, best_x, best_loss)


def _coef_scores(
    lo: torch.Tensor,
    hi: torch.Tensor,
    lb: torch.Tensor,
    coeffs: torch.Tensor,
    slices: list[slice],
    open_mask: torch.Tensor,
) -> torch.Tensor:
    """For each domain, the scores |A_j| * width_j of the bound row that matters most (B, n_in).

    The row is the best row (highest lower bound) of the worst open polytope: its linear lower
    bound A x + b loses about |A_j| * width_j / 2 to dimension j, which bisecting j recovers.
    """
    best_rows, best_vals = [], []
    for s in slices:
        vals, arg = lb[:, s].max(dim=1)
        best_rows.append(arg + s.start)
        best_vals.append(vals)
    rows = torch.stack(best_rows, dim=1)  # (B, P)
    vals = torch.where(
        open_mask,
        torch.stack(best_vals, dim=1),
        torch.full_like(open_mask, 0, dtype=lb.dtype) + torch.inf,
    )
    worst = vals.argmin(dim=1)
    row = rows.gather(1, worst[:, None]).squeeze(1)  # (B,)
    a = coeffs[torch.arange(lo.shape[0]), row]  # (B, n_in)
    width = hi - lo
    score = a.abs() * width
    score = torch.where(torch.isfinite(score), score, torch.zeros_like(score)) + 1e-12 * width
    return score


def _branch_dims(
    graph, lo, hi, C, c0, slices, open_mask, lb, coeffs, branching: str
) -> list[list[int]]:
    """The input dimension(s) to bisect in each domain.

    "smear" and "coef" pick one dimension each.  "both" bisects the smear choice and, where the
    coefficient score disagrees, that dimension too (four children): each heuristic alone
    fails badly on some ACAS Xu properties (smear on property 2, coef on property 1), and
    covering both costs at most twice the children on the domains where they disagree.
    """
    smear = _smear_scores(graph, lo, hi, C, c0, slices, open_mask).argmax(dim=1)
    if branching == "smear" or coeffs is None:
        return [[int(d)] for d in smear]
    coef = _coef_scores(lo, hi, lb, coeffs, slices, open_mask).argmax(dim=1)
    if branching == "coef":
        return [[int(d)] for d in coef]
    return [[int(a)] if int(a) == int(b) else [int(a), int(b)] for a, b in zip(smear, coef)]


def _children(
    lo: torch.Tensor, hi: torch.Tensor, dims: list[int]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Bisect the box [lo, hi] along each of dims in turn (2 ** len(dims) children)."""
    boxes = [(lo, hi)]
    for d in dims:
        nxt = []
        for b_lo, b_hi in boxes:
            mid = (b_lo[d] + b_hi[d]) / 2
            left_hi, right_lo = b_hi.clone(), b_lo.clone()
            left_hi[d] = mid
            right_lo[d] = mid
            nxt += [(b_lo, left_hi), (right_lo, b_hi)]
        boxes = nxt
    return boxes


def input_split(
    run: VerifyContext,
    case_index: int,
    poly_indices: list[int],
    deadline: Deadline,
    milp_leaf: MilpLeaf,
) -> dict[int, BabOutcome]:
    """Decide the given polytopes of one case by splitting its input box.

    milp_leaf(lower, upper, poly_index, pre) -> BabOutcome decides one polytope exactly on a small
    box
    (pre: the domain's sound intermediate bounds, or None to compute them).
    Returns an outcome per polytope index.
    """
    from ..bounds import BoundConfig, BoundEngine
    from ..bounds.forward import forward_pre_bounds, supports

    graph = run.graph
    case = run.prop.cases[case_index]
    polys = [case.polytopes[k] for k in poly_indices]
    if any(p.C.shape[0] == 0 for p in polys):
        return {k: BabOutcome(BabVerdict.OPEN, note="empty polytope") for k in poly_indices}
    # forward symbolic bounds first (cheap with few inputs); the engine then runs backward
    # CROWN only on the intermediate neurons they leave unstable, and on the final rows
    fast = supports(graph)
    cfg = run.config.bab
    engine = BoundEngine(graph)
    alpha_engine = (
        BoundEngine(graph, BoundConfig(alpha_iters=cfg.input_alpha_iters))
        if cfg.input_alpha_iters > 0
        else None
    )
    C, c0, slices = stack_rows(polys)
    root_lo = torch.as_tensor(case.lower, dtype=torch.float64)
    root_hi = torch.as_tensor(case.upper, dtype=torch.float64)
    min_width = MIN_WIDTH * torch.clamp(root_hi - root_lo, min=1e-12)
    counter = itertools.count()
    # heap of (priority, tie, lower, upper, open polytope mask); priority = worst margin lower bound
    heap: list = [
        (-np.inf, next(counter), root_lo, root_hi, torch.ones(len(polys), dtype=torch.bool))
    ]
    done = rounds = 0
    gate = AlphaGate(cfg.input_alpha_after, cfg.input_alpha_min_rate)
    next_attack = ATTACK_AFTER
    outcome = {k: BabOutcome(BabVerdict.PROVEN) for k in poly_indices}
    t_start = time.monotonic()
    last_log = t_start
    # the pace of the last round per domain: rounds shrink where a full batch would overrun the
    # deadline (a CNN's batch of 256 boxes can take longer than the whole timeout)
    t_round, n_round, per_domain = t_start, 0, 0.0
    while heap:
        if n_round:
            per_domain = (time.monotonic() - t_round) / n_round
        if deadline.expired():
            for k in poly_indices:
                if outcome[k].verdict == BabVerdict.PROVEN:
                    outcome[k] = BabOutcome(BabVerdict.TIMEOUT, domains=done)
            return outcome
        depth_first = len(heap) > cfg.max_domains
        n = min(fitting_batch(cfg.batch_size, deadline.remaining(), per_domain), len(heap))
        t_round, n_round = time.monotonic(), n
        batch = (
            [heapq.heappop(heap) for _ in range(n)]
            if not depth_first
            else [heap.pop() for _ in range(n)]
        )
        if depth_first:
            heapq.heapify(heap)
        lo = torch.stack([b[2] for b in batch])
        hi = torch.stack([b[3] for b in batch])
        open_mask = torch.stack([b[4] for b in batch])
        with torch.no_grad():
            pre = forward_pre_bounds(graph, lo, hi) if fast else None
            res = engine.compute(lo, hi, C, c0, method="crown", pre=pre)
        done += n
        run.add("input_split_domains", n)
        if done >= next_attack and not deadline.expired():
            next_attack *= ATTACK_GROWTH
            t_attack = time.monotonic()
            cex = _box_attack(run, case, case_index, heap, C, c0, slices, deadline)
            run.timed("input_split_box_attack", t_attack)
            if cex is not None:
                return falsified_outcomes(cex, poly_indices, done)
        margins = polytope_margins(res.lb, slices)  # (B, P) lower bounds of each polytope's margin
        proven = (margins > 0) & torch.isfinite(margins)
        open_mask = open_mask & ~proven
        if alpha_engine is not None and gate.wanted(done):
            # once the search proves hard, the domains CROWN leaves open get optimised slopes
            # (alpha-CROWN) on the same intermediate bounds: near a tight property the slopes,
            # not the box widths, decide (ACAS Xu 4_2 property 2: a timeout at 50k domains
            # without, unsat after 12k with)
            idx = torch.nonzero(open_mask.any(dim=1)).flatten()
            if idx.numel():
                run.add("input_split_alpha_domains", idx.numel())
                with torch.no_grad():
                    res_a = alpha_engine.compute(
                        lo[idx],
                        hi[idx],
                        C,
                        c0,
                        method="alpha-crown",
                        pre={j: (lj[idx], uj[idx]) for j, (lj, uj) in res.pre.items()},
                        deadline=deadline.end,
                    )
                res.lb[idx] = torch.maximum(res.lb[idx], res_a.lb)
                margins = polytope_margins(res.lb, slices)
                proven = (margins > 0) & torch.isfinite(margins)
                open_mask = open_mask & ~proven
                closed = idx.numel() - int(open_mask[idx].any(dim=1).sum())
                gate.record(idx.numel(), closed)
                run.add("input_split_alpha_closed", closed)
        alive = open_mask.any(dim=1)
        if not bool(alive.any()):
            continue
        idx = torch.nonzero(alive).flatten()
        lo, hi, open_mask, margins = lo[idx], hi[idx], open_mask[idx], margins[idx]
        # falsification: short PGD from each open domain's centre and bound minimisers; between
        # full rounds only the worst domains get PGD steps (the others' starts are evaluated)
        rounds += 1
        focus = None
        if rounds % FULL_PGD_EVERY:
            worst = torch.where(open_mask, margins, torch.full_like(margins, np.inf)).amin(dim=1)
            focus = torch.argsort(worst)[:FOCUS_PGD]
        cex = _falsify(
            run,
            case,
            case_index,
            lo,
            hi,
            res.x_lb[idx] if res.x_lb is not None else None,
            C,
            c0,
            slices,
            deadline,
            focus,
        )
        if cex is not None:
            return falsified_outcomes(cex, poly_indices, done)
        # split the open domains; tiny ones, and ones with few unstable ReLUs left (a small
        # exact MILP), go to the solver
        width = hi - lo
        n_unstable = sum(
            ((l_j[idx] < 0) & (u_j[idx] > 0)).sum(dim=1) for l_j, u_j in res.pre.values()
        )
        tiny = (width <= min_width).all(dim=1) | (n_unstable <= LEAF_UNSTABLE)
        for t in torch.nonzero(tiny).flatten().tolist():
            pre_t = pre_to_numpy(res.pre, int(idx[t]))
            for p_i in torch.nonzero(open_mask[t]).flatten().tolist():
                res_leaf = milp_leaf(
                    lo[t].cpu().numpy(), hi[t].cpu().numpy(), poly_indices[p_i], pre_t
                )
                if res_leaf.verdict == BabVerdict.FALSIFIED:
                    return {
                        kk: (
                            res_leaf
                            if kk == poly_indices[p_i]
                            else BabOutcome(BabVerdict.OPEN, domains=done)
                        )
                        for kk in poly_indices
                    }
                if res_leaf.verdict != BabVerdict.PROVEN:
                    outcome[poly_indices[p_i]] = res_leaf
        keep = torch.nonzero(~tiny).flatten()
        if keep.numel():
            lo, hi, open_mask, margins = lo[keep], hi[keep], open_mask[keep], margins[keep]
            dim_sets = _branch_dims(
                graph,
                lo,
                hi,
                C,
                c0,
                slices,
                open_mask,
                res.lb[idx][keep],
                None if res.coeffs is None else res.coeffs[idx][keep],
                cfg.input_branching,
            )
            prio = torch.where(open_mask, margins, torch.full_like(margins, np.inf)).amin(dim=1)
            for b in range(lo.shape[0]):
                p = float(prio[b])
                for c_lo, c_hi in _children(lo[b], hi[b], dim_sets[b]):
                    heapq.heappush(heap, (p, next(counter), c_lo, c_hi, open_mask[b]))
        now = time.monotonic()
        if now - last_log > 5:
            last_log = now
            log.info(
                "input split: %d domains bounded, %d queued, worst bound %.4g",
                done,
                len(heap),
                float(heap[0][0]) if heap else float("nan"),
            )
    for k in poly_indices:
        if outcome[k].verdict == BabVerdict.PROVEN:
            outcome[k] = BabOutcome(BabVerdict.PROVEN, domains=done, note="input split")
    return outcome

"""Branch and bound for networks that are not piecewise linear (Sigmoid, Tanh; ReLU may mix in).

The MILP cannot encode a sigmoid, so the search never hands a leaf to an exact solver: every
``unsat`` comes from sound linear bounds (CROWN, float64, outward margins) and every ``sat``
from a point that the ONNX replay confirms.  What makes the search converge is that each split
shrinks the interval of some activation input, and the sigmoid/tanh lines of a narrower
interval are closer to the curve:

* input splitting (few inputs): bisect the input box along the dimension with the largest
  |A_j| x width_j of the linear lower bound of the worst open row;
* activation splitting (many inputs): split the input interval [l, u] of the activation neuron
  with the largest |a_k| x gap_k at its midpoint (a_k: CROWN coefficient reaching the neuron's
  output for that row; gap_k: the largest distance between its upper and lower relaxation
  lines on [l, u]); an unstable ReLU is split at 0 instead, which makes it exact.

A domain is an input box plus the intermediate bounds its parent proved (valid on the child's
smaller region) intersected with its own split constraints; the engine takes them as ``pre``
and only ever tightens them.  A domain whose bounds cross (some l > u) has an empty region and
is discarded as proven.  The domain with the worst margin bound is bounded first.

Completeness: on these networks the answer is "decided up to the time limit, never wrong".  As
the domains shrink the bounds converge to the true values, so an unsat property whose margin is
positive is eventually proven, and a sat one is found by the falsifier run in the worst
domains; only a margin of exactly zero, or one below the float resolution of the splits, can
leave the search open until the deadline (then the answer is ``timeout``/``unknown``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time

import numpy as np
import torch

from ..config import Deadline
from ..graph import Relu, Sigmoid, Tanh
from ..spec import polytope_margins, stack_rows
from ..verdict import confirm
from .types import BabOutcome, BabVerdict, falsified_outcomes

log = logging.getLogger(__name__)

PGD_STEPS = 8  # sign-gradient steps from the bound minimisers of the worst domains per round
PGD_DOMAINS = 32  # how many of the worst open domains get those steps
MIN_WIDTH = 1e-9  # relative to the root interval: narrower inputs / activations are not split

Bounds = dict[int, tuple[torch.Tensor, torch.Tensor]]


def smooth_mode(run) -> str:
    """'input' or 'activation': the configured choice, or by input dimension when 'auto'."""
    mode = run.config.bab.smooth_branching
    if mode != "auto":
        return mode
    return "input" if run.graph.n_inputs <= run.config.bab.input_split_max_dim else "activation"


def decide_pairs(run, pairs, _milp_stage=None):
    """Decide the open (case, polytope) pairs of a non-piecewise-linear network.

    Same contract as bab.engine.decide_pairs: returns (counterexample or None, all decided).
    """
    t0 = time.monotonic()
    all_done = True
    try:
        by_case: dict[int, list] = {}
        for pr in pairs:
            by_case.setdefault(pr.case, []).append(pr)
        for ci, prs in by_case.items():
            out = smooth_split(run, ci, [pr.poly for pr in prs], run.deadline)
            for pr in prs:
                o = out[pr.poly]
                if o.verdict == BabVerdict.FALSIFIED:
                    return o.counterexample, False
                if o.verdict == BabVerdict.PROVEN:
                    pr.proven, pr.note = True, "smooth split"
                else:
                    all_done = False
                    if o.verdict == BabVerdict.TIMEOUT:
                        return None, False
        return None, all_done
    finally:
        run.stats["bab"] = run.stats.get("bab", 0.0) + time.monotonic() - t0


def _gap(kind: str, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Largest vertical distance between the upper and lower relaxation lines on [lo, hi]."""
    from ..bounds.relax import smooth_relax

    if kind == "relu":
        unstable = (lo < 0) & (hi > 0)
        den = torch.where(unstable, hi - lo, torch.ones_like(hi))
        return torch.where(unstable, -lo * hi / den, torch.zeros_like(hi))
    r = smooth_relax(kind, lo, hi)
    g_lo = (r.up_slope - r.lo_slope) * lo + (r.up_int - r.lo_int)
    g_hi = (r.up_slope - r.lo_slope) * hi + (r.up_int - r.lo_int)
    g = torch.maximum(g_lo, g_hi)
    return torch.where(torch.isfinite(g), g, torch.zeros_like(g))


class _Search:
    """State of one smooth branch-and-bound search over one case."""

    def __init__(self, run, case_index: int, poly_indices: list[int]) -> None:
        """Bound engine, stacked spec rows, activation bookkeeping."""
        from ..bounds import BoundEngine

        self.run, self.graph = run, run.graph
        self.case_index, self.poly_indices = case_index, poly_indices
        self.case = run.prop.cases[case_index]
        self.polys = [self.case.polytopes[k] for k in poly_indices]
        self.engine = BoundEngine(run.graph)
        self.C, self.c0, self.slices = stack_rows(self.polys)
        self.mode = smooth_mode(run)
        # activation node -> (its input node, kind)
        self.acts: dict[int, tuple[int, str]] = {}
        for i, node in enumerate(self.graph.nodes):
            kind = {Relu: "relu", Sigmoid: "sigmoid", Tanh: "tanh"}.get(type(node.op))
            if kind is not None:
                self.acts[i] = (node.inputs[0], kind)
        self.root_lo = torch.as_tensor(self.case.lower, dtype=torch.float64)
        self.root_hi = torch.as_tensor(self.case.upper, dtype=torch.float64)
        self.min_width = MIN_WIDTH * torch.clamp(self.root_hi - self.root_lo, min=1e-12)
        self.root_pre: Bounds = {}

    # ------------------------------------------------------------------ bounding
    def bound(self, lo: torch.Tensor, hi: torch.Tensor, pre: Bounds | None):
        """CROWN on a batch of domains: (BoundResult, margins (B, P), empty (B,))."""
        with torch.no_grad():
            res = self.engine.compute(lo, hi, self.C, self.c0, method="crown", pre=pre)
        margins = polytope_margins(res.lb, self.slices)
        empty = torch.zeros(lo.shape[0], dtype=torch.bool)
        for l_j, u_j in res.pre.values():
            empty |= (l_j > u_j).any(dim=1)
        return res, margins, empty

    # ------------------------------------------------------------------ branching
    def input_dims(self, lo, hi, res, rows) -> torch.Tensor:
        """Input dimension to bisect per domain (B,): |A_j| x width_j of the worst row."""
        width = hi - lo
        if res.coeffs is None:
            score = width.clone()
        else:
            a = res.coeffs[torch.arange(lo.shape[0]), rows]
            score = a.abs() * width
            score = torch.where(torch.isfinite(score), score, torch.zeros_like(score))
            score = score + 1e-12 * width
        score = torch.where(width > self.min_width, score, torch.full_like(score, -1.0))
        return score.argmax(dim=1)

    def neuron_choice(self, res, rows) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Activation split per domain: (input node (B,), neuron (B,), score (B,))."""
        batch = rows.shape[0]
        row_vecs = self.C[rows] if self.C.dim() == 2 else self.C[torch.arange(batch), rows]
        coef = self.engine.activation_coefficients(res.pre, row_vecs)
        best = torch.full((batch,), -1.0, dtype=torch.float64)
        node = torch.full((batch,), -1, dtype=torch.long)
        neuron = torch.zeros(batch, dtype=torch.long)
        for i, (j, kind) in self.acts.items():
            if i not in coef or j not in res.pre:
                continue
            l_j, u_j = res.pre[j]
            root_w = self.root_pre[j][1] - self.root_pre[j][0] if j in self.root_pre else None
            score = coef[i].abs() * _gap(kind, l_j, u_j)
            tiny = MIN_WIDTH * root_w.clamp(min=1e-12) if root_w is not None else 0
            narrow = (u_j - l_j) <= tiny
            score = torch.where(narrow | ~torch.isfinite(score), torch.zeros_like(score), score)
            val, arg = score.max(dim=1)
            better = val > best
            best = torch.where(better, val, best)
            node = torch.where(better, torch.full_like(node, j), node)
            neuron = torch.where(better, arg, neuron)
        return node, neuron, best

    # ------------------------------------------------------------------ falsification
    def falsify(self, lo, hi, res, margins, open_mask, deadline: Deadline):
        """PGD from bound minimisers and centres of the worst domains: a confirmed cex or None."""
        from ..attack import pgd_batch

        worst = torch.where(open_mask, margins, torch.full_like(margins, np.inf)).amin(dim=1)
        k = torch.argsort(worst)[:PGD_DOMAINS]
        starts, los, his = [(lo[k] + hi[k]) / 2], [lo[k]], [hi[k]]
        if res.x_lb is not None:
            m = res.x_lb.shape[1]
            starts.append(res.x_lb[k].reshape(-1, lo.shape[1]))
            los.append(lo[k].repeat_interleave(m, dim=0))
            his.append(hi[k].repeat_interleave(m, dim=0))
        x0, blo, bhi = torch.cat(starts), torch.cat(los), torch.cat(his)
        Cs = [self.C[s] for s in self.slices]
        ds = [-self.c0[s] for s in self.slices]
        best_x, best_loss = pgd_batch(self.graph, x0, blo, bhi, Cs, ds, PGD_STEPS, 0.2, deadline)
        for h in torch.argsort(best_loss)[:8].tolist():
            if not float(best_loss[h]) <= 1e-9:
                break
            cex = confirm(self.run.replayer, best_x[h].cpu().numpy(), self.case, self.case_index)
            if cex is not None:
                return cex
        return None


def _stack_pre(items: list[Bounds]) -> Bounds:
    """Stack per-domain bounds {node: ((size,), (size,))} into {node: ((B, size), (B, size))}."""
    return {
        j: (torch.stack([b[j][0] for b in items]), torch.stack([b[j][1] for b in items]))
        for j in items[0]
    }


def smooth_split(
    run, case_index: int, poly_indices: list[int], deadline: Deadline
) -> dict[int, BabOutcome]:
    """Decide the given polytopes of one case by input or activation splitting (see module doc).

    Returns an outcome per polytope index: PROVEN (by bounds), FALSIFIED (replayed), TIMEOUT, or
    OPEN when every remaining domain is below the split resolution.
    """
    s = _Search(run, case_index, poly_indices)
    if any(p.C.shape[0] == 0 for p in s.polys):
        return {k: BabOutcome(BabVerdict.OPEN, note="empty polytope") for k in poly_indices}
    cfg = run.config.bab
    counter = itertools.count()
    # heap entries: (priority, tie, lower (n,), upper (n,), pre bounds or None, open mask (P,))
    all_open = torch.ones(len(s.polys), dtype=torch.bool)
    heap: list = [(-np.inf, next(counter), s.root_lo, s.root_hi, None, all_open)]
    done = 0
    # polytopes left open by a domain that cannot be split further
    stuck = torch.zeros(len(s.polys), dtype=torch.bool)
    last_log = time.monotonic()
    while heap:
        if deadline.expired():
            return {k: BabOutcome(BabVerdict.TIMEOUT, domains=done) for k in poly_indices}
        depth_first = len(heap) > cfg.max_domains
        n = min(cfg.batch_size, len(heap))
        if depth_first:
            batch = [heap.pop() for _ in range(n)]
        else:
            batch = [heapq.heappop(heap) for _ in range(n)]
        if depth_first:
            heapq.heapify(heap)
        lo = torch.stack([b[2] for b in batch])
        hi = torch.stack([b[3] for b in batch])
        pre = None if batch[0][4] is None else _stack_pre([b[4] for b in batch])
        open_mask = torch.stack([b[5] for b in batch])
        res, margins, empty = s.bound(lo, hi, pre)
        if not s.root_pre:
            s.root_pre = {j: (v[0][0], v[1][0]) for j, v in res.pre.items()}
        done += n
        open_mask = open_mask & ~((margins > 0) & torch.isfinite(margins)) & ~empty[:, None]
        alive = torch.nonzero(open_mask.any(dim=1)).flatten()
        if alive.numel() == 0:
            continue
        lo, hi, open_mask, margins = lo[alive], hi[alive], open_mask[alive], margins[alive]
        res.lb, res.pre = res.lb[alive], {j: (v[0][alive], v[1][alive]) for j, v in res.pre.items()}
        res.x_lb = None if res.x_lb is None else res.x_lb[alive]
        res.coeffs = None if res.coeffs is None else res.coeffs[alive]
        cex = s.falsify(lo, hi, res, margins, open_mask, deadline)
        if cex is not None:
            return falsified_outcomes(cex, poly_indices, done)
        _branch(s, heap, counter, lo, hi, res, margins, open_mask, stuck)
        now = time.monotonic()
        if now - last_log > 5:
            last_log = now
            log.info(
                "smooth split (%s): %d domains bounded, %d queued, worst bound %.4g",
                s.mode,
                done,
                len(heap),
                float(heap[0][0]) if heap else float("nan"),
            )
    run.stats["domains"] = run.stats.get("domains", 0) + done
    return {
        k: BabOutcome(
            BabVerdict.OPEN if bool(stuck[p]) else BabVerdict.PROVEN,
            domains=done,
            note="smooth split",
        )
        for p, k in enumerate(poly_indices)
    }


def _worst_rows(
    res, margins: torch.Tensor, open_mask: torch.Tensor, slices: list[slice]
) -> torch.Tensor:
    """Per domain, the best row (highest lower bound) of its worst open polytope (B,)."""
    best_rows = torch.stack([res.lb[:, sl].argmax(dim=1) + sl.start for sl in slices], dim=1)
    worst = torch.where(open_mask, margins, torch.full_like(margins, np.inf)).argmin(dim=1)
    return best_rows.gather(1, worst[:, None]).squeeze(1)


def _branch(s: _Search, heap: list, counter, lo, hi, res, margins, open_mask, stuck) -> None:
    """Push the two children of every open domain (or mark its polytopes stuck)."""
    rows = _worst_rows(res, margins, open_mask, s.slices)
    prio = torch.where(open_mask, margins, torch.full_like(margins, np.inf)).amin(dim=1)
    pre_of = [{j: (v[0][b], v[1][b]) for j, v in res.pre.items()} for b in range(lo.shape[0])]
    choice = s.neuron_choice(res, rows) if s.mode == "activation" else None
    dims = s.input_dims(lo, hi, res, rows)
    for b in range(lo.shape[0]):
        p = float(prio[b])
        if choice is not None and float(choice[2][b]) > 0:
            act_node, act_neuron = choice[0], choice[1]
            j, k = int(act_node[b]), int(act_neuron[b])
            l_j, u_j = pre_of[b][j]
            kind = next(kd for (jj, kd) in s.acts.values() if jj == j)
            mid = torch.zeros((), dtype=torch.float64) if kind == "relu" else (l_j[k] + u_j[k]) / 2
            left_u, right_l = u_j.clone(), l_j.clone()
            left_u[k], right_l[k] = mid, mid
            for child in ((l_j, left_u), (right_l, u_j)):
                pre_c = dict(pre_of[b])
                pre_c[j] = child
                heapq.heappush(heap, (p, next(counter), lo[b], hi[b], pre_c, open_mask[b]))
            continue
        d = int(dims[b])
        if not float(hi[b, d] - lo[b, d]) > float(s.min_width[d]):
            stuck |= open_mask[b]
            continue
        mid = (lo[b, d] + hi[b, d]) / 2
        left_hi, right_lo = hi[b].clone(), lo[b].clone()
        left_hi[d], right_lo[d] = mid, mid
        for c_lo, c_hi in ((lo[b], left_hi), (right_lo, hi[b])):
            heapq.heappush(heap, (p, next(counter), c_lo, c_hi, pre_of[b], open_mask[b]))

"""Filtered smart branching (FSB): rank a few BaBSR candidates by bounding their children.

The BaBSR score (bab/branching.py) estimates how much a split raises the lower bound from one
backward walk at the default slopes.  FSB keeps the k best candidates of each sub-domain under
that score and evaluates each one: both children (pre-activation >= 0 and <= 0) are bounded
by one CROWN walk at the parent's optimised alpha/beta and intermediate bounds, with the
candidate's split applied (its relaxation becomes exact).  Domains x candidates x 2 children
go through one ``BoundEngine.evaluate`` call per chunk (memory).

Score.  A child is bounded on every spec row the batch is searching, and scored by its worst
margin over the polytopes still open in the parent (``margins``): the child is closed
when that is > 0.  A candidate scores its better child, ties going to the higher sum of both
(then to the BaBSR order).  Preferring the split that closes, or nearly closes, one child keeps
the tree from doubling at that node; scoring the worse child instead, or only the one row
BaBSR branches for, needed more domains than BaBSR itself (measured, see BabConfig.branching).

Only the choice of neuron depends on these bounds: the children are bounded afresh (soundly)
by the search, so nothing here needs to be sound or float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..bounds import AlphaState, BoundEngine, Refinement, Splits

Box = tuple[torch.Tensor, torch.Tensor]
TIE_REL = 1e-9  # scores this close (relative) count as tied; the sum of both children decides
CHUNK_ELEMS = 10_000_000  # children x rows x widest node per evaluate call (memory)


@dataclass
class FsbBatch:
    """What FSB needs of a batch of B open domains.

    lo, hi: (1, n_in) input box; C: (B, R, n_out) each domain's spec rows being searched
    (``rows`` (B, R) of the m rows of all polytopes, a row possibly listed twice); c0: (B, R)
    their offsets; pre: node -> (lower, upper) each (B, size) after bounding; splits: relu node
    -> int8 (B, size); state: the optimised alphas/betas, each (B, R, size); lb: (B, m) the
    domains' row bounds; open: (B, P) their polytopes not yet excluded; slices: each polytope's
    rows among the m.
    """

    lo: torch.Tensor
    hi: torch.Tensor
    C: torch.Tensor
    c0: torch.Tensor
    pre: dict[int, Box]
    splits: dict[int, torch.Tensor]
    state: AlphaState
    rows: torch.Tensor
    lb: torch.Tensor
    open: torch.Tensor
    slices: Sequence[slice]


def margins(fb: FsbBatch, child: torch.Tensor) -> torch.Tensor:
    """Children's row bounds (B, k, 2, R) -> their worst margin over the open polytopes (B, k, 2);
    a child keeps every row bound of its parent."""
    full = fb.lb[:, None, None, :].expand(-1, *child.shape[1:3], -1)
    at = fb.rows[:, None, None, :].expand(-1, *child.shape[1:3], -1)
    full = full.scatter_reduce(-1, at, child, "amax", include_self=True)
    marg = torch.stack([full[..., s].amax(-1) for s in fb.slices], -1)
    return torch.where(fb.open[:, None, None, :], marg, math.inf).amin(-1)


def _candidates(
    score: dict[int, torch.Tensor], k: int
) -> tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-k per domain: (relu nodes, node position (B, k), neuron (B, k), valid (B, k))."""
    keys = list(score)
    flat = torch.cat([score[r] for r in keys], 1)
    vals, idx = flat.topk(min(k, flat.shape[1]), dim=1)
    offsets = torch.tensor([0] + [score[r].shape[1] for r in keys]).cumsum(0)
    node_pos = torch.searchsorted(offsets[1:], idx, right=True)
    neuron = idx - offsets[node_pos]
    return keys, node_pos, neuron, vals > float("-inf")


def _children(
    fb: FsbBatch,
    keys: list[int],
    node_pos: torch.Tensor,
    neuron: torch.Tensor,
    sizes: list[int],
    dtype: torch.dtype,
) -> tuple[Splits, dict[int, Box], AlphaState]:
    """Splits, bounds and state (in the evaluating engine's dtype: the state is the largest
    thing repeated here) of the B*k*2 children, ordered (domain, candidate, sign)."""
    b, k = node_pos.shape
    rep = 2 * k
    signs = torch.tensor([1, -1], dtype=torch.int8).repeat(b * k)
    flat_pos, flat_neuron = (
        node_pos.reshape(-1).repeat_interleave(2),
        neuron.reshape(-1).repeat_interleave(2),
    )
    rows = torch.arange(b * rep)
    splits: dict[int, torch.Tensor] = {}
    # (repeat_interleave copies: the children's betas can be written in place)
    betas = {r: v.to(dtype).repeat_interleave(rep, 0) for r, v in fb.state.betas.items()}
    for p, r in enumerate(keys):
        base = fb.splits.get(r)
        s = (
            base.repeat_interleave(rep, 0).clone()
            if base is not None
            else torch.zeros(b * rep, sizes[p], dtype=torch.int8)
        )
        hit = flat_pos == p
        s[rows[hit], flat_neuron[hit]] = signs[hit]
        if hit.any() or base is not None:
            splits[r] = s
        if r in betas:  # the new split starts without a multiplier
            betas[r][rows[hit], :, flat_neuron[hit]] = 0.0
    pre = {
        j: (lo.repeat_interleave(rep, 0), hi.repeat_interleave(rep, 0))
        for j, (lo, hi) in fb.pre.items()
    }
    alphas = {r: v.to(dtype).repeat_interleave(rep, 0) for r, v in fb.state.alphas.items()}
    return Splits(splits), pre, AlphaState(alphas, betas)


def child_scores(engine: BoundEngine, fb: FsbBatch, score: dict[int, torch.Tensor], k: int):
    """(children's margins (B, k, 2), node position (B, k), neuron (B, k), valid, keys)."""
    keys, node_pos, neuron, valid = _candidates(score, k)
    sizes = [score[r].shape[1] for r in keys]
    splits, pre, state = _children(fb, keys, node_pos, neuron, sizes, engine.dtype)
    n, rows = node_pos.numel() * 2, fb.C.shape[1]
    rep = n // max(1, node_pos.shape[0])  # children per domain
    C, c0 = fb.C.repeat_interleave(rep, 0), fb.c0.repeat_interleave(rep, 0)
    chunk = max(1, CHUNK_ELEMS // (rows * max(nd.size for nd in engine.nodes)))
    out = []
    for start in range(0, n, chunk):
        idx = torch.arange(start, min(start + chunk, n))
        out.append(
            engine.evaluate(
                fb.lo.expand(idx.numel(), -1),
                fb.hi.expand(idx.numel(), -1),
                C[idx],
                c0[idx],
                state.select(idx),
                splits.select(idx),
                {j: (lo[idx], hi[idx]) for j, (lo, hi) in pre.items()},
                Refinement(refine_after=len(engine.nodes)),
            )
        )
    lb = torch.cat(out).to(torch.float64).reshape(*node_pos.shape, 2, rows)
    # not raised to the domain's own bound per row: the margin does that (a child keeps every
    # bound of its parent), so a candidate with one unimproved child still ranks by the other
    margin = margins(fb, torch.nan_to_num(lb, nan=float("-inf")))
    return margin, node_pos, neuron, valid, keys


def fsb_choose(
    engine: BoundEngine, fb: FsbBatch, score: dict[int, torch.Tensor], k: int
) -> list[tuple[int, int] | None]:
    """Per domain the (relu node, neuron) of the best evaluated candidate, or None when none is
    free.  score: the BaBSR scores (B, size) per relu node, -inf where not splittable."""
    if not score:
        return []
    margin, node_pos, neuron, valid, keys = child_scores(engine, fb, score, k)
    ninf = torch.full_like(margin[..., 0], float("-inf"))
    better = torch.where(valid, margin.amax(2), ninf)
    total = torch.where(valid, margin.clamp(-1e30, 1e30).sum(2), ninf)
    best = better.amax(1, keepdim=True)
    tied = valid & (better >= best - TIE_REL * (1.0 + best.abs().nan_to_num(posinf=0.0)))
    pick = torch.where(tied, total, ninf).argmax(1)
    picks: list[tuple[int, int] | None] = []
    for b in range(margin.shape[0]):
        j = int(pick[b])
        if not bool(valid[b, j]):
            picks.append(None)
            continue
        picks.append((keys[int(node_pos[b, j])], int(neuron[b, j])))
    return picks

"""Filtered smart branching (FSB): rank a few BaBSR candidates by bounding their children.

The BaBSR score (bab/branching.py) estimates how much a split raises the lower bound from one
backward walk at the default slopes.  FSB keeps the k best candidates of each sub-domain under
that score and evaluates each one: both children (pre-activation >= 0 and <= 0) are bounded
by one CROWN walk at the parent's optimised alpha/beta and intermediate bounds, with the
candidate's split applied (its relaxation becomes exact).  Domains x candidates x 2 children
go through one ``BoundEngine.evaluate`` call (chunked for memory).  The candidate whose worse
child has the highest bound wins; ties go to the higher sum, then to the BaBSR order.

Only the choice of neuron depends on these bounds: the children are bounded afresh (soundly)
by the search, so nothing here needs to be sound or float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..bounds import AlphaState, BoundEngine, Refinement, Splits

Box = tuple[torch.Tensor, torch.Tensor]
TIE_REL = 1e-9  # worse-child bounds this close (relative) count as tied; the sum then decides
CHUNK_ELEMS = 10_000_000  # children x widest node per evaluate call (memory)


@dataclass
class FsbBatch:
    """What FSB needs of a batch of B open domains, for the one spec row each is branched on.

    lo, hi: (1, n_in) input box; C: (B, n_out) the row; c0: (B,) its offset; pre: node ->
    (lower, upper) each (B, size) after bounding; splits: relu node -> int8 (B, size);
    state: the optimised alphas/betas for that row, each (B, 1, size).
    """

    lo: torch.Tensor
    hi: torch.Tensor
    C: torch.Tensor
    c0: torch.Tensor
    pre: dict[int, Box]
    splits: dict[int, torch.Tensor]
    state: AlphaState


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
    fb: FsbBatch, keys: list[int], node_pos: torch.Tensor, neuron: torch.Tensor, sizes: list[int]
) -> tuple[Splits, dict[int, Box], AlphaState]:
    """Splits, bounds and state of the B*k*2 children, ordered (domain, candidate, sign)."""
    b, k = node_pos.shape
    rep = 2 * k
    signs = torch.tensor([1, -1], dtype=torch.int8).repeat(b * k)
    flat_pos, flat_neuron = (
        node_pos.reshape(-1).repeat_interleave(2),
        neuron.reshape(-1).repeat_interleave(2),
    )
    rows = torch.arange(b * rep)
    splits: dict[int, torch.Tensor] = {}
    betas = {r: v.repeat_interleave(rep, 0).clone() for r, v in fb.state.betas.items()}
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
    alphas = {r: v.repeat_interleave(rep, 0) for r, v in fb.state.alphas.items()}
    return Splits(splits), pre, AlphaState(alphas, betas)


def child_bounds(engine: BoundEngine, fb: FsbBatch, score: dict[int, torch.Tensor], k: int):
    """(children lower bounds (B, k, 2), node position (B, k), neuron (B, k), valid, keys)."""
    keys, node_pos, neuron, valid = _candidates(score, k)
    sizes = [score[r].shape[1] for r in keys]
    splits, pre, state = _children(fb, keys, node_pos, neuron, sizes)
    n, rep = node_pos.numel() * 2, node_pos.shape[1] * 2
    chunk = max(1, CHUNK_ELEMS // max(nd.size for nd in engine.nodes))
    C = fb.C.repeat_interleave(rep, 0)[:, None, :]
    c0 = fb.c0.repeat_interleave(rep, 0)[:, None]
    out = []
    for start in range(0, n, chunk):
        idx = torch.arange(start, min(start + chunk, n))
        lb = engine.evaluate(
            fb.lo.expand(idx.numel(), -1),
            fb.hi.expand(idx.numel(), -1),
            C[idx],
            c0[idx],
            state.select(idx),
            splits.select(idx),
            {j: (lo[idx], hi[idx]) for j, (lo, hi) in pre.items()},
            Refinement(refine_after=len(engine.nodes)),
        )
        out.append(lb[:, 0])
    lb = torch.cat(out).to(torch.float64).reshape(node_pos.shape[0], node_pos.shape[1], 2)
    # not raised to the domain's own bound: that would tie every candidate with one unimproved
    # child (measured: 3x the domains of BaBSR on mnist 256x4 prop_3_0.05)
    return torch.nan_to_num(lb, nan=float("-inf")), node_pos, neuron, valid, keys


def fsb_choose(
    engine: BoundEngine, fb: FsbBatch, score: dict[int, torch.Tensor], k: int
) -> list[tuple[int, int] | None]:
    """Per domain the (relu node, neuron) of the best evaluated candidate, or None when none is
    free.  score: the BaBSR scores (B, size) per relu node, -inf where not splittable."""
    if not score:
        return []
    lb, node_pos, neuron, valid, keys = child_bounds(engine, fb, score, k)
    worse = torch.where(valid, lb.amin(2), torch.full_like(lb[..., 0], float("-inf")))
    total = torch.where(valid, lb.clamp(max=1e30).sum(2), torch.full_like(worse, float("-inf")))
    best = worse.amax(1, keepdim=True)
    tied = valid & (worse >= best - TIE_REL * (1.0 + best.abs().nan_to_num(posinf=0.0)))
    pick = torch.where(tied, total, torch.full_like(total, float("-inf"))).argmax(1)
    picks: list[tuple[int, int] | None] = []
    for b in range(lb.shape[0]):
        j = int(pick[b])
        if not bool(valid[b, j]):
            picks.append(None)
            continue
        picks.append((keys[int(node_pos[b, j])], int(neuron[b, j])))
    return picks


def row_state(state: AlphaState | None, sel: torch.Tensor, pos: torch.Tensor) -> AlphaState:
    """The (B, 1, size) slices of a batch's (B_all, M, size) state: domains sel, rows pos (B,)."""
    if state is None:
        return AlphaState()
    return AlphaState(
        {r: v[sel, pos][:, None] for r, v in state.alphas.items()},
        {r: v[sel, pos][:, None] for r, v in state.betas.items()},
    )

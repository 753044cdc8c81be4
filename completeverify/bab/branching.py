"""Which ReLU to split: a BaBSR-style score and a simpler width x weight heuristic.

Both scores rank the unstable, unsplit ReLUs of each sub-domain by an estimate of how much
splitting them raises the lower bound.  The triangle relaxation of an unstable ReLU with input
bounds l < 0 < u has the upper line u/(u-l) (z - l), whose intercept -l u/(u-l) enters the
CROWN bound with the (negative part of the) backward coefficient of the ReLU's output; a split
removes it.  "babsr" takes that coefficient from a CROWN backward walk of the domain's most
promising spec row; "width" replaces it by the absolute outgoing weight (no backward walk).
"fsb" (bab/fsb.py) bounds the children of the best "babsr" candidates; "auto" picks per network
(``resolve``).
"""

from __future__ import annotations

import torch

from ..bounds.engine import BoundEngine
from ..config import ReluBranching
from ..graph import Graph, Linear

Box = tuple[torch.Tensor, torch.Tensor]
TIE_WEIGHT = 1e-4  # share of |coefficient| x intercept that breaks ties between zero-gain neurons


def resolve(branching: ReluBranching, graph: Graph) -> ReluBranching:
    """The branching rule a search uses: "auto" is "fsb" for networks without convolutions and
    "babsr" with them (measured, see BabConfig.branching); any other value is kept."""
    if branching != "auto":
        return branching
    return "babsr" if graph.has_convolutions() else "fsb"


def _outgoing_weight(engine: BoundEngine, r: int) -> torch.Tensor | float:
    """Sum of |W[:, i]| over the Linear layers reading Relu node r (1.0 when none does)."""
    total: torch.Tensor | float = 0.0
    for i, node in enumerate(engine.nodes):
        if r in node.inputs and isinstance(node.op, Linear):
            total = total + engine.params[i]["weight"].abs().sum(0)
    return total if isinstance(total, torch.Tensor) else 1.0


def scores(
    engine: BoundEngine,
    pre: dict[int, Box],
    splits: dict[int, torch.Tensor],
    rows: torch.Tensor,
    method: str,
) -> dict[int, torch.Tensor]:
    """Score (B, size) of each Relu neuron; -inf where it is stable or already split."""
    coeffs = engine.activation_coefficients(pre, rows) if method == "babsr" else {}
    out: dict[int, torch.Tensor] = {}
    for r in engine.relu_nodes:
        lo, hi = pre[engine.nodes[r].inputs[0]]
        free = (lo < 0) & (hi > 0)
        if r in splits:
            free = free & (splits[r] == 0)
        den = torch.where(free, hi - lo, torch.ones_like(hi))
        intercept = torch.where(free, -lo * hi / den, torch.zeros_like(hi))
        if method == "babsr":
            a = coeffs.get(r, torch.zeros_like(hi))
            s = (-a).clamp(min=0) * intercept + TIE_WEIGHT * a.abs() * intercept
        else:
            s = intercept * _outgoing_weight(engine, r)
        s = torch.nan_to_num(s, nan=0.0, posinf=0.0, neginf=0.0)
        out[r] = torch.where(free, s, torch.full_like(s, float("-inf")))
    return out


def choose(score: dict[int, torch.Tensor]) -> list[tuple[int, int] | None]:
    """Per domain the (relu node, neuron) with the best score, or None when none is free."""
    keys = list(score)
    if not keys:
        return []
    flat = torch.cat([score[k] for k in keys], 1)
    sizes = [score[k].shape[1] for k in keys]
    best = flat.argmax(1)
    top = flat.gather(1, best[:, None])[:, 0]
    picks: list[tuple[int, int] | None] = []
    for b in range(flat.shape[0]):
        if not float(top[b]) > float("-inf"):
            picks.append(None)
            continue
        j = int(best[b])
        for k, n in zip(keys, sizes):
            if j < n:
                picks.append((k, j))
                break
            j -= n
    return picks

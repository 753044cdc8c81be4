"""Root intermediate bounds for ReLU splitting, tightened by alpha-CROWN per prefix network."""

from __future__ import annotations

import logging
import time

import torch

from ..bounds import BoundConfig, BoundEngine
from ..bounds.mixed import MixedPrecision
from ..config import BabConfig
from ..graph import Graph

log = logging.getLogger(__name__)

Box = tuple[torch.Tensor, torch.Tensor]
ROOT_PRE_ELEMS = 4_000_000  # rows x (summed node sizes) per alpha-CROWN call (memory)


def optimise_root_pre(
    graph: Graph,
    lo: torch.Tensor,
    hi: torch.Tensor,
    pre: dict[int, Box],
    cfg: BabConfig,
    stop: float,
    after: int = -1,
) -> dict[int, Box]:
    """Root intermediate bounds tightened by alpha-CROWN, one prefix network per pre-activation
    node.

    Each unstable neuron of node j is bounded from below and above by alpha-CROWN on the
    network cut at j (a sound bound of that node's value), with the already tightened bounds
    of the nodes before j; the result is intersected with the given bounds, so never looser.
    lo, hi: the (1, n_in) input box; cfg.root_pre_iters: alpha-CROWN steps; stop:
    time.monotonic() deadline; nodes up to ``after`` are kept as given.  With
    cfg.float32_search the slopes are searched in float32 and the bounds computed in float64
    at the slopes found (``MixedPrecision``, as in the search: as sound as float64
    alpha-CROWN, only the tightness depends on the float32 search; 2-3x faster on the
    oval21 CNNs).
    """
    nodes = graph.nodes
    out = dict(pre)
    for j in sorted(out):
        if time.monotonic() >= stop:
            break
        if j <= after or not any(n.op.caps.activation for n in nodes[:j]):
            continue  # kept, or an affine function of the input: CROWN is already exact
        lo_j, hi_j = out[j]
        idx = ((lo_j < 0) & (hi_j > 0)).nonzero().flatten()
        if idx.numel() == 0:
            continue
        prefix = graph.with_nodes(nodes[: j + 1])
        bound_cfg = BoundConfig(alpha_iters=cfg.root_pre_iters, intermediate_crown=False)
        eng = BoundEngine(prefix, bound_cfg)
        mixed = None
        if cfg.float32_search:
            mixed = MixedPrecision(eng, BoundEngine(prefix, bound_cfg, dtype=torch.float32))
        sub_pre = {i: (b[0][None], b[1][None]) for i, b in out.items() if i < j}
        chunk = max(1, ROOT_PRE_ELEMS // (2 * sum(n.size for n in nodes[: j + 1])))
        new_lo, new_hi = lo_j.clone(), hi_j.clone()
        for start in range(0, idx.numel(), chunk):
            sel = idx[start : start + chunk]
            c = sel.numel()
            rows = torch.zeros(2 * c, nodes[j].size, dtype=torch.float64)
            rows[torch.arange(c), sel] = 1.0
            rows[torch.arange(c) + c, sel] = -1.0
            if mixed is not None:
                res = mixed.compute(lo, hi, rows, pre=sub_pre, deadline=stop)
            else:
                res = eng.compute(lo, hi, rows, method="alpha-crown", pre=sub_pre, deadline=stop)
            cand_lo, cand_hi = res.lb[0, :c], -res.lb[0, c:]
            new_lo[sel] = torch.where(
                torch.isfinite(cand_lo), torch.maximum(lo_j[sel], cand_lo), lo_j[sel]
            )
            new_hi[sel] = torch.where(
                torch.isfinite(cand_hi), torch.minimum(hi_j[sel], cand_hi), hi_j[sel]
            )
        log.debug(
            "relu_split: root node %d: %d -> %d unstable",
            j,
            idx.numel(),
            int(((new_lo < 0) & (new_hi > 0)).sum()),
        )
        out[j] = (new_lo, new_hi)
    return out

"""Forward symbolic bounds (linear in the input) for chains of Linear/Scale/Reshape/ReLU ops.

Each node value v is enclosed by  Lw x + Lb <= v <= Uw x + Ub  for x in the box,
with coefficient tensors of shape (B, size, n_in).  Cost per layer is
O(B * out * in * n_in), much less than backward CROWN per intermediate layer
(O(B * out * in * width)) when the input dimension is small, which is exactly
the input-splitting regime (ACAS Xu: 5 inputs).  The results are used as
intermediate (pre-activation) bounds; the final bound stays backward CROWN.

Float safety: computed in float64; every concretised bound is widened outward
by rel * (|value| + sum |coeff| |x| + |const|) + abs, as in the rest of bounds/.
"""

from __future__ import annotations

import torch

from ..graph import Graph, Input, Linear, Relu, Reshape, Scale

SUPPORTED = (Input, Linear, Relu, Reshape, Scale)


def supports(graph: Graph) -> bool:
    """True for single-input chains built only from the supported ops."""
    return all(isinstance(n.op, SUPPORTED) and len(n.inputs) <= 1 for n in graph.nodes)


def _concretize(w: torch.Tensor, b: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, lower: bool,
                rel: float, abs_: float) -> torch.Tensor:
    """min (lower=True) or max of w x + b over the box, widened outward. w: (B, n, d)."""
    mid = ((lo + hi) / 2).unsqueeze(2)
    rad = ((hi - lo) / 2).unsqueeze(2)
    center = torch.bmm(w, mid).squeeze(2) + b
    spread = torch.bmm(w.abs(), rad).squeeze(2)
    mag = torch.bmm(w.abs(), torch.maximum(lo.abs(), hi.abs()).unsqueeze(2)).squeeze(2) + b.abs()
    pad = rel * (mag + center.abs()) + abs_
    return center - spread - pad if lower else center + spread + pad


def forward_pre_bounds(graph: Graph, lo: torch.Tensor, hi: torch.Tensor, rel: float = 1e-9,
                       abs_: float = 1e-12) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Bounds (B, size) of every node feeding a Relu, for a batch of boxes lo, hi (B, n_in)."""
    B, n = lo.shape
    params = graph.params(torch.float64)
    eye = torch.eye(n, dtype=torch.float64).expand(B, n, n)
    zero = torch.zeros(B, n, dtype=torch.float64)
    sym: list = [(eye, zero, eye, zero)]
    box: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    feeds_relu = {node.inputs[0] for node in graph.nodes if isinstance(node.op, Relu)}
    for i, node in enumerate(graph.nodes[1:], start=1):
        op, p = node.op, params[i]
        lw, lb, uw, ub = sym[node.inputs[0]]
        if isinstance(op, Reshape):
            sym.append((lw, lb, uw, ub))
        elif isinstance(op, Linear):
            wp, wn = p["weight"].clamp(min=0), p["weight"].clamp(max=0)
            nlw = torch.matmul(wp, lw) + torch.matmul(wn, uw)
            nuw = torch.matmul(wp, uw) + torch.matmul(wn, lw)
            nlb = lb @ wp.T + ub @ wn.T + p["bias"]
            nub = ub @ wp.T + lb @ wn.T + p["bias"]
            sym.append((nlw, nlb, nuw, nub))
        elif isinstance(op, Scale):
            m, a = p["mul"], p["add"]
            pos = (m >= 0)[None, :]
            nlw = torch.where(pos[..., None], lw * m[None, :, None], uw * m[None, :, None])
            nuw = torch.where(pos[..., None], uw * m[None, :, None], lw * m[None, :, None])
            nlb = torch.where(pos, lb * m, ub * m) + a
            nub = torch.where(pos, ub * m, lb * m) + a
            sym.append((nlw, nlb, nuw, nub))
        elif isinstance(op, Relu):
            j = node.inputs[0]
            l, u = box[j]
            active = l >= 0
            inactive = u <= 0
            unstable = ~(active | inactive)
            denom = torch.where(unstable, u - l, torch.ones_like(u))
            up_slope = torch.where(unstable, u / denom, active.to(u.dtype))
            up_shift = torch.where(unstable, -up_slope * l, torch.zeros_like(u))
            low_slope = torch.where(unstable, (u > -l).to(u.dtype), active.to(u.dtype))
            nuw = uw * up_slope[..., None]
            nub = ub * up_slope + up_shift
            nlw = lw * low_slope[..., None]
            nlb = lb * low_slope
            sym.append((nlw, nlb, nuw, nub))
        else:  # pragma: no cover - guarded by supports()
            raise TypeError(f"forward bounds do not support {type(op).__name__}")
        if i in feeds_relu:
            nlw, nlb, nuw, nub = sym[i]
            l_i = _concretize(nlw, nlb, lo, hi, True, rel, abs_)
            u_i = _concretize(nuw, nub, lo, hi, False, rel, abs_)
            l_i = torch.where(torch.isnan(l_i), torch.full_like(l_i, -torch.inf), l_i)
            u_i = torch.where(torch.isnan(u_i), torch.full_like(u_i, torch.inf), u_i)
            box[i] = (l_i, u_i)
    return box

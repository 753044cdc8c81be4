"""Forward symbolic bounds (linear in the input) for chains of Linear/Scale/Reshape/ReLU ops.

Each node value v is enclosed by  Lw x + Lb <= v <= Uw x + Ub  for x in the box,
with coefficient tensors of shape (B, size, n_in).  Cost per layer is
O(B * out * in * n_in), much less than backward CROWN per intermediate layer
(O(B * out * in * width)) when the input dimension is small, which is exactly
the input-splitting regime (ACAS Xu: 5 inputs).  The results are used as
intermediate (pre-activation) bounds; the final bound stays backward CROWN.

One step per op type in the table ``FORWARD``; ops without one are ``NOT_SUPPORTED`` and a graph
using them is not ``supports``-ed (the caller falls back to the bound engine).

Float safety: computed in float64.  Each node also carries err (B, size), a bound on how far
its computed symbolic bounds may lie from the exact ones at any x of the box (products of large
terms that cancel can lose far more than a margin relative to the result): the enclosure used
is Lw x + Lb - err <= v <= Uw x + Ub + err (the table ``FORWARD_ERROR``).  Every concretised
bound is then widened outward by rel * (|value| + sum |coeff| |x| + |const|) + abs
(``backward.concretize``, as in the rest of bounds/).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..graph import (
    NOT_SUPPORTED,
    Add,
    Concat,
    Conv,
    Gather,
    Graph,
    LeakyRelu,
    Linear,
    MaxPool,
    NotSupported,
    Relu,
    Reshape,
    Scale,
    Sigmoid,
    Tanh,
)
from .backward import concretize
from .rounding import gamma_for

Box = tuple[torch.Tensor, torch.Tensor]
# (Lw (B, size, n_in), Lb (B, size), Uw (B, size, n_in), Ub (B, size))
Sym = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
# (op, params, symbolic bounds of the input, concrete bounds (B, size) of the input) -> output's
ForwardStep = Callable[[Any, dict, Sym, Box], Sym]


def _fw_reshape(op: Reshape, p: dict, s: Sym, box: Box) -> Sym:
    """Identity on the flat view."""
    return s


def _fw_linear(op: Linear, p: dict, s: Sym, box: Box) -> Sym:
    """W split by sign: lower from (W+ L, W- U), upper from (W+ U, W- L)."""
    lw, lb, uw, ub = s
    wp, wn = p["weight"].clamp(min=0), p["weight"].clamp(max=0)
    nlw = torch.matmul(wp, lw) + torch.matmul(wn, uw)
    nuw = torch.matmul(wp, uw) + torch.matmul(wn, lw)
    nlb = lb @ wp.T + ub @ wn.T + p["bias"]
    nub = ub @ wp.T + lb @ wn.T + p["bias"]
    return nlw, nlb, nuw, nub


def _fw_scale(op: Scale, p: dict, s: Sym, box: Box) -> Sym:
    """Elementwise: negative multipliers swap lower and upper."""
    lw, lb, uw, ub = s
    m, a = p["mul"], p["add"]
    pos = (m >= 0)[None, :]
    nlw = torch.where(pos[..., None], lw * m[None, :, None], uw * m[None, :, None])
    nuw = torch.where(pos[..., None], uw * m[None, :, None], lw * m[None, :, None])
    nlb = torch.where(pos, lb * m, ub * m) + a
    nub = torch.where(pos, ub * m, lb * m) + a
    return nlw, nlb, nuw, nub


def _fw_relu(op: Relu, p: dict, s: Sym, box: Box) -> Sym:
    """Chord above, adaptive slope (0 or 1) below; stable neurons exact."""
    lw, lb, uw, ub = s
    l, u = box
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
    return nlw, nlb, nuw, nub


def _fw_leaky_relu(op: LeakyRelu, p: dict, s: Sym, box: Box) -> Sym:
    """As ReLU with negative-side slope alpha (0 <= alpha <= 1): chord above, 1 or alpha below."""
    lw, lb, uw, ub = s
    l, u = box
    a = op.alpha
    active = l >= 0
    inactive = u <= 0
    unstable = ~(active | inactive)
    one = torch.ones_like(u)
    stable_slope = torch.where(active, one, one * a)
    denom = torch.where(unstable, u - l, one)
    up_slope = torch.where(unstable, (u - a * l) / denom, stable_slope)
    up_shift = torch.where(unstable, l * (a - up_slope), torch.zeros_like(u))
    low_slope = torch.where(unstable, torch.where(u > -l, one, one * a), stable_slope)
    return (
        lw * low_slope[..., None],
        lb * low_slope,
        uw * up_slope[..., None],
        ub * up_slope + up_shift,
    )


# op type -> forward step, or NOT_SUPPORTED (Input starts the walk and has no row)
FORWARD: dict[type, ForwardStep | NotSupported] = {
    Linear: _fw_linear,
    Reshape: _fw_reshape,
    Scale: _fw_scale,
    Relu: _fw_relu,
    LeakyRelu: _fw_leaky_relu,
    Conv: NOT_SUPPORTED,
    Gather: NOT_SUPPORTED,
    Add: NOT_SUPPORTED,
    Concat: NOT_SUPPORTED,
    Sigmoid: NOT_SUPPORTED,
    Tanh: NOT_SUPPORTED,
    MaxPool: NOT_SUPPORTED,
}


def _sym_mag(s: Sym, m_x: torch.Tensor) -> torch.Tensor:
    """|Lw| m + |Lb| + |Uw| m + |Ub| (B, size): what a product with these bounds sums over."""
    lw, lb, uw, ub = s
    return (
        (lw.abs() @ m_x.unsqueeze(2)).squeeze(2)
        + lb.abs()
        + (uw.abs() @ m_x.unsqueeze(2)).squeeze(2)
        + ub.abs()
    )


# The rounding of each forward step (see the module's float-safety note).  Each gets the op, its
# params, its input's computed symbolic bounds s, concrete box and err, the magnitude
# |Lw| m + |Lb| + |Uw| m + |Ub| of s (m >= |x|), and gamma; it returns the output's err.  The
# exact bounds of the input lie within err of the computed ones, so an affine op with matrix W
# moves them by at most |W| err, and its own products and sums round by at most
# gamma (|W| mag + |b|).  A ReLU step multiplies by slopes in [0, 1] and adds a chord whose
# rounding is within gamma * 2 max(|l|, |u|).
ErrorStep = Callable[[Any, dict, Box, torch.Tensor, torch.Tensor, float], torch.Tensor]


def _err_linear(op: Linear, p: dict, box: Box, err: Tensor, mag: Tensor, gamma: float) -> Tensor:
    """|W| err + gamma (|W| mag + |b|)."""
    w = p["weight"].abs()
    return err @ w.T + gamma * (mag @ w.T + p["bias"].abs())


def _err_scale(op: Scale, p: dict, box: Box, err: Tensor, mag: Tensor, gamma: float) -> Tensor:
    """|mul| err + gamma (|mul| mag + |add|)."""
    m = p["mul"].abs()
    return err * m + gamma * (mag * m + p["add"].abs())


def _err_relu(
    op: Relu | LeakyRelu, p: dict, box: Box, err: Tensor, mag: Tensor, gamma: float
) -> Tensor:
    """err (slopes in [0, 1]) + gamma (mag + 2 max(|l|, |u|))."""
    return err + gamma * (mag + 2 * box[0].abs().maximum(box[1].abs()))


def _err_reshape(op: Reshape, p: dict, box: Box, err: Tensor, mag: Tensor, gamma: float) -> Tensor:
    """err: no arithmetic."""
    return err


FORWARD_ERROR: dict[type, ErrorStep] = {
    Linear: _err_linear,
    Reshape: _err_reshape,
    Scale: _err_scale,
    Relu: _err_relu,
    LeakyRelu: _err_relu,
}


def supports(graph: Graph) -> bool:
    """True for single-input chains built only from ops with a FORWARD step."""
    return all(
        len(n.inputs) <= 1 and callable(FORWARD.get(type(n.op), NOT_SUPPORTED))
        for n in graph.nodes[1:]
    )


def forward_pre_bounds(
    graph: Graph, lo: torch.Tensor, hi: torch.Tensor, rel: float = 1e-9, abs_: float = 1e-12
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Bounds (B, size) of every node feeding an activation, for boxes lo, hi (B, n_in)."""
    B, n = lo.shape
    params = graph.params(torch.float64)
    eye = torch.eye(n, dtype=torch.float64).expand(B, n, n)
    zero = torch.zeros(B, n, dtype=torch.float64)
    sym: list[Sym] = [(eye, zero, eye, zero)]
    errs: list[torch.Tensor] = [zero]
    m_x = lo.abs().maximum(hi.abs())
    longest = max([n] + [node.size for node in graph.nodes])
    gamma = gamma_for(longest, torch.float64)
    box: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    feeds = {node.inputs[0] for node in graph.nodes if node.op.caps.activation}
    for i, node in enumerate(graph.nodes[1:], start=1):
        step = FORWARD.get(type(node.op), NOT_SUPPORTED)
        if isinstance(step, NotSupported):  # pragma: no cover - guarded by supports()
            raise TypeError(f"forward bounds do not support {type(node.op).__name__}")
        j = node.inputs[0]
        in_box = box.get(j, (lo, hi))
        sym.append(step(node.op, params[i], sym[j], in_box))
        errs.append(
            FORWARD_ERROR[type(node.op)](
                node.op, params[i], in_box, errs[j], _sym_mag(sym[j], m_x), gamma
            )
        )
        if i in feeds:
            nlw, nlb, nuw, nub = sym[i]
            err = torch.nan_to_num(errs[i], nan=float("inf"))
            l_i, _ = concretize(nlw, nlb - err, lo, hi, rel, abs_, want_x=False)
            u_i, _ = concretize(-nuw, -nub - err, lo, hi, rel, abs_, want_x=False)
            box[i] = (l_i, -u_i)
    return box

"""Local backward steps of the affine ops for CROWN, and the input-box concretisation.

A backward step maps a coefficient matrix A (B, M, n_out) on a node's value to one
coefficient matrix per input (B, M, n_in_k) plus a bias (B, M) or None, such that
``A @ y == sum_k A_k @ x_k + bias`` exactly (up to rounding).
"""

from __future__ import annotations

from typing import Callable, Literal, cast, overload

import torch
import torch.nn.functional as F

from ..graph import Add, Concat, Conv, Gather, Linear, Node, Reshape, Scale

Step = tuple[list[torch.Tensor], "torch.Tensor | None"]


def _bw_linear(node: Node, in_nodes: list[Node], p: dict, a: torch.Tensor) -> Step:
    """A @ W and A @ b."""
    return [a @ p["weight"]], a @ p["bias"]


def _bw_conv(node: Node, in_nodes: list[Node], p: dict, a: torch.Tensor) -> Step:
    """Transposed convolution of A reshaped to (B*M, C_out, Ho, Wo), cropped to the unpadded
    input."""
    op = cast(Conv, node.op)
    b, m, _ = a.shape
    c_out = p["weight"].shape[0]
    c_in, h, w = op.in_chw
    t, l_, bt, r = op.padding
    kh, kw = p["weight"].shape[2:]
    wo = int(node.shape[-1])
    ho = node.size // c_out // wo
    a4 = a.reshape(b * m, c_out, ho, wo)
    hp, wp = h + t + bt, w + l_ + r
    base_h = (ho - 1) * op.stride[0] + op.dilation[0] * (kh - 1) + 1
    base_w = (wo - 1) * op.stride[1] + op.dilation[1] * (kw - 1) + 1
    x = F.conv_transpose2d(
        a4, p["weight"], None, op.stride, 0, (hp - base_h, wp - base_w), op.groups, op.dilation
    )
    x = x[:, :, t : t + h, l_ : l_ + w]
    bias = a.reshape(b, m, c_out, ho * wo).sum(-1) @ p["bias"]
    return [x.reshape(b, m, c_in * h * w)], bias


def _bw_scale(node: Node, in_nodes: list[Node], p: dict, a: torch.Tensor) -> Step:
    """Elementwise: A * mul and A @ add."""
    return [a * p["mul"]], a @ p["add"]


def _bw_gather(node: Node, in_nodes: list[Node], p: dict, a: torch.Tensor) -> Step:
    """Scatter-add A (masked) back onto the gathered input positions."""
    b, m, n_out = a.shape
    out = a.new_zeros(b, m, in_nodes[0].size)
    out.index_add_(2, p["index"], a * p["mask"])
    return [out], None


def _bw_reshape(node: Node, in_nodes: list[Node], p: dict, a: torch.Tensor) -> Step:
    """Identity on the flat view."""
    return [a], None


def _bw_add(node: Node, in_nodes: list[Node], p: dict, a: torch.Tensor) -> Step:
    """A flows unchanged to every summand."""
    return [a for _ in in_nodes], None


def _bw_concat(node: Node, in_nodes: list[Node], p: dict, a: torch.Tensor) -> Step:
    """Split A along its last axis."""
    return list(torch.split(a, [n.size for n in in_nodes], dim=2)), None


BACKWARD: dict[type, Callable[[Node, list[Node], dict, torch.Tensor], Step]] = {
    Linear: _bw_linear,
    Conv: _bw_conv,
    Scale: _bw_scale,
    Gather: _bw_gather,
    Reshape: _bw_reshape,
    Add: _bw_add,
    Concat: _bw_concat,
}


@overload
def concretize(
    a: torch.Tensor,
    bias: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    rel: float,
    abs_: float,
    want_x: Literal[True] = ...,
) -> tuple[torch.Tensor, torch.Tensor]: ...
@overload
def concretize(
    a: torch.Tensor,
    bias: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    rel: float,
    abs_: float,
    want_x: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]: ...
def concretize(
    a: torch.Tensor,
    bias: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    rel: float,
    abs_: float,
    want_x: bool = True,
) -> tuple[torch.Tensor, "torch.Tensor | None"]:
    """Lower bound min over the box of A x + bias, widened for rounding, and its minimiser.

    a: (B, M, n); bias: (B, M); lo/hi: (B, n).  Returns lb (B, M) = A+ lo + A- hi + bias
    - rel * (|lb| + |A| max(|lo|, |hi|) + |bias|) - abs, and x (B, M, n) when want_x.
    NaN bounds become -inf.
    """
    mid = ((lo + hi) / 2).unsqueeze(2)
    rad = ((hi - lo) / 2).unsqueeze(2)
    absa = a.abs()
    val = (a @ mid).squeeze(2) - (absa @ rad).squeeze(2) + bias
    mag = (absa @ (mid.abs() + rad)).squeeze(2) + bias.abs()
    lb = val - rel * (val.abs() + mag) - abs_
    lb = torch.where(torch.isnan(lb), torch.full_like(lb, float("-inf")), lb)
    if not want_x:
        return lb, None
    x = torch.where(a >= 0, lo.unsqueeze(1), hi.unsqueeze(1))
    return lb, x

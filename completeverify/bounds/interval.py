"""Interval bound propagation (IBP): one function per op, on flat (B, size) float64 bounds.

Arithmetic ops widen their result by rel * magnitude + abs to cover float64 rounding.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..graph import (
    Add,
    Concat,
    Conv,
    Gather,
    LeakyRelu,
    Linear,
    MaxPool,
    Relu,
    Reshape,
    Scale,
    Sigmoid,
    Tanh,
)

Box = tuple[torch.Tensor, torch.Tensor]


def widen(lo: torch.Tensor, hi: torch.Tensor, mag: torch.Tensor, rel: float, abs_: float) -> Box:
    """Lower lo and raise hi by rel * mag + abs_."""
    pad = rel * mag + abs_
    return lo - pad, hi + pad


def _mid_rad(box: Box) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre and radius of a box."""
    lo, hi = box
    return (lo + hi) / 2, (hi - lo) / 2


def _ibp_linear(op: Linear, p: dict, aux: dict, ins: list[Box], rel: float, abs_: float) -> Box:
    """y = W x + b by centre/radius."""
    mid, rad = _mid_rad(ins[0])
    c = mid @ p["weight"].T + p["bias"]
    r = rad @ aux["abs_weight"].T
    return widen(c - r, c + r, _mag_linear(op, p, aux, [mid.abs() + rad]), rel, abs_)


def _conv_nobias(op: Conv, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Convolution without bias on flat (B, n_in) -> flat (B, n_out)."""
    xs = op.pad_input(x.reshape(x.shape[0], *op.in_chw))
    y = F.conv2d(xs, weight, None, op.stride, op.torch_padding(), op.dilation, op.groups)
    return y.reshape(x.shape[0], -1)


def _ibp_conv(op: Conv, p: dict, aux: dict, ins: list[Box], rel: float, abs_: float) -> Box:
    """Convolution by centre/radius."""
    mid, rad = _mid_rad(ins[0])
    c = _conv_nobias(op, p["weight"], mid)
    n_per = c.shape[1] // p["bias"].shape[0]
    bias = p["bias"].repeat_interleave(n_per)
    c = c + bias
    r = _conv_nobias(op, aux["abs_weight"], rad)
    return widen(c - r, c + r, _mag_conv(op, p, aux, [mid.abs() + rad]), rel, abs_)


def _ibp_scale(op: Scale, p: dict, aux: dict, ins: list[Box], rel: float, abs_: float) -> Box:
    """y = x * mul + add."""
    mid, rad = _mid_rad(ins[0])
    c = mid * p["mul"] + p["add"]
    r = rad * p["mul"].abs()
    return widen(c - r, c + r, _mag_scale(op, p, aux, [mid.abs() + rad]), rel, abs_)


def _ibp_gather(op: Gather, p: dict, aux: dict, ins: list[Box], rel: float, abs_: float) -> Box:
    """Exact index selection (padding entries are exactly 0)."""
    lo, hi = ins[0]
    return lo[:, p["index"]] * p["mask"], hi[:, p["index"]] * p["mask"]


def _ibp_reshape(op: Reshape, p: dict, aux: dict, ins: list[Box], rel: float, abs_: float) -> Box:
    """Identity on the flat view."""
    return ins[0]


def _ibp_add(op: Add, p: dict, aux: dict, ins: list[Box], rel: float, abs_: float) -> Box:
    """Sum of the inputs' bounds."""
    lo = sum(b[0] for b in ins[1:]) + ins[0][0]
    hi = sum(b[1] for b in ins[1:]) + ins[0][1]
    mags = [b[0].abs().maximum(b[1].abs()) for b in ins]
    return widen(lo, hi, _mag_add(op, p, aux, mags), rel, abs_)


def _ibp_concat(op: Concat, p: dict, aux: dict, ins: list[Box], rel: float, abs_: float) -> Box:
    """Concatenated bounds."""
    return torch.cat([b[0] for b in ins], 1), torch.cat([b[1] for b in ins], 1)


def _ibp_relu(op: Relu, p: dict, aux: dict, ins: list[Box], rel: float, abs_: float) -> Box:
    """Monotone: relu(l), relu(u)."""
    return ins[0][0].clamp(min=0), ins[0][1].clamp(min=0)


def _ibp_leaky_relu(
    op: LeakyRelu, p: dict, aux: dict, ins: list[Box], rel: float, abs_: float
) -> Box:
    """Monotone (0 <= alpha <= 1): f(l), f(u), widened for the rounding of alpha * x."""
    lo, hi = ins[0]
    flo = torch.where(lo >= 0, lo, lo * op.alpha)
    fhi = torch.where(hi >= 0, hi, hi * op.alpha)
    return widen(flo, fhi, flo.abs().maximum(fhi.abs()), rel, abs_)


def _ibp_sigmoid(op: Sigmoid, p: dict, aux: dict, ins: list[Box], rel: float, abs_: float) -> Box:
    """Monotone, widened by a tiny margin for the library's rounding."""
    lo, hi = torch.sigmoid(ins[0][0]), torch.sigmoid(ins[0][1])
    return (lo - 1e-15).clamp(min=0), (hi + 1e-15).clamp(max=1)


def _ibp_tanh(op: Tanh, p: dict, aux: dict, ins: list[Box], rel: float, abs_: float) -> Box:
    """Monotone, widened by a tiny margin for the library's rounding."""
    lo, hi = torch.tanh(ins[0][0]), torch.tanh(ins[0][1])
    return (lo - 1e-15).clamp(min=-1), (hi + 1e-15).clamp(max=1)


def _ibp_maxpool(op: MaxPool, p: dict, aux: dict, ins: list[Box], rel: float, abs_: float) -> Box:
    """Max of the window's bounds (exact, no arithmetic)."""
    lo, hi = ins[0]
    w = p["windows"]
    return lo[:, w].amax(dim=2), hi[:, w].amax(dim=2)


IBP: dict[type, Callable[..., Box]] = {
    Linear: _ibp_linear,
    Conv: _ibp_conv,
    Scale: _ibp_scale,
    Gather: _ibp_gather,
    Reshape: _ibp_reshape,
    Add: _ibp_add,
    Concat: _ibp_concat,
    Relu: _ibp_relu,
    LeakyRelu: _ibp_leaky_relu,
    Sigmoid: _ibp_sigmoid,
    Tanh: _ibp_tanh,
    MaxPool: _ibp_maxpool,
}


# ---------------------------------------------------------------- rounding magnitudes
# MAGNITUDE[type(op)](op, p, aux, in_mags) -> (B, size): for each output neuron k of an affine
# op y = f(x_1, ...), an upper bound on sum_j |coefficient_kj| |x_j| + |constant_k| (and so on
# |y_k|), given in_mags, bounds (B, n_in) on |x| per input.  IBP widens its boxes by rel times
# it; a backward step that multiplies a coefficient matrix A by the op rounds by at most
# gamma * |A| @ MAGNITUDE (rounding.py).


def _mag_linear(op: Linear, p: dict, aux: dict, mags: list[torch.Tensor]) -> torch.Tensor:
    """|W| m + |b|."""
    return mags[0] @ aux["abs_weight"].T + p["bias"].abs()


def _mag_conv(op: Conv, p: dict, aux: dict, mags: list[torch.Tensor]) -> torch.Tensor:
    """|W| * m + |b| (the convolution of the magnitudes with the absolute kernel)."""
    y = _conv_nobias(op, aux["abs_weight"], mags[0])
    return y + p["bias"].abs().repeat_interleave(y.shape[1] // p["bias"].shape[0])


def _mag_scale(op: Scale, p: dict, aux: dict, mags: list[torch.Tensor]) -> torch.Tensor:
    """|mul| m + |add|."""
    return mags[0] * p["mul"].abs() + p["add"].abs()


def _mag_gather(op: Gather, p: dict, aux: dict, mags: list[torch.Tensor]) -> torch.Tensor:
    """The gathered magnitudes (padding entries 0)."""
    return mags[0][:, p["index"]] * p["mask"]


def _mag_reshape(op: Reshape, p: dict, aux: dict, mags: list[torch.Tensor]) -> torch.Tensor:
    """The input's magnitudes."""
    return mags[0]


def _mag_add(op: Add, p: dict, aux: dict, mags: list[torch.Tensor]) -> torch.Tensor:
    """The sum of the summands' magnitudes."""
    return sum(mags[1:], mags[0])


def _mag_concat(op: Concat, p: dict, aux: dict, mags: list[torch.Tensor]) -> torch.Tensor:
    """The inputs' magnitudes, concatenated."""
    return torch.cat(mags, 1)


MAGNITUDE: dict[type, Callable[..., torch.Tensor]] = {
    Linear: _mag_linear,
    Conv: _mag_conv,
    Scale: _mag_scale,
    Gather: _mag_gather,
    Reshape: _mag_reshape,
    Add: _mag_add,
    Concat: _mag_concat,
}

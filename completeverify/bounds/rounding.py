"""How a bound computation bounds its own float rounding (sound float64 engines only).

A backward walk computes A_in = A @ W, a bias A @ b and the relaxations' products in floating
point.  For a dot product of n terms in any order, |fl(sum) - sum| <= n u sum |terms| (u the
unit roundoff), so the rounding of one step, as an error in the linear bound, is at most
gamma * |A| @ magnitude for gamma >= 2 (n + 8) u with n the longest sum of the graph: the
magnitudes of the terms, which cancellation inside the walk cannot shrink (interval.MAGNITUDE
for affine ops, ``Relaxation.magnitude`` for activations).  The walk adds these up
(``RoundingError``) and lowers its bias by them; the concretisation's own margin is relative
to the final coefficients only and does not cover them.  forward.py bounds its symbolic steps
with the same gamma.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from ..errors import InternalError
from ..graph import Node


def gamma_for(longest: int, dtype: torch.dtype) -> float:
    """2 (n + 8) u for sums of at most n terms in dtype (the 8: a step's elementwise products,
    and the rounding of the error bound itself)."""
    return 2.0 * (longest + 8) * torch.finfo(dtype).eps / 2


def finite_mag(m: torch.Tensor) -> torch.Tensor:
    """A rounding magnitude with NaN / inf replaced by a huge finite number (so that a zero
    coefficient times it stays 0, and any other makes the bound useless, never wrong)."""
    huge = torch.finfo(m.dtype).max / 2**32
    return torch.nan_to_num(m, nan=huge, posinf=huge).clamp(max=huge)


def covered_activations(nodes: Sequence[Node]) -> dict[int, int]:
    """Activation -> its one reader, where that reader is affine: the reader's step magnitude
    then covers the activation's step as well (|A_act| = |A W| <= |A| |W|), one sum less a
    step of the walk."""
    readers: dict[int, list[int]] = {}
    for i, node in enumerate(nodes):
        for j in node.inputs:
            readers.setdefault(j, []).append(i)
    return {
        i: readers[i][0]
        for i, n in enumerate(nodes)
        if n.op.caps.activation
        and len(readers.get(i, [])) == 1
        and nodes[readers[i][0]].op.caps.affine
    }


@dataclass
class Rounding:
    """What one backward walk needs to bound its own float rounding (module docstring).

    The step through node i rounds by at most gamma * |A| @ step[i].  An activation read only
    by one affine node is covered by that node's step (its step[] adds the activation's
    magnitude to the input's, ``covered_activations``).  Terms added onto a node's
    coefficients (split multipliers, cuts) add gamma * |terms| @ box[node].

    gamma: the factor; step: node -> (B, size) bound on |coefficient| |input| + |constant|
    per output neuron of the node's step (interval.MAGNITUDE for affine ops, the relaxation's
    ``magnitude`` for activations); box: node -> (B, size) bound on |value| (its box).
    """

    gamma: float
    step: dict[int, torch.Tensor] = field(default_factory=dict)
    box: dict[int, torch.Tensor] = field(default_factory=dict)


class RoundingError:
    """The running bound on one walk's rounding error (``Rounding``); inert without one."""

    def __init__(self, rounding: Rounding | None, bias: torch.Tensor) -> None:
        """Start at gamma |bias| (the caller's constant, added to in float)."""
        self.r = rounding
        self.total: torch.Tensor | None = None
        if rounding is not None:
            with torch.no_grad():
                self.total = bias.detach().abs()

    def _plus(self, t: torch.Tensor) -> None:
        assert self.total is not None
        self.total = self.total + t

    def add(self, a: torch.Tensor, node: int, step: bool = False) -> None:
        """|A| @ m for coefficients A (B, M, size) on node: its step magnitudes (step=True, when
        the walk is about to multiply A through the node; nothing for the input node) or its
        box magnitudes (coefficients added onto the node's)."""
        if self.r is None or node == 0 and step:
            return
        mag = (self.r.step if step else self.r.box).get(node)
        if mag is None:
            raise InternalError(f"no rounding magnitude for node {node}")
        with torch.no_grad():
            self._plus((a.detach().abs() @ mag.unsqueeze(2)).squeeze(2))

    def add_indicators(self, q: torch.Tensor) -> None:
        """Coefficients on ReLU indicators in [0, 1] (cutting planes)."""
        if self.r is not None:
            with torch.no_grad():
                self._plus(2 * q.detach().abs().sum(-1))

    def lowered(self, bias: torch.Tensor) -> torch.Tensor:
        """bias - gamma * total (NaN becomes -inf, so it proves nothing)."""
        if self.r is None or self.total is None:
            return bias
        low = bias - self.r.gamma * self.total
        return torch.where(torch.isnan(low), torch.full_like(low, float("-inf")), low)

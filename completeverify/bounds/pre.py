"""Intermediate (pre-activation) bounds as the later stages receive them.

The bound engine keeps batched torch boxes ``{node: (lower (B, size), upper (B, size))}``;
the MILP encoder, LP tightening and the exact leaves take one domain's bounds as flat float64
numpy arrays.  ``PreBounds`` names that join and ``pre_to_numpy`` is the one conversion.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch

PreBounds = dict[int, tuple[np.ndarray, np.ndarray]]
"""node index -> (lower (size,), upper (size,)) float64: sound bounds of one domain."""

TorchPreBounds = Mapping[int, tuple[torch.Tensor, torch.Tensor]]
"""node index -> (lower (B, size), upper (B, size)): a batch of domains' bounds."""


def pre_to_numpy(pre: TorchPreBounds, index: int | None = 0) -> PreBounds:
    """Domain ``index`` of batched bounds as numpy arrays (None: the tensors are unbatched).

    Float64 host tensors share memory with the arrays (no copy, as on the hot paths before);
    others (the differentiable float32 mode, a GPU device) are detached, converted and copied.
    """

    def one(t: torch.Tensor) -> np.ndarray:
        """One bound tensor as a float64 array."""
        t = t if index is None else t[index]
        return t.detach().to("cpu", torch.float64).numpy()

    return {k: (one(lo), one(hi)) for k, (lo, hi) in pre.items()}


def pre_from_numpy(pre: PreBounds | None) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """One domain's numpy bounds as flat float64 tensors ({} for None): pre_to_numpy reversed."""
    return {
        int(j): (
            torch.as_tensor(np.asarray(lo, dtype=np.float64).reshape(-1)),
            torch.as_tensor(np.asarray(hi, dtype=np.float64).reshape(-1)),
        )
        for j, (lo, hi) in (pre or {}).items()
    }


def tightened(pre: PreBounds, by: TorchPreBounds) -> PreBounds:
    """``pre`` intersected with the unbatched torch bounds ``by`` (nodes of ``pre`` only), as new
    arrays: the bounds hold on the same box, so their intersection does."""
    out = dict(pre)
    for j, (lo, hi) in pre.items():
        if j in by:
            b_lo, b_hi = (
                t.detach().to("cpu", torch.float64).numpy().reshape(np.shape(lo)) for t in by[j]
            )
            out[j] = (np.maximum(lo, b_lo), np.minimum(hi, b_hi))
    return out


def unstable_count(pre: TorchPreBounds, nodes: Iterable[int] | None = None) -> int:
    """How many neurons of ``pre`` (of the given nodes that it has; None: all) have bounds that
    straddle 0."""
    keys = pre.keys() if nodes is None else [j for j in nodes if j in pre]
    return sum(int(((pre[j][0] < 0) & (pre[j][1] > 0)).sum()) for j in keys)

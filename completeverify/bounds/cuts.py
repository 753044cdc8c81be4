"""Cutting planes on a network's values and ReLU indicators, used as Lagrangian terms of a bound
(the GCP-CROWN idea: general cutting planes inside bound propagation).

A cut ``sum_n G_n . v_n + sum_r Z_r . z_r <= rhs`` must hold at every point of the network that
the bound is about (v_n the flat value of node n, node 0 the input; z_r the indicator of the
ReLU node r: 1 where its input is > 0, 0 where it is < 0, either at 0).  For multipliers
mu >= 0 (B, M, K), the objective of row m gets ``mu . (G v + Z z - rhs)``, which is <= 0 at
every such point, so any mu >= 0 keeps the bound valid.  The backward walk takes G as extra
coefficients on the nodes and Z through the z-aware ReLU relaxation
(``relax.ReluRelax.z_backward``); mu is searched next to alpha and beta
(``optimize.optimize_alpha_beta``) and kept in ``AlphaState.betas[CUT_KEY]``.

Which rows a cut may serve is the caller's business: ``BatchCuts.mask`` switches the
multipliers of a (domain, row, cut) off where the cut is not known to hold (a cut derived for one
unsafe polytope holds at that polytope's points only).  A cut that is not valid makes the bound
wrong, so cuts must come from a source that proves them: ``bounds/pair_cuts.py`` builds
two-neuron ReLU relaxations that hold on the whole box.  The cut pool of HiGHS's MILP root was
measured as a source and held cuts that cut off the MILP's own optimum (benchmarks/README.md,
issue 14 stop 25), so it is not one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

CUT_KEY = -1  # the key of the cut multipliers (B, M, K) in AlphaState.betas


@dataclass(frozen=True)
class CutSet:
    """K cuts: values node -> (K, size) coefficients on its flat value (node 0: the input),
    z relu node -> (K, size) coefficients on its indicators, rhs (K,)."""

    values: dict[int, torch.Tensor]
    z: dict[int, torch.Tensor]
    rhs: torch.Tensor

    @property
    def size(self) -> int:
        """The number of cuts K."""
        return int(self.rhs.shape[0])

    def to(self, dtype: torch.dtype) -> "CutSet":
        """The same cuts in dtype."""
        return CutSet(
            {n: g.to(dtype) for n, g in self.values.items()},
            {n: g.to(dtype) for n, g in self.z.items()},
            self.rhs.to(dtype),
        )

    def terms(
        self, mu: torch.Tensor
    ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor], torch.Tensor]:
        """(node coefficients, indicator coefficients, bias (B, M)) of the terms, mu (B, M, K)."""
        extra = {n: mu @ g for n, g in self.values.items()}
        zt = {n: mu @ g for n, g in self.z.items()}
        return extra, zt, -(mu @ self.rhs)


@dataclass(frozen=True)
class BatchCuts:
    """Cuts for one bound call: the set and, optionally, a (B, M, K) mask of the (domain, row,
    cut) triples where a cut may serve (None: every cut serves every row)."""

    cuts: CutSet
    mask: torch.Tensor | None = None

    def to(self, dtype: torch.dtype) -> "BatchCuts":
        """The same cuts in dtype."""
        return BatchCuts(self.cuts.to(dtype), self.mask)

    def multipliers(self, mu: torch.Tensor) -> torch.Tensor:
        """mu with the masked-off entries zeroed."""
        return mu if self.mask is None else mu * self.mask.to(mu.dtype)

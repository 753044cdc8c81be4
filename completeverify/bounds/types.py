"""Configuration, split constraints, results and warm-start state of the bound engine."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import ModelError


@dataclass(frozen=True)
class BoundConfig:
    """Options of the bound engine (all optional; defaults suit branch and bound).

    alpha_iters: Adam steps of alpha/beta optimisation ("alpha-crown"; with splits: beta-CROWN).
    alpha_lr / beta_lr: Adam learning rates for the ReLU lower slopes and the split multipliers.
    cut_lr: Adam learning rate for the multipliers of cutting planes (bounds/cuts.py), which
        are scaled to a largest coefficient of about 1.
    lr_decay: multiplicative learning-rate decay per step.
    float_rel / float_abs: every computed lower bound is lowered (upper bound raised) by
        float_rel * (|bound| + sum |A| |x|) + float_abs to absorb float64 rounding; a sound
        float64 walk also lowers its bias by the bound on its own rounding (rounding.py).
    intermediate_crown: compute pre-activation bounds with CROWN (else IBP only).
    chunk_elems: cap on B * rows * width of one backward pass when bounding intermediate
        nodes; more rows are processed in chunks (memory control, no effect on results).
    sound: True (default) = the verdict mode: float64, outward rounding margins, no autograd.
        False = the differentiable training mode: ``dtype`` arithmetic, no margins, autograd
        through IBP and CROWN (bounds are then NOT safe to decide verdicts with).
    dtype: the arithmetic type; must be float64 when sound.
    """

    alpha_iters: int = 20
    alpha_lr: float = 0.1
    beta_lr: float = 0.05
    cut_lr: float = 0.01
    lr_decay: float = 0.98
    float_rel: float = 1e-9
    float_abs: float = 1e-12
    intermediate_crown: bool = True
    chunk_elems: int = 30_000_000
    sound: bool = True
    dtype: torch.dtype = torch.float64

    def __post_init__(self) -> None:
        """Validate the values once."""
        if self.alpha_iters < 0 or min(self.alpha_lr, self.beta_lr, self.cut_lr) <= 0:
            raise ModelError("BoundConfig: alpha_iters must be >= 0 and learning rates > 0")
        if self.float_rel < 0 or self.float_abs < 0 or self.chunk_elems < 1:
            raise ModelError("BoundConfig: float margins must be >= 0 and chunk_elems >= 1")
        if self.dtype not in (torch.float32, torch.float64) or (
            self.sound and self.dtype != torch.float64
        ):
            raise ModelError(
                "BoundConfig: dtype must be float32 or float64, and float64 when sound"
            )


@dataclass(frozen=True)
class Refinement:
    """Named options of one BoundEngine.compute call: which intermediate bounds it refines.

    refine_after: intermediate nodes with index <= refine_after that have a given ``pre`` box
        keep it (with the split constraints applied), without an IBP or CROWN pass; later ones
        get IBP and CROWN as usual.  Branch and bound passes the pre-activation node of the
        newest split: a split at node j changes no bound of a node <= j (IBP reads the same
        input boxes, intermediate CROWN ignores beta), so the parent's bounds are reused there.
        -1 (the default): every node is recomputed.
    """

    refine_after: int = -1


@dataclass
class Splits:
    """Branch-and-bound ReLU split constraints for a batch of B domains.

    relu maps the index of a Relu node in graph.nodes to an int8 tensor (B, size):
    +1 = its pre-activation is constrained >= 0, -1 = constrained <= 0, 0 = free.
    """

    relu: dict[int, torch.Tensor] = field(default_factory=dict)

    def select(self, idx: torch.Tensor) -> "Splits":
        """The splits of the domains idx (a LongTensor, repeats allowed)."""
        return Splits({k: v[idx] for k, v in self.relu.items()})


@dataclass
class BoundResult:
    """Output of BoundEngine.compute (all tensors float64, B = batch, m = spec rows).

    lb: (B, m) sound lower bounds of C @ y + c0; ub: (B, m) upper bounds or None.
    pre: node index -> (lower, upper) each (B, size) for every node feeding an activation.
    x_lb: (B, m, n_in) input points minimising each row's final linear lower bound, or None (IBP).
    coeffs: (B, m, n_in) the coefficients A of those linear lower bounds A x + b (CROWN only; for
        alpha-CROWN those of the last iterate, which may differ from the best bound kept).
    state: AlphaState to warm-start the next call, or None.
    """

    lb: torch.Tensor
    ub: torch.Tensor | None
    pre: dict[int, tuple[torch.Tensor, torch.Tensor]]
    x_lb: torch.Tensor | None
    state: "AlphaState | None"
    coeffs: torch.Tensor | None = (
        None  # (B, m, n_in) input coefficients of each row's linear lower bound
    )
    # (A0 (B, M, n_in), bias (B, M)) of the CROWN walk at the default slopes, M = m (2m with
    # need_ub: rows m.. bound -C y): C y + c0 >= A0 x + bias on the box, before the float margin
    # (not IBP)
    linear: tuple[torch.Tensor, torch.Tensor] | None = None


@dataclass
class AlphaState:
    """Optimised alpha (ReLU lower slopes) and beta (split multipliers) of a batch.

    alphas / betas map a Relu node index to a tensor (B, M, size), M = rows of the bound
    (m, or 2m when upper bounds were asked); betas[bounds.cuts.CUT_KEY] (B, M, K), when
    present, holds the multipliers of K cutting planes.  Batch-indexable so that branch and
    bound can hand a parent's state to its children: ``state.select(idx)`` takes the domains idx
    (repeats allowed), ``state.repeat(k)`` tiles the batch k times like Tensor.repeat, and
    ``AlphaState.cat([s1, s2])`` joins batches.  A state whose shapes do not fit a call is
    ignored for the nodes that do not fit (the defaults are used there), never trusted blindly.
    """

    alphas: dict[int, torch.Tensor] = field(default_factory=dict)
    betas: dict[int, torch.Tensor] = field(default_factory=dict)

    def select(self, idx: torch.Tensor) -> "AlphaState":
        """The state of the domains idx (LongTensor of batch positions)."""
        return AlphaState(
            {k: v[idx] for k, v in self.alphas.items()}, {k: v[idx] for k, v in self.betas.items()}
        )

    def repeat(self, k: int) -> "AlphaState":
        """The batch tiled k times: [s0..sB-1, s0..sB-1, ...]."""
        return AlphaState(
            {n: v.repeat(k, 1, 1) for n, v in self.alphas.items()},
            {n: v.repeat(k, 1, 1) for n, v in self.betas.items()},
        )

    @staticmethod
    def cat(states: "list[AlphaState]") -> "AlphaState":
        """Concatenate the batches of states that have the same nodes."""
        keys_a = set.intersection(*(set(s.alphas) for s in states))
        keys_b = set.intersection(*(set(s.betas) for s in states))
        return AlphaState(
            {k: torch.cat([s.alphas[k] for s in states]) for k in keys_a},
            {k: torch.cat([s.betas[k] for s in states]) for k in keys_b},
        )

    @property
    def batch(self) -> int:
        """Number of domains in the state (0 when empty)."""
        for v in list(self.alphas.values()) + list(self.betas.values()):
            return int(v.shape[0])
        return 0


def select_pre(
    pre: dict[int, tuple[torch.Tensor, torch.Tensor]], idx: torch.Tensor
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Intermediate bounds of the domains idx (to pass a parent's bounds to its children)."""
    return {k: (lo[idx], hi[idx]) for k, (lo, hi) in pre.items()}

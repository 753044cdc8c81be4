"""alpha-CROWN / beta-CROWN: projected Adam on the ReLU lower slopes and split multipliers.

For a ReLU split with sign s (+1: z >= 0, -1: z <= 0) the final bound gets the Lagrangian term
``-s * beta * z`` with beta >= 0: on the domain, -s * z <= 0, so adding it never raises the
objective and the bound stays valid for every beta >= 0.  alpha and beta have one entry per
(domain, output row, neuron): shape (B, M, size).  The best bound seen is kept per row, together
with the alpha/beta and input point that produced it.

Which activations have optimisable slopes is the table ``ALPHA`` (op type -> a function of the
op's relaxation giving its slots, or ``NOT_SUPPORTED``); it agrees with
``caps.optimisable_slopes`` (tests/unit/test_op_tables.py).  The engine is seen through the small
``Walker`` protocol (its public ``walk``), so this module does not import the engine.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ..graph import NOT_SUPPORTED, LeakyRelu, MaxPool, Node, NotSupported, Relu, Sigmoid, Tanh
from .backward import concretize
from .cuts import CUT_KEY, BatchCuts
from .relax import LeakyReluRelax, ReluRelax
from .rounding import Rounding
from .types import AlphaState, BoundConfig, Splits


class Walker(Protocol):
    """The part of BoundEngine that alpha/beta optimisation uses."""

    config: BoundConfig
    nodes: tuple[Node, ...]
    relu_nodes: list[int]
    dtype: torch.dtype

    def walk(
        self,
        start: int,
        a: torch.Tensor,
        bias: torch.Tensor,
        relax: dict[int, Any],
        alphas: dict[int, torch.Tensor] | None = None,
        beta_terms: dict[int, torch.Tensor] | None = None,
        record: dict[int, torch.Tensor] | None = None,
        extra: dict[int, torch.Tensor] | None = None,
        z_terms: dict[int, torch.Tensor] | None = None,
        rounding: Rounding | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One backward walk from node start (see BoundEngine.walk)."""
        ...


@dataclass(frozen=True)
class AlphaSlots:
    """The optimisable lower slopes of one activation node.

    default: (B, size) starting slopes (the CROWN choice); low/high: the interval every slope is
    projected onto (any slope in it gives a sound lower line).
    """

    default: torch.Tensor
    low: float
    high: float


def _alpha_relu(rx: Any) -> AlphaSlots | None:
    """ReLU: slopes in [0, 1] on the unstable neurons (None when none is unstable)."""
    assert isinstance(rx, ReluRelax)
    if not bool(rx.unstable.any()):
        return None
    return AlphaSlots(rx.lo_default, 0.0, 1.0)


def _alpha_leaky_relu(rx: Any) -> AlphaSlots | None:
    """LeakyReLU with negative slope s: lower slopes in [s, 1] on the unstable neurons."""
    assert isinstance(rx, LeakyReluRelax)
    if not bool(rx.unstable.any()):
        return None
    return AlphaSlots(rx.lo_default, rx.slope, 1.0)


# activation op type -> relaxation -> its optimisable slopes (or None), or NOT_SUPPORTED
ALPHA: dict[type, Callable[[Any], AlphaSlots | None] | NotSupported] = {
    Relu: _alpha_relu,
    LeakyRelu: _alpha_leaky_relu,
    Sigmoid: NOT_SUPPORTED,
    Tanh: NOT_SUPPORTED,
    MaxPool: NOT_SUPPORTED,
}


def _warm(
    t: torch.Tensor | None, shape: tuple[int, ...], dtype: torch.dtype, low: float, high: float
) -> torch.Tensor | None:
    """A warm-start tensor as a fresh (dtype) copy projected onto [low, high], its non-finite
    entries replaced first (NaN and -inf by 0, +inf by high where finite, else by 0); None when
    it is absent or of another shape.  One copy and two in-place passes: in FSB's children
    (domains x candidates x 2, rows, neurons) these tensors are large, and a finiteness check
    before the copies cost as much as the copies themselves."""
    if t is None or tuple(t.shape) != shape:
        return None
    out = t.to(dtype, copy=True)
    top = high if math.isfinite(high) else 0.0
    return out.nan_to_num_(0.0, posinf=top, neginf=0.0).clamp_(low, high)


def alpha_slots(engine: Walker, relax: dict) -> dict[int, AlphaSlots]:
    """Node -> its optimisable slopes, for every relaxed node whose ALPHA row gives some."""
    out: dict[int, AlphaSlots] = {}
    for r, rx in relax.items():
        row = ALPHA.get(type(engine.nodes[r].op), NOT_SUPPORTED)
        if isinstance(row, NotSupported):
            continue
        slots = row(rx)
        if slots is not None:
            out[r] = slots
    return out


def init_params(
    engine: Walker,
    relax: dict,
    splits: Splits | None,
    warm: object | None,
    rows: int,
    batch: int,
    cuts: BatchCuts | None = None,
) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """Initial alphas (CROWN slopes or warm), betas (0 or warm) and split signs (B, 1, size);
    with cuts, betas[CUT_KEY] (B, rows, K) holds their multipliers (0 or warm)."""
    state = warm if isinstance(warm, AlphaState) else AlphaState()
    alphas: dict[int, torch.Tensor] = {}
    betas: dict[int, torch.Tensor] = {}
    signs: dict[int, torch.Tensor] = {}
    for r, sl in alpha_slots(engine, relax).items():
        shape = (batch, rows, engine.nodes[r].size)
        start = _warm(state.alphas.get(r), shape, engine.dtype, sl.low, sl.high)
        alphas[r] = sl.default.unsqueeze(1).expand(shape).clone() if start is None else start
    for r in engine.relu_nodes:
        if r not in relax:
            continue
        shape = (batch, rows, engine.nodes[r].size)
        s = splits.relu.get(r) if splits is not None else None
        if s is not None and bool((s != 0).any()):
            signs[r] = s.to(engine.dtype).unsqueeze(1)
            start = _warm(state.betas.get(r), shape, engine.dtype, 0.0, math.inf)
            betas[r] = torch.zeros(shape, dtype=engine.dtype) if start is None else start
    if cuts is not None:
        shape = (batch, rows, cuts.cuts.size)
        start = _warm(state.betas.get(CUT_KEY), shape, engine.dtype, 0.0, math.inf)
        betas[CUT_KEY] = torch.zeros(shape, dtype=engine.dtype) if start is None else start
    return alphas, betas, signs


def walk_with_cuts(
    engine: Walker,
    cmat: torch.Tensor,
    cvec: torch.Tensor,
    relax: dict,
    alphas: dict[int, torch.Tensor],
    betas: dict[int, torch.Tensor],
    signs: dict[int, torch.Tensor],
    cuts: BatchCuts | None = None,
    rounding: Rounding | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The final walk with the split terms and, when cuts are given and betas holds their
    multipliers (betas[CUT_KEY], (B, M, K)), the cut terms (bounds/cuts.py).  rounding: see
    BoundEngine.walk."""
    last = len(engine.nodes) - 1
    mu = betas.get(CUT_KEY)
    split_b = {r: b for r, b in betas.items() if r != CUT_KEY}
    if cuts is None or mu is None:
        return engine.walk(
            last, cmat, cvec, relax, alphas, beta_terms(split_b, signs), rounding=rounding
        )
    extra, zt, cb = cuts.cuts.terms(cuts.multipliers(mu))
    return engine.walk(
        last,
        cmat,
        cvec + cb,
        relax,
        alphas,
        beta_terms(split_b, signs),
        extra=extra,
        z_terms=zt,
        rounding=rounding,
    )


def beta_terms(
    betas: dict[int, torch.Tensor], signs: dict[int, torch.Tensor]
) -> dict[int, torch.Tensor]:
    """Coefficients -s * beta (B, M, size) added on each split ReLU's pre-activation."""
    return {r: -signs[r] * b for r, b in betas.items()}


class Adam:
    """Adam (Kingma and Ba) on lists of tensors, each group with its own learning rate.

    The same update as ``torch.optim.Adam`` with its defaults (betas 0.9 / 0.999, eps 1e-8, no
    weight decay), written out because the first use of ``torch.optim`` in a process imports
    torch's compiler stack (about 2 s on the machine measured): every verification that
    optimises slopes paid that at start-up.
    """

    BETA1, BETA2, EPS = 0.9, 0.999, 1e-8

    def __init__(self, groups: list[tuple[list[torch.Tensor], float]]) -> None:
        """groups: (tensors, learning rate) pairs; the tensors must require grad."""
        self.params = [list(ts) for ts, _ in groups]
        self.lrs = [float(lr) for _, lr in groups]
        self.moments = {
            id(t): (torch.zeros_like(t), torch.zeros_like(t)) for ts, _ in groups for t in ts
        }
        self.steps = 0

    def step(self) -> None:
        """One update from the tensors' .grad (tensors without a gradient are left alone)."""
        self.steps += 1
        c1 = 1 - self.BETA1**self.steps
        c2_sqrt = (1 - self.BETA2**self.steps) ** 0.5
        with torch.no_grad():
            for ts, lr in zip(self.params, self.lrs):
                for t in ts:
                    g = t.grad
                    if g is None:
                        continue
                    m, v = self.moments[id(t)]
                    m.lerp_(g, 1 - self.BETA1)
                    v.mul_(self.BETA2).addcmul_(g, g, value=1 - self.BETA2)
                    t.addcdiv_(m, v.sqrt().div_(c2_sqrt).add_(self.EPS), value=-lr / c1)

    def zero_grad(self) -> None:
        """Drop the tensors' gradients."""
        for ts in self.params:
            for t in ts:
                t.grad = None

    def decay(self, factor: float) -> None:
        """Multiply every learning rate by factor."""
        self.lrs = [lr * factor for lr in self.lrs]


def optimize_alpha_beta(
    engine: Walker,
    lo: torch.Tensor,
    hi: torch.Tensor,
    cmat: torch.Tensor,
    cvec: torch.Tensor,
    relax: dict,
    splits: Splits | None,
    warm: object | None,
    lb0: torch.Tensor,
    x0: torch.Tensor,
    deadline: float | None,
    cuts: BatchCuts | None = None,
    rounding: Rounding | None = None,
) -> tuple[torch.Tensor, torch.Tensor, AlphaState]:
    """Maximise the sum of row lower bounds; returns (best lb (B, M), its x (B, M, n), state).

    cuts: cutting planes whose multipliers (betas[CUT_KEY]) are searched with the others.
    rounding: see BoundEngine.walk (sound mode).  The steps search without it; the bound
    returned is recomputed with it at the parameters kept (then at least lb0, a sound bound)."""
    cfg = engine.config
    batch, rows = cmat.shape[0], cmat.shape[1]
    alphas, betas, signs = init_params(engine, relax, splits, warm, rows, batch, cuts)
    slots = alpha_slots(engine, relax)
    best_lb, best_x = lb0.clone(), x0.clone()
    best_a = {r: a.clone() for r, a in alphas.items()}
    best_b = {r: torch.zeros_like(b) for r, b in betas.items()}
    if not alphas and not betas:
        return best_lb, best_x, AlphaState(best_a, best_b)
    for t in list(alphas.values()) + list(betas.values()):
        t.requires_grad_(True)
    groups = []
    if alphas:
        groups.append((list(alphas.values()), cfg.alpha_lr))
    split_b = [b for r, b in betas.items() if r != CUT_KEY]
    if split_b:
        groups.append((split_b, cfg.beta_lr))
    if CUT_KEY in betas:
        groups.append(([betas[CUT_KEY]], cfg.cut_lr))
    opt = Adam(groups)
    with torch.enable_grad():
        for it in range(cfg.alpha_iters + 1):
            a0, bias = walk_with_cuts(engine, cmat, cvec, relax, alphas, betas, signs, cuts)
            lb, _ = concretize(a0, bias, lo, hi, cfg.float_rel, cfg.float_abs, want_x=False)
            with torch.no_grad():
                better = lb.detach() > best_lb
                if bool(better.any()):
                    best_lb = torch.where(better, lb.detach(), best_lb)
                    x = torch.where(a0.detach() >= 0, lo.unsqueeze(1), hi.unsqueeze(1))
                    best_x = torch.where(better.unsqueeze(2), x, best_x)
                    keep = better.unsqueeze(2)
                    for r in alphas:
                        best_a[r] = torch.where(keep, alphas[r].detach(), best_a[r])
                    for r in betas:
                        best_b[r] = torch.where(keep, betas[r].detach(), best_b[r])
            if it == cfg.alpha_iters or (deadline is not None and time.monotonic() > deadline):
                break
            loss = -torch.where(torch.isfinite(lb), lb, torch.zeros_like(lb)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                for r, a in alphas.items():
                    a.nan_to_num_(0.0).clamp_(slots[r].low, slots[r].high)
                for b in betas.values():
                    b.nan_to_num_(0.0).clamp_(min=0.0)
                opt.decay(cfg.lr_decay)
    if rounding is not None:
        with torch.no_grad():
            a0, bias = walk_with_cuts(
                engine, cmat, cvec, relax, best_a, best_b, signs, cuts, rounding
            )
            lb, _ = concretize(a0, bias, lo, hi, cfg.float_rel, cfg.float_abs, want_x=False)
            best_lb = torch.maximum(lb0, lb)
    return best_lb, best_x, AlphaState(best_a, best_b)

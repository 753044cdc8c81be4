"""alpha-CROWN / beta-CROWN: projected Adam on the ReLU lower slopes and split multipliers.

For a ReLU split with sign s (+1: z >= 0, -1: z <= 0) the final bound gets the Lagrangian term
``-s * beta * z`` with beta >= 0: on the domain, -s * z <= 0, so adding it never raises the
objective and the bound stays valid for every beta >= 0.  alpha and beta have one entry per
(domain, output row, neuron): shape (B, M, size).  The best bound seen is kept per row, together
with the alpha/beta and input point that produced it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch

from .backward import concretize
from .relax import ReluRelax
from .types import AlphaState, Splits

if TYPE_CHECKING:
    from .engine import BoundEngine


def _fits(t: torch.Tensor | None, shape: tuple[int, ...]) -> bool:
    """True when a warm-start tensor has the expected shape and is finite."""
    return t is not None and tuple(t.shape) == shape and bool(torch.isfinite(t).all())


def init_params(engine: "BoundEngine", relax: dict, splits: Splits | None, warm: object | None,
                rows: int, batch: int) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """Initial alphas (CROWN slopes or warm), betas (0 or warm) and split signs (B, 1, size)."""
    state = warm if isinstance(warm, AlphaState) else AlphaState()
    alphas: dict[int, torch.Tensor] = {}
    betas: dict[int, torch.Tensor] = {}
    signs: dict[int, torch.Tensor] = {}
    for r in engine.relu_nodes:
        rx = relax.get(r)
        if not isinstance(rx, ReluRelax):
            continue
        shape = (batch, rows, engine.nodes[r].size)
        if bool(rx.unstable.any()):
            w = state.alphas.get(r)
            start = w.to(engine.dtype).clamp(0, 1) if _fits(w, shape) else rx.lo_default.unsqueeze(1).expand(shape)
            alphas[r] = start.clone()
        s = splits.relu.get(r) if splits is not None else None
        if s is not None and bool((s != 0).any()):
            signs[r] = s.to(engine.dtype).unsqueeze(1)
            w = state.betas.get(r)
            betas[r] = w.to(engine.dtype).clamp(min=0).clone() if _fits(w, shape) else torch.zeros(shape, dtype=engine.dtype)
    return alphas, betas, signs


def beta_terms(betas: dict[int, torch.Tensor], signs: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """Coefficients -s * beta (B, M, size) added on each split ReLU's pre-activation."""
    return {r: -signs[r] * b for r, b in betas.items()}


def optimize_alpha_beta(engine: "BoundEngine", lo: torch.Tensor, hi: torch.Tensor, cmat: torch.Tensor,
                        cvec: torch.Tensor, relax: dict, splits: Splits | None, warm: object | None,
                        lb0: torch.Tensor, x0: torch.Tensor, deadline: float | None
                        ) -> tuple[torch.Tensor, torch.Tensor, AlphaState]:
    """Maximise the sum of row lower bounds; returns (best lb (B, M), its x (B, M, n), state)."""
    cfg = engine.config
    batch, rows = cmat.shape[0], cmat.shape[1]
    alphas, betas, signs = init_params(engine, relax, splits, warm, rows, batch)
    best_lb, best_x = lb0.clone(), x0.clone()
    best_a = {r: a.clone() for r, a in alphas.items()}
    best_b = {r: torch.zeros_like(b) for r, b in betas.items()}
    last = len(engine.nodes) - 1
    if not alphas and not betas:
        return best_lb, best_x, AlphaState(best_a, best_b)
    for t in list(alphas.values()) + list(betas.values()):
        t.requires_grad_(True)
    groups = []
    if alphas:
        groups.append({"params": list(alphas.values()), "lr": cfg.alpha_lr})
    if betas:
        groups.append({"params": list(betas.values()), "lr": cfg.beta_lr})
    opt = torch.optim.Adam(groups)
    with torch.enable_grad():
        for it in range(cfg.alpha_iters + 1):
            a0, bias = engine._walk(last, cmat, cvec, relax, alphas, beta_terms(betas, signs))
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
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                for a in alphas.values():
                    a.nan_to_num_(0.0).clamp_(0.0, 1.0)
                for b in betas.values():
                    b.nan_to_num_(0.0).clamp_(min=0.0)
                for g in opt.param_groups:
                    g["lr"] *= cfg.lr_decay
    return best_lb, best_x, AlphaState(best_a, best_b)

"""PGD falsification: produces candidate inputs, never a verdict.

The loss of a point for one case is min over its polytopes of max over the
polytope's rows of (C y - d): negative means the point looks unsafe.  Every
candidate still has to pass the ONNX replay in verdict.confirm.
"""

from __future__ import annotations

import numpy as np
import torch

from .bounds.optimize import Adam
from .config import AttackConfig, Deadline
from .graph import Graph


def spec_loss(y: torch.Tensor, Cs: list[torch.Tensor], ds: list[torch.Tensor]) -> torch.Tensor:
    """(B,) min over polytopes of max over rows of C y - d for flat outputs y (B, n_out)."""
    vals = []
    for C, d in zip(Cs, ds):
        if C.shape[0] == 0:
            vals.append(torch.full((y.shape[0],), -1.0, dtype=y.dtype))
        else:
            vals.append((y @ C.T - d).amax(dim=1))
    return torch.stack(vals, dim=1).amin(dim=1)


def pgd_batch(
    graph: Graph,
    x0: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    Cs: list[torch.Tensor],
    ds: list[torch.Tensor],
    steps: int,
    step_size: float,
    deadline: Deadline,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sign-gradient descent on spec_loss from starts x0 (K, n)
    inside boxes lo, hi ((n,) or (K, n)).

    Returns the best point and loss per start: (K, n), (K,).
    """
    width = hi - lo
    x = x0.clone()
    shape = (x.shape[0],) + graph.input_shape
    best_x = x.clone()
    with torch.no_grad():
        best_loss = spec_loss(graph.forward(x.reshape(shape)).reshape(x.shape[0], -1), Cs, ds)
    for step in range(steps + 1):
        if deadline.expired() or bool((best_loss < 0).any()):
            break
        x = x.detach().requires_grad_(True)
        loss = spec_loss(graph.forward(x.reshape(shape)).reshape(x.shape[0], -1), Cs, ds)
        (grad,) = torch.autograd.grad(loss.sum(), x)
        with torch.no_grad():
            better = loss < best_loss
            best_loss = torch.where(better, loss, best_loss)
            best_x[better] = x[better]
            if step == steps:
                break
            lr = step_size * (0.5 * (1 + np.cos(np.pi * step / max(1, steps))) + 0.02)
            x = torch.minimum(torch.maximum(x - lr * width * grad.sign(), lo), hi)
    return best_x.detach(), best_loss.detach()


def row_hinge_loss(y: torch.Tensor, Cs: list[torch.Tensor], ds: list[torch.Tensor]) -> torch.Tensor:
    """(B,) min over polytopes of the sum over rows of max(C y - d, 0): zero exactly where
    spec_loss <= 0.  Unlike spec_loss's max, every violated row has a gradient at once, so a
    point can move into a thin band (two rows of opposite sign) instead of bouncing between
    its walls."""
    vals = []
    for C, d in zip(Cs, ds):
        if C.shape[0] == 0:
            vals.append(torch.zeros(y.shape[0], dtype=y.dtype))
        else:
            vals.append(torch.relu(y @ C.T - d).sum(dim=1))
    return torch.stack(vals, dim=1).amin(dim=1)


def adam_batch(
    graph: Graph,
    x0: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    Cs: list[torch.Tensor],
    ds: list[torch.Tensor],
    steps: int,
    lr: float,
    deadline: Deadline,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam on row_hinge_loss from starts x0 (K, n) inside the box lo, hi ((n,) or (K, n)).

    The point is x = lo + (hi - lo) * z with z in [0, 1] (lr is per unit of z, cosine-decayed).
    Returns the best point and its spec_loss per start: (K, n), (K,).  Measured on
    reach_prob_density robot, whose unsafe set is a thin band in two outputs: 256 starts x 200
    steps find counterexamples that 100,000 starts of sign-gradient PGD on spec_loss miss.
    """
    width = hi - lo
    shape = (x0.shape[0],) + graph.input_shape
    safe_w = torch.where(width > 0, width, torch.ones_like(width))
    z = ((x0 - lo) / safe_w).clamp(0, 1).detach().requires_grad_(True)
    opt = Adam([([z], lr)])  # not torch.optim: its first step costs about 2 s of imports
    best_x = x0.clone()
    best_loss = torch.full((x0.shape[0],), float("inf"), dtype=x0.dtype)
    for step in range(steps + 1):
        if deadline.expired():
            break
        x = lo + width * z
        y = graph.forward(x.reshape(shape)).reshape(x.shape[0], -1)
        with torch.no_grad():
            loss = spec_loss(y, Cs, ds)
            better = loss < best_loss
            best_loss = torch.where(better, loss, best_loss)
            best_x[better] = x[better].detach()
        if step == steps or bool((best_loss < 0).any()):
            break
        opt.lrs = [lr * (0.5 * (1 + np.cos(np.pi * step / max(1, steps))) + 0.02)]
        opt.zero_grad()
        row_hinge_loss(y, Cs, ds).sum().backward()
        opt.step()
        with torch.no_grad():
            z.clamp_(0, 1)
    return best_x.detach(), best_loss.detach()


def pgd(
    graph: Graph,
    lower: np.ndarray,
    upper: np.ndarray,
    polytopes,
    config: AttackConfig,
    deadline: Deadline,
    rng: np.random.Generator,
    extra_starts: np.ndarray | None = None,
) -> np.ndarray:
    """Run PGD inside the box; returns candidate flat inputs sorted by loss (best first), shape (K,
    n_in)."""
    dtype = torch.float32 if graph.input_dtype == "float32" else torch.float64
    lo = torch.as_tensor(lower, dtype=dtype)
    hi = torch.as_tensor(upper, dtype=dtype)
    Cs = [torch.as_tensor(p.C, dtype=dtype) for p in polytopes]
    ds = [torch.as_tensor(p.d, dtype=dtype) for p in polytopes]
    n = lower.size
    k = max(1, config.restarts)
    starts = [rng.uniform(lower, upper, size=(k, n))]
    starts.append(((lower + upper) / 2)[None])
    starts.append(np.where(rng.random((4, n)) < 0.5, lower, upper))
    if extra_starts is not None and len(extra_starts):
        starts.append(np.clip(extra_starts.reshape(-1, n), lower, upper))
    x = torch.as_tensor(np.concatenate(starts), dtype=dtype)
    best_x, best_loss = pgd_batch(
        graph, x, lo, hi, Cs, ds, config.steps, config.step_size, deadline
    )
    order = torch.argsort(best_loss)
    return best_x[order].to(torch.float64).cpu().numpy()

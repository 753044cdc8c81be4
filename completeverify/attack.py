"""PGD falsification: produces candidate inputs, never a verdict.

The loss of a point for one case is min over its polytopes of max over the
polytope's rows of (C y - d): negative means the point looks unsafe.  Every
candidate still has to pass the ONNX replay in verdict.confirm.
"""

from __future__ import annotations

import numpy as np
import torch

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

"""Robust losses on the project's own bound engine, in its differentiable mode.

Shapes: x is (B, *sample_shape) (a torch batch), y is (B,) int64 labels, K classes.
The worst-case margins m_j = f_y - f_j over the L-inf ball around x (intersected with the
domain) are bounded from below by IBP or CROWN-IBP; the robust loss is the cross-entropy of
z with z_y = 0 and z_j = -lower(m_j) (Wong & Kolter; Gowal et al.; Zhang et al.).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..bounds import BoundConfig, BoundEngine
from ..errors import InputError
from ..graph import Graph, Relu
from ..torch_import import TorchTrace, trace_torch

METHODS = ("ibp", "crown-ibp", "pgd")
VERIFY_METHODS = ("ibp", "crown-ibp", "crown")


class BoundedModule:
    """A torch module traced once; builds bound engines on its live parameters.

    module: the model; sample_shape: one input's shape without the batch dimension.
    """

    def __init__(self, module: nn.Module, sample_shape: tuple[int, ...]) -> None:
        """Trace the module (once)."""
        self.module = module
        self.trace: TorchTrace = trace_torch(module, (1,) + tuple(sample_shape))

    @property
    def graph(self) -> Graph:
        """The traced Graph (parameters as of tracing; use engine() for live ones)."""
        return self.trace.graph

    def engine(
        self, sound: bool, dtype: torch.dtype = torch.float32, intermediate_crown: bool = False
    ) -> BoundEngine:
        """A BoundEngine on the module's current parameters.

        sound=False: differentiable (gradients reach the module); sound=True: float64 detached
        copies with the engine's safety margins (for reporting verified accuracy).
        """
        if sound:
            with torch.no_grad():
                params = [
                    {k: v.detach() for k, v in p.items()}
                    for p in self.trace.live_params(torch.float64)
                ]
            return BoundEngine(
                self.graph, BoundConfig(intermediate_crown=intermediate_crown), params
            )
        cfg = BoundConfig(sound=False, dtype=dtype, intermediate_crown=intermediate_crown)
        return BoundEngine(self.graph, cfg, self.trace.live_params(dtype))


ModelLike = nn.Module | Graph | BoundedModule


def _bounded(model: ModelLike, x: torch.Tensor) -> tuple[BoundedModule | None, Graph]:
    """(BoundedModule or None, Graph) for what the user passed."""
    if isinstance(model, BoundedModule):
        return model, model.graph
    if isinstance(model, Graph):
        return None, model
    if isinstance(model, nn.Module):
        bm = BoundedModule(model, tuple(x.shape[1:]))
        return bm, bm.graph
    raise InputError(
        f"model must be a torch.nn.Module, a Graph or a BoundedModule, got {type(model).__name__}"
    )


def _forward(model: ModelLike, x: torch.Tensor) -> torch.Tensor:
    """Logits (B, K) of the model on x."""
    if isinstance(model, BoundedModule):
        model = model.module
    if isinstance(model, Graph):
        return model(x.to(torch.float64).reshape(x.shape[0], *model.input_shape)).reshape(
            x.shape[0], -1
        )
    return model(x).reshape(x.shape[0], -1)


def _check(
    x: torch.Tensor, y: torch.Tensor, eps: float, norm: str, domain: tuple[float, float]
) -> None:
    """Validate the common arguments."""
    if norm != "linf":
        raise InputError(f"norm '{norm}' is not supported for training (only 'linf')")
    if eps < 0:
        raise InputError(f"eps must be >= 0, got {eps}")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise InputError(
            f"y must be (B,) labels for x of shape {tuple(x.shape)}, got {tuple(y.shape)}"
        )
    if not domain[0] < domain[1]:
        raise InputError(f"domain must be (low, high) with low < high, got {domain}")


def _box(
    x: torch.Tensor, eps: float, domain: tuple[float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat (B, n) bounds of the L-inf ball around x intersected with the domain."""
    flat = x.reshape(x.shape[0], -1)
    return (flat - eps).clamp(domain[0], domain[1]), (flat + eps).clamp(domain[0], domain[1])


def margin_spec(y: torch.Tensor, n_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """C (B, K, K) with row j = e_y - e_j (row y is zero): C @ f are the margins f_y - f_j."""
    eye = torch.eye(n_classes, dtype=dtype)
    return eye[y].unsqueeze(1) - eye.unsqueeze(0)


def margin_lower(
    model: ModelLike,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    method: str = "ibp",
    beta: float = 1.0,
    domain: tuple[float, float] = (0.0, 1.0),
    sound: bool = False,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Lower bounds (B, K) of the margins f_y - f_j over the ball (column y is 0).

    method: "ibp"; "crown-ibp" (beta * CROWN-on-IBP + (1 - beta) * IBP, where the CROWN bound
    is never looser than IBP); "crown" (CROWN with CROWN intermediate bounds; sound use).
    sound=True uses the verdict mode of the engine (float64, margins, no autograd).
    """
    bm, graph = _bounded(model, x)
    lo, hi = _box(x, eps, domain)
    dt = torch.float64 if sound else dtype
    if bm is not None:
        engine = bm.engine(sound, dt, intermediate_crown=(method == "crown"))
    else:
        cfg = (
            BoundConfig(intermediate_crown=(method == "crown"))
            if sound
            else BoundConfig(sound=False, dtype=dt, intermediate_crown=False)
        )
        engine = BoundEngine(graph, cfg)
    cmat = margin_spec(y, graph.n_outputs, dt)
    lo, hi = lo.to(dt), hi.to(dt)
    lb = engine.compute(lo, hi, cmat, method="ibp").lb
    if method in ("crown-ibp", "crown") and (beta > 0 or method == "crown"):
        lb_c = engine.compute(lo, hi, cmat, method="crown").lb
        lb = lb_c if method == "crown" else beta * lb_c + (1 - beta) * lb
    own = F.one_hot(y, graph.n_outputs).to(torch.bool)
    return lb.masked_fill(own, 0.0)


def pgd_attack(
    model: ModelLike,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int = 10,
    domain: tuple[float, float] = (0.0, 1.0),
    seed: int = 0,
    restarts: int = 1,
) -> torch.Tensor:
    """L-inf PGD (random start, signed steps of 2.5 eps / steps) maximising the CE loss.

    Returns adversarial inputs (B, *sample_shape) in the ball and the domain (no gradient);
    with restarts > 1, per input the first restart that misclassifies is kept.
    """
    if eps <= 0 or steps < 1:
        return x.detach()
    gen = torch.Generator().manual_seed(seed)
    lo = (x - eps).clamp(*domain).detach()
    hi = (x + eps).clamp(*domain).detach()
    best = x.detach().clone()
    found = torch.zeros(x.shape[0], dtype=torch.bool)
    step = 2.5 * eps / steps
    for _ in range(restarts):
        adv = lo + (hi - lo) * torch.rand(x.shape, generator=gen, dtype=x.dtype)
        for _ in range(steps):
            adv.requires_grad_(True)
            loss = F.cross_entropy(_forward(model, adv), y)
            (grad,) = torch.autograd.grad(loss, adv)
            adv = torch.min(torch.max(adv.detach() + step * grad.sign(), lo), hi)
        with torch.no_grad():
            wrong = _forward(model, adv).argmax(1) != y
        take = wrong & ~found
        best[take] = adv[take]
        found |= wrong
        if restarts > 1 and bool(found.all()):
            break
    return best.detach()


def robust_loss(
    model: ModelLike,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    norm: str = "linf",
    method: str = "ibp",
    beta: float = 1.0,
    domain: tuple[float, float] = (0.0, 1.0),
    kappa: float = 0.0,
    dtype: torch.dtype = torch.float32,
    pgd_steps: int = 10,
    seed: int = 0,
) -> torch.Tensor:
    """A scalar loss to back-propagate: kappa * CE(f(x), y) + (1 - kappa) * robust CE.

    model: a torch module (traced here; pass a BoundedModule to trace once), or a Graph.
    x: (B, *sample_shape); y: (B,) int64; eps: L-inf radius; domain: valid input range.
    method: "ibp" | "crown-ibp" (beta weights CROWN-IBP against IBP) | "pgd" (CE at a PGD
    adversarial input).  The bounds come from the engine's differentiable mode in ``dtype``.
    """
    _check(x, y, eps, norm, domain)
    if method not in METHODS:
        raise InputError(f"unknown training method '{method}' (expected one of {METHODS})")
    if not 0.0 <= kappa <= 1.0 or not 0.0 <= beta <= 1.0:
        raise InputError(f"kappa and beta must lie in [0, 1], got {kappa} and {beta}")
    clean = F.cross_entropy(_forward(model, x), y) if kappa > 0 else x.new_zeros(())
    if kappa == 1.0:
        return clean
    if method == "pgd":
        adv = pgd_attack(model, x, y, eps, pgd_steps, domain, seed)
        robust = F.cross_entropy(_forward(model, adv), y)
    else:
        lb = margin_lower(model, x, y, eps, method, beta, domain, sound=False, dtype=dtype)
        robust = F.cross_entropy(-lb, y)
    return kappa * clean + (1 - kappa) * robust


def verified_error(
    model: ModelLike,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    norm: str = "linf",
    method: str = "ibp",
    domain: tuple[float, float] = (0.0, 1.0),
) -> float:
    """Fraction of the batch NOT certified by sound bounds (misclassified inputs count).

    method: "ibp" | "crown-ibp" | "crown".  Uses the verdict mode of the engine (float64 with
    safety margins), so a certified input is certified for real (for the float64 model).
    """
    return 1.0 - float(certified(model, x, y, eps, norm, method, domain).float().mean())


def certified(
    model: ModelLike,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    norm: str = "linf",
    method: str = "ibp",
    domain: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """Per input (B,) bool: correctly classified and every margin's sound lower bound > 0."""
    _check(x, y, eps, norm, domain)
    if method not in VERIFY_METHODS:
        raise InputError(f"unknown bound method '{method}' (expected one of {VERIFY_METHODS})")
    with torch.no_grad():
        correct = _forward(model, x).argmax(1) == y
        lb = margin_lower(model, x, y, eps, method, 1.0, domain, sound=True)
        own = F.one_hot(y, lb.shape[1]).to(torch.bool)
        ok = (lb > 0) | own
    return correct & ok.all(1)


def unstable_relus(
    model: ModelLike, x: torch.Tensor, eps: float, domain: tuple[float, float] = (0.0, 1.0)
) -> torch.Tensor:
    """Per input (B,) the number of ReLUs whose input bounds (sound CROWN) straddle zero."""
    bm, graph = _bounded(model, x)
    lo, hi = _box(x, eps, domain)
    engine: Any = bm.engine(True, torch.float64, True) if bm is not None else BoundEngine(graph)
    with torch.no_grad():
        res = engine.compute(
            lo.double(),
            hi.double(),
            torch.eye(graph.n_outputs, dtype=torch.float64),
            method="crown",
        )
    count = torch.zeros(x.shape[0], dtype=torch.int64)
    for node in graph.nodes:
        if isinstance(node.op, Relu):
            plo, phi = res.pre[node.inputs[0]]
            count += ((plo < 0) & (phi > 0)).sum(1)
    return count

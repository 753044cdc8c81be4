"""One robustness question: a network, a centre, its label and the domain; shared helpers.

Everything here is shared by the radius search, ball verification and ``certify``: the unsafe
polytopes ("class j scores at least class k"), replay of adversarial examples in the ORIGINAL
ONNX model (``verdict.confirm``), a PGD attack over L-inf boxes (its adversarial examples give an
upper bound in every norm), and the bound engine's certified radius (bisection over CROWN on the
ball, a proven lower bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..attack import pgd
from ..bounds import BoundEngine
from ..bounds.input_sets import NORMS, Ball, norm_distance
from ..config import AttackConfig, Deadline
from ..errors import InputError
from ..graph import Graph
from ..verdict import Replayer, check_graph_against_model, confirm
from ..vnnlib.property_types import Case, Polytope


@dataclass
class Problem:
    """A network with one input: centre (n,), label k, domain box, replayer (built once)."""

    graph: Graph
    center: np.ndarray
    label: int
    lower: np.ndarray
    upper: np.ndarray
    replayer: Replayer
    prediction: int

    def polytopes(self) -> tuple[Polytope, ...]:
        """One unsafe polytope per other class j: y_k - y_j <= 0."""
        n_out = self.graph.n_outputs
        out = []
        for j in range(n_out):
            if j != self.label:
                row = np.zeros((1, n_out))
                row[0, self.label], row[0, j] = 1.0, -1.0
                out.append(Polytope(row, np.zeros(1)))
        return tuple(out)

    def other_classes(self) -> list[int]:
        """Every class but the label."""
        return [j for j in range(self.graph.n_outputs) if j != self.label]

    def ball(self, eps: float, norm: str) -> Ball:
        """The ball of radius eps around the centre, intersected with the domain."""
        return Ball(self.center, eps, norm, self.lower, self.upper)

    def replay(self, x: np.ndarray) -> np.ndarray | None:
        """x cast to the model's dtype inside the domain if the ONNX model misclassifies it."""
        case = Case(self.lower, self.upper, self.polytopes())
        cex = confirm(self.replayer, np.asarray(x, dtype=np.float64).reshape(-1), case)
        if cex is None:
            return None
        return np.asarray(cex.input, dtype=np.float64).reshape(-1)

    def distance(self, x: np.ndarray, norm: str) -> float:
        """Distance of a flat input from the centre."""
        return norm_distance(np.asarray(x, dtype=np.float64).reshape(-1) - self.center, norm)

    def replay_towards(self, x: np.ndarray) -> np.ndarray | None:
        """Replay x, or points slightly beyond it on the ray from the centre (boundary points)."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        # solver tolerances leave features that should not move off the centre by ~1e-7
        x = np.where(np.abs(x - self.center) <= 1e-6 * (1.0 + np.abs(self.center)), self.center, x)
        for s in (0.0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2):
            cand = np.clip(self.center + (x - self.center) * (1.0 + s), self.lower, self.upper)
            hit = self.replay(cand)
            if hit is not None:
                return hit
        return None


def make_problem(
    graph: Graph,
    x: np.ndarray,
    label: int | None,
    domain: tuple[float, float] | tuple[np.ndarray, np.ndarray] | None,
    default_halfwidth: float = 1.0,
) -> Problem:
    """Check x against the network and build the Problem (domain None: x +- default_halfwidth)."""
    center = np.asarray(x, dtype=np.float64).reshape(-1)
    if center.size != graph.n_inputs:
        raise InputError(
            f"input has {center.size} values, network '{graph.source}' expects {graph.n_inputs}"
        )
    if domain is None:
        lo, hi = center - default_halfwidth, center + default_halfwidth
    else:
        lo = np.broadcast_to(np.asarray(domain[0], dtype=np.float64), center.shape).copy()
        hi = np.broadcast_to(np.asarray(domain[1], dtype=np.float64), center.shape).copy()
    if np.any(center < lo) or np.any(center > hi):
        raise InputError("input lies outside the domain box (--domain LO HI)")
    replayer = Replayer(graph.onnx_model)  # type: ignore[arg-type]
    # the model sees inputs in its own dtype: distances are measured from the centre it sees
    center = center.astype(replayer.dtype).astype(np.float64)
    check_graph_against_model(graph, replayer, lo, hi, 6, np.random.default_rng(0))
    y = replayer.run(center.astype(replayer.dtype)).astype(np.float64).reshape(-1)
    pred = int(np.argmax(y))
    k = pred if label is None else int(label)
    if not 0 <= k < graph.n_outputs:
        raise InputError(f"label {k} is not a class of a network with {graph.n_outputs} outputs")
    return Problem(graph, center, k, lo, hi, replayer, pred)


def check_norm(norm: str) -> str:
    """The norm name, or InputError."""
    if norm not in NORMS:
        raise InputError(f"unknown norm '{norm}' (choose from {', '.join(NORMS)})")
    return norm


def attack_radius(
    prob: Problem, r_max: float, deadline: Deadline, seed: int = 0, steps: int = 12
) -> np.ndarray | None:
    """Smallest-ish replayed adversarial example found by PGD over L-inf boxes, bisecting r.

    Returns a flat input (replayed) or None.  Only an upper-bound witness: never a proof.
    """
    rng = np.random.default_rng(seed)
    cfg = AttackConfig(restarts=8, steps=30)
    polys = prob.polytopes()
    best = None
    lo_r, hi_r = 0.0, r_max

    def try_r(r: float) -> np.ndarray | None:
        lo = np.maximum(prob.lower, prob.center - r)
        hi = np.minimum(prob.upper, prob.center + r)
        for cand in pgd(prob.graph, lo, hi, polys, cfg, deadline, rng)[:2]:
            hit = prob.replay(cand)
            if hit is not None:
                return hit
        return None

    if prob.prediction != prob.label:
        return prob.replay(prob.center)
    best = try_r(r_max)
    if best is None:
        return None
    hi_r = prob.distance(best, "linf")
    for _ in range(steps):
        if deadline.expired() or hi_r - lo_r <= 1e-4 * max(hi_r, 1e-3):
            break
        mid = (lo_r + hi_r) / 2
        hit = try_r(mid)
        if hit is None:
            lo_r = mid
        else:
            best, hi_r = hit, prob.distance(hit, "linf")
    return best


def crown_certified(
    prob: Problem, ball: Ball, method: str = "crown", engine: BoundEngine | None = None
) -> tuple[bool, dict, list[int]]:
    """Whether the bound engine proves every j: y_k - y_j > 0 on the ball; its pre bounds; the
    classes j it proves."""
    graph = prob.graph
    engine = engine or BoundEngine(graph)
    engine.input_set = ball
    lo, hi = ball.box()
    C = np.stack([p.C[0] for p in prob.polytopes()])
    try:
        res = engine.compute(
            torch.as_tensor(lo)[None], torch.as_tensor(hi)[None], torch.as_tensor(C), method=method
        )
    finally:
        engine.input_set = None
    pre = {k: (v[0][0].numpy(), v[1][0].numpy()) for k, v in res.pre.items()}
    lb = res.lb[0].numpy()
    proven = [j for j, v in zip(prob.other_classes(), lb.tolist()) if math.isfinite(v) and v > 0]
    return len(proven) == len(lb), pre, proven


def crown_radius(
    prob: Problem, norm: str, r_max: float, deadline: Deadline, steps: int = 14
) -> float:
    """Largest radius (to a bisection tolerance) the bound engine certifies; a proven lower
    bound."""
    if prob.prediction != prob.label:
        return 0.0
    engine = BoundEngine(prob.graph)
    lo_r, hi_r = 0.0, r_max
    if norm == "l0":
        k = 0
        while k + 1 <= r_max and not deadline.expired():
            if not crown_certified(prob, prob.ball(k + 1, norm), engine=engine)[0]:
                break
            k += 1
        return float(min(k + 1, r_max))  # no example changes k features: at least k + 1
    if crown_certified(prob, prob.ball(r_max, norm), engine=engine)[0]:
        return r_max
    for _ in range(steps):
        if deadline.expired():
            break
        mid = (lo_r + hi_r) / 2
        if crown_certified(prob, prob.ball(mid, norm), engine=engine)[0]:
            lo_r = mid
        else:
            hi_r = mid
    return lo_r


def default_max_radius(prob: Problem, norm: str) -> float:
    """The largest distance inside the domain box from the centre (l0: the number of inputs)."""
    room = np.maximum(prob.center - prob.lower, prob.upper - prob.center)
    if norm == "linf":
        return float(room.max())
    if norm == "l1":
        return float(room.sum())
    if norm == "l2":
        return float(math.sqrt(float(room @ room)))
    return float(prob.center.size)


def _margins(prob: Problem, xs: np.ndarray) -> np.ndarray:
    """(B,) max_j y_j - y_k on the project's graph (float64); >= 0 looks adversarial."""
    with torch.no_grad():
        out = prob.graph.forward(torch.as_tensor(xs).reshape((-1,) + prob.graph.input_shape))
    y = out.reshape(len(xs), -1).numpy()
    others = np.delete(y, prob.label, axis=1)
    return others.max(axis=1) - y[:, prob.label]


def shrink(prob: Problem, adv: np.ndarray, norm: str) -> np.ndarray:
    """A replayed example at most as far as adv in ``norm``: sparsified (l0/l1) and pulled in.

    Never a proof: every point returned passed the ONNX replay (else adv comes back).
    """
    c = prob.center
    best = adv
    delta = adv - c
    if norm in ("l0", "l1"):
        order = np.argsort(np.abs(delta))  # reset the smallest changes to the centre first
        n = delta.size
        masks = np.ones((n + 1, n))
        for m in range(1, n + 1):
            masks[m] = masks[m - 1]
            masks[m, order[m - 1]] = 0.0
        cands = c + masks * delta
        ok = np.flatnonzero(_margins(prob, cands) >= 0)
        for m in ok[::-1][:3]:
            hit = prob.replay(cands[m])
            if hit is not None and prob.distance(hit, norm) <= prob.distance(best, norm):
                best = hit
                break
    if norm != "l0":  # the closest point on the segment from the centre
        ts = np.linspace(0.0, 1.0, 65)[1:]
        cands = c + ts[:, None] * (best - c)
        ok = np.flatnonzero(_margins(prob, cands) >= 0)
        for i in ok[:3]:
            hit = prob.replay_towards(cands[i])
            if hit is not None and prob.distance(hit, norm) <= prob.distance(best, norm):
                best = hit
                break
    return best


def l2_attack(
    prob: Problem, eps: float, deadline: Deadline, steps: int = 40, restarts: int = 4, seed: int = 0
) -> np.ndarray | None:
    """PGD in the L2 ball of radius eps ∩ domain (normalised gradient steps); replayed or None."""
    rng = np.random.default_rng(seed)
    c = torch.as_tensor(prob.center)
    lo, hi = torch.as_tensor(prob.lower), torch.as_tensor(prob.upper)
    n = c.numel()
    d = torch.as_tensor(rng.normal(size=(restarts, n)) * eps / (4 * np.sqrt(n)))
    shape = (-1,) + prob.graph.input_shape
    k = prob.label
    for it in range(steps):
        if deadline.expired():
            break
        d = d.detach().requires_grad_(True)
        y = prob.graph.forward((c + d).reshape(shape)).reshape(restarts, -1)
        others = torch.cat([y[:, :k], y[:, k + 1 :]], 1)
        loss = (y[:, k] - others.max(1).values).sum()
        (g,) = torch.autograd.grad(loss, d)
        with torch.no_grad():
            step = 2.5 * eps / steps * (1 - it / (steps + 1))
            d = d - step * g / g.norm(dim=1, keepdim=True).clamp(min=1e-12)
            d = torch.minimum(torch.maximum(c + d, lo), hi) - c
            d = d * (eps / d.norm(dim=1, keepdim=True).clamp(min=eps)).clamp(max=1.0)
    xs = (c + d.detach()).numpy()
    for i in np.argsort(-_margins(prob, xs))[:2]:
        hit = prob.replay(xs[i])
        if hit is not None:
            return hit
    return None


def greedy_attack(prob: Problem, deadline: Deadline, max_changes: int = 200) -> np.ndarray | None:
    """Greedy few-feature attack: each step moves the one feature to the domain end that raises
    max_j y_j - y_k most (all candidates scored in one batch).  Replayed example or None."""
    x = prob.center.copy()
    n = x.size
    changed = np.zeros(n, dtype=bool)
    for _ in range(min(max_changes, n)):
        if deadline.expired():
            return None
        cands = np.repeat(x[None], 2 * n, axis=0)
        idx = np.arange(n)
        cands[idx, idx] = prob.lower
        cands[n + idx, idx] = prob.upper
        m = _margins(prob, cands)
        m[np.r_[changed, changed]] = -np.inf
        best = int(np.argmax(m))
        x = cands[best]
        changed[best % n] = True
        if m[best] >= 0:
            hit = prob.replay(x)
            if hit is not None:
                return hit
    return None

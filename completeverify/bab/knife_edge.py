"""Knife-edge MILP candidates: turn a candidate that fails the zero-tolerance replay into one
that passes, or keep searching until the deadline.

The MILP works in real arithmetic with solver tolerances; the replay runs the ONNX model in its
own float type (float32 for almost every benchmark).  When the violation region is thinner
than the float32 spacing around the candidate, or the solver's tolerances times big-M
constants put the candidate in the wrong activation pattern, the candidate itself fails the
replay although a float32 point nearby may pass.  ``repair_candidate`` tries, in order:

1. the float grid: the candidate cast to the model's float type, then walked along the
   descent direction of the violation one, 2, 4, ... 4096 units in the last place, each
   point judged by the replay itself (the exact float32 forward pass of the model);
2. the activation pattern: with every ReLU fixed to its state at the candidate, the network is
   affine in x (maps obtained by one batched forward pass with the masks), and an LP finds
   the point of that pattern's violation region farthest from its boundary (each row
   rescaled to unit norm, so badly conditioned rows neither dominate nor vanish); that point,
   and its float-grid walk, are replayed.

A ``sat`` still comes only from ``verdict.confirm``; nothing here can make a verdict wrong.
``bab/keep_searching.py`` is what the pipeline does when the first search ends open before the
deadline (a candidate that no repair confirms and a MILP that proves nothing): branch and
bound again, without hand-offs to the MILP, so that only sound bounds (whose margin is 1e-9
relative, against the MILP's 1e-5) or a replayed point can end it.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..graph import Graph, MaxPool, Relu
from ..verdict import Counterexample, confirm

log = logging.getLogger(__name__)

WALK_STEPS = 13  # float-grid walk: 1, 2, 4, ... 2**12 units in the last place
LP_MAX_ENTRIES = 20_000_000  # n_in x (neurons + outputs) above this: no pattern LP (memory)
LP_SECONDS = 5.0  # at most this (and a fifth of the time left) per pattern LP


def _margin(graph: Graph, x: torch.Tensor, polys) -> torch.Tensor:
    """min over polytopes of max over rows of (C y - d) at flat inputs x (K, n) -> (K,)."""
    y = graph.forward(x.reshape((x.shape[0],) + graph.input_shape)).reshape(x.shape[0], -1)
    vals = [
        (y @ torch.as_tensor(p.C, dtype=y.dtype).T - torch.as_tensor(p.d, dtype=y.dtype)).amax(1)
        for p in polys
        if p.C.shape[0] > 0
    ]
    return torch.stack(vals, 1).amin(1)


def grid_walk(run, case_index: int, x: np.ndarray) -> Counterexample | None:
    """Replay x cast to the model's float type, then walk it down the violation's gradient on
    the float grid (1, 2, 4, ... ulps); the first replay-confirmed point, or None."""
    case = run.prop.cases[case_index]
    graph, replayer = run.graph, run.replayer
    x = np.clip(np.asarray(x, dtype=np.float64).reshape(-1), case.lower, case.upper)
    cex = confirm(replayer, x, case, case_index)
    if cex is not None:
        return cex
    base = replayer.cast_into_box(x, case.lower, case.upper).astype(np.float64)
    ulp = np.spacing(np.abs(base).astype(replayer.dtype)).astype(np.float64)
    for direction in _directions(graph, x, case.polytopes):
        for k in range(WALK_STEPS):
            for sign in (1.0, -1.0):  # at a kink of the max the descent side is a guess
                if run.deadline.expired():
                    return None
                cex = confirm(
                    replayer, base + sign * direction * ulp * float(2**k), case, case_index
                )
                if cex is not None:
                    return cex
    return None


def _directions(graph: Graph, x: np.ndarray, polys) -> list[np.ndarray]:
    """Sign vectors to walk along: down the violation's gradient, then (where rows tie and that
    gradient cancels, as at the centre of a thin region) along each row's own gradient."""
    xt = torch.as_tensor(x, dtype=torch.float64)[None].requires_grad_(True)
    y = graph.forward(xt.reshape((1,) + graph.input_shape)).reshape(-1)
    grads = [torch.autograd.grad(_margin(graph, xt, polys).sum(), xt, retain_graph=True)[0][0]]
    for p in polys[:4]:
        for r in range(min(4, p.C.shape[0])):
            row = (torch.as_tensor(p.C[r], dtype=y.dtype) * y).sum()
            grads.append(torch.autograd.grad(row, xt, retain_graph=True)[0][0])
    out: list[np.ndarray] = []
    for g in grads:
        dvec = -np.sign(g.detach().cpu().numpy())
        if np.any(dvec) and not any(
            np.array_equal(dvec, o) or np.array_equal(-dvec, o) for o in out
        ):
            out.append(dvec)
    return out


def _masked_values(
    graph: Graph, x: torch.Tensor, masks: dict[int, torch.Tensor]
) -> list[torch.Tensor]:
    """Node values (B, size) with each Relu i replaced by multiplication with masks[i] (size,)."""
    params = graph.params(x.dtype)
    vals: list[torch.Tensor] = [x]
    for i, node in enumerate(graph.nodes[1:], start=1):
        if i in masks:
            out = vals[node.inputs[0]] * masks[i]
        else:
            out = node.op.forward(params[i], *(vals[j] for j in node.inputs))
        vals.append(out.reshape(out.shape[0], -1))
    return vals


def affine_maps(
    graph: Graph, x: np.ndarray
) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], dict]:
    """The network with every ReLU fixed to its state at x, as affine maps of the input.

    Returns ({relu node: (J (size, n), c (size,)) of its input}, {"out": (J (n_out, n), c)},
    plus "masks").  Values are exact up to float64 rounding of one batched forward pass.
    """
    n = graph.n_inputs
    xt = torch.as_tensor(np.asarray(x, dtype=np.float64).reshape(1, n))
    with torch.no_grad():
        vals = graph.forward_all(xt.reshape((1,) + graph.input_shape))
        masks = {
            i: (vals[node.inputs[0]][0] > 0).to(torch.float64)
            for i, node in enumerate(graph.nodes)
            if isinstance(node.op, Relu)
        }
        basis = torch.cat(
            [torch.zeros(1, n, dtype=torch.float64), torch.eye(n, dtype=torch.float64)]
        )
        mv = _masked_values(
            graph, basis.reshape((n + 1,) + graph.input_shape).reshape(n + 1, -1), masks
        )
    maps = {}
    for i in masks:
        v = mv[graph.nodes[i].inputs[0]]
        maps[i] = ((v[1:] - v[0]).T.cpu().numpy(), v[0].cpu().numpy())
    out = mv[-1]
    return maps, {"out": ((out[1:] - out[0]).T.cpu().numpy(), out[0].cpu().numpy()), "masks": masks}


def pattern_lp_point(
    graph: Graph,
    lower: np.ndarray,
    upper: np.ndarray,
    poly,
    x: np.ndarray,
    solver_name: str = "highs",
    time_limit: float = 10.0,
) -> np.ndarray | None:
    """The point of x's activation pattern where C y <= d holds with the largest slack s.

    LP: maximise s over (x, s) in box x [-1, 1] subject to, with every row scaled to unit norm,
    sign_i (J_i x + c_i) >= s for the ReLU inputs that change sign over the box and
    C_r (J x + c) - d_r <= -s for the rows of poly.  Returns x (n,) when s > 0, else None.
    """
    from ..solvers import MilpProgram, SolveLimits, SolveStatus, get_solver

    if any(isinstance(nd.op, MaxPool) for nd in graph.nodes):
        return None
    total = sum(nd.size for nd in graph.nodes if isinstance(nd.op, Relu)) + graph.n_outputs
    if graph.n_inputs * total > LP_MAX_ENTRIES:
        return None
    maps, extra = affine_maps(graph, x)
    masks = extra["masks"]
    rows, rhs = [], []
    lo, hi = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    for i, (J, c) in maps.items():
        sign = np.where(masks[i].cpu().numpy() > 0, 1.0, -1.0)
        a, b = sign[:, None] * J, sign * c  # need a x + b >= s
        span_lo = b + np.minimum(a * lo, a * hi).sum(1)
        keep = span_lo <= 0  # rows that can fail somewhere in the box
        rows.append(-a[keep])
        rhs.append(b[keep])  # -a x + s <= b
    Jy, cy = extra["out"]
    C, d = np.asarray(poly.C, np.float64), np.asarray(poly.d, np.float64)
    rows.append(C @ Jy)
    rhs.append(d - C @ cy)  # C J x + s <= d - C c
    A = np.concatenate(rows)
    r = np.concatenate(rhs)
    norm = np.linalg.norm(A, axis=1)
    if np.any((norm == 0) & (r < 0)):
        return None  # a constant row that fails: this pattern has no violation
    ok = norm > 0
    A, r, norm = A[ok] / norm[ok, None], r[ok] / norm[ok], norm[ok]
    m, n = A.shape
    full = np.concatenate([A, np.ones((m, 1))], 1)
    ri, ci = np.nonzero(full)
    prog = MilpProgram(
        c=np.append(np.zeros(n), -1.0),
        col_lower=np.append(lo, -1.0),
        col_upper=np.append(hi, 1.0),
        A_rows=ri,
        A_cols=ci,
        A_vals=full[ri, ci],
        row_lower=np.full(m, -np.inf),
        row_upper=r,
        integrality=np.zeros(n + 1, bool),
    )
    res = get_solver(solver_name).solve(prog, SolveLimits(time_limit=max(0.05, time_limit)))
    if res.status != SolveStatus.OPTIMAL or res.x is None or not res.x[n] > 0:
        return None
    return np.clip(res.x[:n], lo, hi)


def repair_candidate(run, case_index: int, x: np.ndarray, polys=None) -> Counterexample | None:
    """A replay-confirmed counterexample near the failed candidate x (see module doc), or None."""
    case = run.prop.cases[case_index]
    cex = grid_walk(run, case_index, x)
    if cex is not None:
        run.stats["knife_edge_repaired"] = run.stats.get("knife_edge_repaired", 0) + 1
    if cex is not None or run.deadline.expired():
        return cex
    for poly in polys or case.polytopes:
        if poly.C.shape[0] == 0:
            continue
        try:
            p = pattern_lp_point(
                run.graph,
                case.lower,
                case.upper,
                poly,
                x,
                run.config.solver,
                min(LP_SECONDS, 0.2 * run.deadline.remaining()),
            )
        except Exception as err:  # noqa: BLE001 - a failed repair is only a missed chance
            log.info("knife edge: pattern LP failed (%s)", err)
            p = None
        if p is not None:
            cex = grid_walk(run, case_index, p)
            if cex is not None:
                run.stats["knife_edge_repaired"] = run.stats.get("knife_edge_repaired", 0) + 1
                return cex
    return None

"""MILP- and LP-refined intermediate bounds (issue 3 item 4, issue 5 item 4).

For the first few ReLU layers, each unstable neuron's pre-activation is minimised and maximised
over the LP relaxation (big-M rows with integrality dropped: the triangle relaxation) or over the
exact MILP of the network prefix that ends at that layer, built by ``encoder.encode`` from the
bounds tightened so far.

Soundness.  The prefix program contains every real behaviour of the network on the box (its
big-M constants come from sound, widened bounds), so its LP relaxation does too.  An LP bound is
never the solver's objective: it is ``safe_lp_lower_bound(program, row_duals)``, weak Lagrangian
duality evaluated with a float-rounding allowance, valid for ANY row multipliers; it needs finite
column bounds, so every affine column of the prefix is boxed by interval propagation (widened).
A MILP bound is HiGHS's proven dual bound less a margin ``1e-6 * (1 + |b|)``, taken only from a
solve that finished (optimal) or that the sign test stopped; a time limit, an error, an
unbounded or infeasible answer leaves the bound as it was.  The result is always intersected
with the input bounds, so nothing is ever loosened.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ..bounds import BoundEngine
from ..bounds.interval import IBP
from ..bounds.pre import PreBounds
from ..config import Deadline
from ..errors import InternalError, ModelError
from ..graph import Add, Conv, Graph, Input, Linear, Scale
from ..solvers import (
    HighsLpSession,
    MilpProgram,
    SolveLimits,
    SolveStatus,
    get_solver,
    safe_lp_lower_bound,
)
from .encoder import encode
from .intervals import widen

logger = logging.getLogger(__name__)

MILP_REL_GAP = 1e-6
MILP_ABS_GAP = 1e-7
MILP_MARGIN = 1e-6
_AFFINE = (Linear, Conv, Scale, Add)
_MIN_SOLVE_SECONDS = 0.01


@dataclass
class LayerStats:
    """What tightening one ReLU layer did (for logs and benchmarks)."""

    node: int  # index of the pre-activation node
    size: int
    unstable_before: int
    unstable_after: int
    lp_solves: int = 0
    milp_solves: int = 0
    improved: int = 0  # neuron sides whose bound moved
    seconds: float = 0.0
    complete: bool = True  # False when the deadline stopped the layer early


def relu_layers(graph: Graph) -> list[int]:
    """Indices of the nodes feeding a splittable (ReLU-like) op, each once, in topological order."""
    seen: list[int] = []
    for node in graph.nodes:
        if node.op.caps.splittable and node.inputs[0] not in seen:
            seen.append(node.inputs[0])
    return seen


def _flat_pre(graph: Graph, pre: dict) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """A fresh copy of pre as flat float64 numpy arrays, sizes checked."""
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for j, (lo, hi) in pre.items():
        lo_a = np.array(np.asarray(lo, dtype=np.float64), dtype=np.float64, copy=True).reshape(-1)
        hi_a = np.array(np.asarray(hi, dtype=np.float64), dtype=np.float64, copy=True).reshape(-1)
        size = graph.nodes[j].size
        if lo_a.size != size or hi_a.size != size:
            raise InternalError(
                f"pre bounds of node {j} have {lo_a.size}/{hi_a.size} entries, expected {size}"
            )
        out[j] = (lo_a, hi_a)
    return out


def _fixed_by_split(graph: Graph, j: int, splits: dict) -> np.ndarray:
    """Mask of the neurons of pre node j whose sign a split fixes."""
    mask = np.zeros(graph.nodes[j].size, dtype=bool)
    for r, s in splits.items():
        if graph.nodes[r].inputs[0] == j:
            mask |= np.asarray(s).reshape(-1) != 0
    return mask


def _interval_boxes(
    engine: BoundEngine, upto: int, lower: np.ndarray, upper: np.ndarray, pre: dict, splits: dict
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sound interval bounds of nodes 0..upto: IBP intersected with pre and split signs."""
    cfg = engine.config
    signs: dict[int, list[np.ndarray]] = {}
    for r, s in splits.items():
        signs.setdefault(engine.nodes[r].inputs[0], []).append(np.asarray(s).reshape(-1))
    boxes: list[tuple[torch.Tensor, torch.Tensor]] = []
    with torch.no_grad():
        for i, node in enumerate(engine.nodes[: upto + 1]):
            if isinstance(node.op, Input):
                box = (torch.as_tensor(lower).reshape(1, -1), torch.as_tensor(upper).reshape(1, -1))
            else:
                ins = [boxes[k] for k in node.inputs]
                box = IBP[type(node.op)](
                    node.op, engine.params[i], engine.aux[i], ins, cfg.float_rel, cfg.float_abs
                )
            lo, hi = box
            if i in pre:
                lo = torch.maximum(lo, torch.as_tensor(pre[i][0]).reshape(1, -1))
                hi = torch.minimum(hi, torch.as_tensor(pre[i][1]).reshape(1, -1))
            for s in signs.get(i, []):
                st = torch.as_tensor(s).reshape(1, -1)
                lo = torch.where(st > 0, lo.clamp(min=0.0), lo)
                hi = torch.where(st < 0, hi.clamp(max=0.0), hi)
            boxes.append((lo, hi))
    return [(lo[0].cpu().numpy(), hi[0].cpu().numpy()) for lo, hi in boxes]


@dataclass
class _Prefix:
    """The MILP of the network up to one node, with every column bounded."""

    program: MilpProgram  # zero objective, integrality kept
    target_cols: np.ndarray  # columns of the target node's flat value


def _prefix_program(
    graph: Graph,
    engine: BoundEngine,
    j: int,
    lower: np.ndarray,
    upper: np.ndarray,
    pre: dict,
    splits: dict,
    widening: float,
) -> _Prefix:
    """Encode nodes 0..j and box every affine column by widened interval bounds."""
    sub = graph.with_nodes(graph.nodes[: j + 1])
    sub_pre = {k: v for k, v in pre.items() if k <= j}
    sub_splits = {k: v for k, v in splits.items() if k <= j}
    size = graph.nodes[j].size
    enc = encode(
        sub,
        lower,
        upper,
        sub_pre,
        np.zeros((1, size)),
        np.zeros(1),
        splits=sub_splits,
        widening=widening,
    )
    prog = enc.program
    assert enc.node_cols is not None
    col_lo, col_hi = prog.col_lower.copy(), prog.col_upper.copy()
    col_lo[enc.t_col] = col_hi[enc.t_col] = 0.0  # the unused objective column t (row: -t <= 0)
    boxes = _interval_boxes(engine, j, lower, upper, pre, splits)
    for i, node in enumerate(graph.nodes[: j + 1]):
        if isinstance(node.op, _AFFINE):
            blo, bhi = widen(boxes[i][0], boxes[i][1], widening)
            cols = enc.node_cols[i]
            col_lo[cols] = np.maximum(col_lo[cols], np.where(np.isnan(blo), -np.inf, blo))
            col_hi[cols] = np.minimum(col_hi[cols], np.where(np.isnan(bhi), np.inf, bhi))
    if np.any(col_lo > col_hi):
        raise ValueError("empty column bounds in the prefix program")
    program = dataclasses.replace(
        prog, c=np.zeros(prog.num_cols()), col_lower=col_lo, col_upper=col_hi
    )
    return _Prefix(program, np.asarray(enc.node_cols[j], dtype=np.int64))


class _LpSession:
    """LP relaxation of one prefix program; solves min sign * x_col, rigorous bounds from duals.

    With reuse, one HiGHS model (``solvers.HighsLpSession``) lives for the whole layer and only
    two cost entries change between solves, so each solve warm-starts from the previous basis.
    """

    def __init__(self, program: MilpProgram, reuse: bool) -> None:
        """Drop integrality; the model is built on first use."""
        self.program = dataclasses.replace(
            program, integrality=np.zeros(program.num_cols(), dtype=bool)
        )
        self.reuse = reuse
        self.session = HighsLpSession(self.program) if reuse else None

    def _duals(self, col: int, sign: float, time_limit: float) -> np.ndarray | None:
        """Row duals of an optimal solve of min sign * x_col, or None."""
        if self.session is None:
            prog = self.with_cost(col, sign)
            res = get_solver("highs").solve(prog, SolveLimits(time_limit=time_limit))
            return res.row_duals if res.status == SolveStatus.OPTIMAL else None
        return self.session.row_duals_of_min(col, sign, time_limit)

    def with_cost(self, col: int, sign: float) -> MilpProgram:
        """The LP with objective sign * x_col."""
        c = np.zeros(self.program.num_cols())
        c[col] = sign
        return dataclasses.replace(self.program, c=c)

    def lower_bound(self, col: int, sign: float, time_limit: float) -> float:
        """A rigorous lower bound on min sign * x_col over the LP (-inf when none was proven)."""
        try:
            duals = self._duals(col, sign, time_limit)
        except Exception as exc:  # noqa: BLE001 - a failed solve proves nothing and loosens nothing
            logger.warning("tightening LP failed: %s: %s", type(exc).__name__, exc)
            if self.session is not None:
                self.session.reset()
            return -math.inf
        if duals is None or not np.all(np.isfinite(duals)):
            return -math.inf
        return safe_lp_lower_bound(self.with_cost(col, sign), duals)


def _milp_lower_bound(
    program: MilpProgram, col: int, sign: float, time_limit: float, early_unstable: bool
) -> float:
    """A lower bound on min sign * x_col over the MILP from HiGHS's proven dual bound (-inf if
    none)."""
    c = np.zeros(program.num_cols())
    c[col] = sign
    limits = SolveLimits(
        time_limit=time_limit,
        stop_above=0.0,
        stop_below=0.0 if early_unstable else None,
        mip_rel_gap=MILP_REL_GAP,
        mip_abs_gap=MILP_ABS_GAP,
    )
    res = get_solver("highs").solve(dataclasses.replace(program, c=c), limits)
    if not (res.status == SolveStatus.OPTIMAL or res.stopped_early):
        return -math.inf
    b = res.dual_bound
    if b is None or not math.isfinite(b):
        return -math.inf
    return b - MILP_MARGIN * (1.0 + abs(b))


def _budget(deadline: Any, per_solve: float) -> float:
    """Seconds for the next solve: per_solve capped by the deadline (0 when it has passed)."""
    if deadline is None:
        return per_solve
    if deadline.expired():
        return 0.0
    return min(per_solve, deadline.remaining())


def tighten_bounds(
    graph: Graph,
    lower: np.ndarray,
    upper: np.ndarray,
    pre: PreBounds,
    layers: int = 1,
    relax: Literal["lp", "milp"] = "lp",
    deadline: Deadline | None = None,
    time_per_neuron: float = 1.0,
    splits: dict[int, np.ndarray] | None = None,
    *,
    reuse: bool = True,
    early_unstable: bool = False,
    widening: float = 1e-7,
    stats: list[LayerStats] | None = None,
) -> PreBounds:
    """A new pre dict (flat float64 numpy arrays) whose first ``layers`` ReLU layers are
    LP/MILP-tightened.

    relax: "lp" (big-M rows, integrality dropped) or "milp" (LP first, then the exact MILP for
    neurons the LP leaves unstable).  Only unstable neurons whose sign no split fixes are solved;
    the max side is skipped once the min side proves the neuron active.  time_per_neuron caps
    each side's solves; deadline (config.Deadline) stops the whole run.  splits: {relu node
    index: (size,) of +1/-1/0} as for encode; the bounds returned then hold on that domain only.
    reuse: keep one HiGHS LP per layer and change only the objective.  early_unstable: also
    stop a MILP as soon as a point on the wrong side of 0 is found (faster, looser).  stats:
    a list that receives one LayerStats per layer visited.
    """
    if relax not in ("lp", "milp"):
        raise ValueError(f"relax must be 'lp' or 'milp', got {relax!r}")
    lower = np.asarray(lower, dtype=np.float64).reshape(-1)
    upper = np.asarray(upper, dtype=np.float64).reshape(-1)
    splits = splits or {}
    orig = _flat_pre(graph, pre)
    cur = _flat_pre(graph, pre)
    targets = [j for j in relu_layers(graph) if j != 0][: max(0, int(layers))]
    if not targets:
        return cur
    engine = BoundEngine(graph)
    for j in targets:
        t0 = time.perf_counter()
        lo, hi = cur[j]
        todo = np.nonzero((lo < 0) & (hi > 0) & ~_fixed_by_split(graph, j, splits))[0]
        st = LayerStats(j, lo.size, int(np.sum((lo < 0) & (hi > 0))), 0)
        if stats is not None:
            stats.append(st)
        if todo.size and _budget(deadline, 1.0) <= 0:
            st.complete = False
            st.unstable_after = st.unstable_before
            break
        if todo.size:
            try:
                prefix = _prefix_program(graph, engine, j, lower, upper, cur, splits, widening)
            except ValueError as exc:  # contradictory bounds: an empty domain; keep what we have
                logger.info("tighten: node %d not tightened: %s", j, exc)
                st.unstable_after = st.unstable_before
                break
            except ModelError as exc:  # the prefix is not piecewise linear
                logger.info("tighten: node %d not tightened: %s", j, exc)
                st.unstable_after = st.unstable_before
                break
            st.complete = _tighten_layer(
                prefix, lo, hi, todo, relax, deadline, time_per_neuron, reuse, early_unstable, st
            )
        # never loosen: intersect with the caller's bounds
        olo, ohi = orig[j]
        cur[j] = (np.maximum(olo, lo), np.minimum(ohi, hi))
        st.unstable_after = int(np.sum((cur[j][0] < 0) & (cur[j][1] > 0)))
        st.seconds = time.perf_counter() - t0
        logger.info(
            "tighten %s: node %d: %d -> %d unstable of %d in %.2fs (%d LP, %d MILP solves)",
            relax,
            j,
            st.unstable_before,
            st.unstable_after,
            st.size,
            st.seconds,
            st.lp_solves,
            st.milp_solves,
        )
        if not st.complete:
            break
    return cur


def _tighten_layer(
    prefix: _Prefix,
    lo: np.ndarray,
    hi: np.ndarray,
    todo: np.ndarray,
    relax: str,
    deadline: Any,
    time_per_neuron: float,
    reuse: bool,
    early_unstable: bool,
    st: LayerStats,
) -> bool:
    """Tighten lo/hi in place for the neurons todo; False when the deadline cut it short."""
    lp = _LpSession(prefix.program, reuse)
    use_milp = relax == "milp" and prefix.program.is_mip()
    for k in todo:
        col = int(prefix.target_cols[k])
        for sign in (1.0, -1.0):
            if lo[k] >= 0 or hi[k] <= 0:
                break  # sign proven
            t_side = time.perf_counter()
            budget = _budget(deadline, time_per_neuron)
            if budget <= 0:
                return False
            b = lp.lower_bound(col, sign, max(budget, _MIN_SOLVE_SECONDS))
            st.lp_solves += 1
            _apply(lo, hi, k, sign, b, st)
            if use_milp and lo[k] < 0 < hi[k]:
                budget = _budget(deadline, time_per_neuron - (time.perf_counter() - t_side))
                if budget > _MIN_SOLVE_SECONDS:
                    b = _milp_lower_bound(prefix.program, col, sign, budget, early_unstable)
                    st.milp_solves += 1
                    _apply(lo, hi, k, sign, b, st)
    return True


def _apply(lo: np.ndarray, hi: np.ndarray, k: int, sign: float, b: float, st: LayerStats) -> None:
    """Use b, a lower bound on sign * x_k, to tighten lo[k] (sign +1) or hi[k] (sign -1)."""
    if not math.isfinite(b):
        return
    if sign > 0 and b > lo[k]:
        lo[k] = b
        st.improved += 1
    elif sign < 0 and -b < hi[k]:
        hi[k] = -b
        st.improved += 1

"""Two-neuron relaxations of ReLU layers as cutting planes (bounds/cuts.py), valid on the whole box.

The single-neuron relaxation of a ReLU (the triangle) only knows each input's own interval.  Two
neurons i, j of the same pre-activation node are tied together: over the box their values
(x_i, x_j) stay inside an octagon, the interval bounds of x_i, x_j, x_i + x_j and x_i - x_j
(PRIMA's k = 2 input polytope).  The convex hull of {(x_i, x_j, relu(x_i), relu(x_j))} over
that octagon is a polytope in four dimensions; its facets that involve both outputs are the
inequalities the triangles miss.  This module builds them for pairs of unstable neurons:

* pairs: each unstable neuron with the ``per_neuron`` others whose sampled values correlate
  most with its own (the octagon is tight where they move together or against each other);
* octagon: alpha-CROWN on the network cut at the node, rows e_i + e_j and e_i - e_j, both
  sides (sound float64 bounds with the engine's rounding margins);
* the hull's points: the vertices of the octagon clipped to each of the four sign orthants,
  mapped through the ReLUs there (the set is the union of those four linear images);
* cuts: the facets of their convex hull (qhull, through scipy) that have both output
  coefficients, as ``n . (x_i, x_j, y_i, y_j) <= rhs``.

Soundness.  qhull only proposes the normals n.  The right-hand side is recomputed here as the
largest value of n over the points, plus a margin for the rounding of the vertices, and vertices
are kept with a tolerance that only ever admits more points (a larger hull).  Every point of the
network whose input lies in the box has (x_i, x_j) in the octagon, so it satisfies every cut:
the cuts hold on the whole box, for any property and every domain of a search on that box.
"""

from __future__ import annotations

import itertools
import logging
import math
import time

import numpy as np
import torch

from ..graph import Graph
from .cuts import CUT_KEY, BatchCuts, CutSet
from .engine import BoundEngine
from .mixed import MixedPrecision
from .types import BoundConfig

log = logging.getLogger(__name__)

Box = tuple[torch.Tensor, torch.Tensor]
SAMPLES = 1000  # random points of the box whose values choose the pairs
_LINE_PAIRS = list(itertools.combinations(range(10), 2))  # octagon (8) + orthant (2) sides


def _pairs(values: torch.Tensor, per_neuron: int) -> list[tuple[int, int]]:
    """Pairs (a < b) of columns of values (samples, n): each column with the per_neuron others
    of largest absolute correlation."""
    n = values.shape[1]
    if n < 2 or per_neuron < 1:
        return []
    v = values - values.mean(0)
    v = v / v.norm(dim=0).clamp_min(1e-12)
    cor = (v.T @ v).abs()
    cor.fill_diagonal_(-1.0)
    top = cor.topk(min(per_neuron, n - 1), dim=1).indices
    return sorted({(min(a, b), max(a, b)) for a in range(n) for b in top[a].tolist()})


def _octagon_points(lim: np.ndarray) -> list[np.ndarray]:
    """For each pair, the points (n, 4) (x_i, x_j, relu(x_i), relu(x_j)) whose hull contains the
    pair's set; lim (P, 8, 3): the octagon's sides a x_i + b x_j <= c."""
    P = lim.shape[0]
    pts: list[list[np.ndarray]] = [[] for _ in range(P)]
    a_idx = np.array([p[0] for p in _LINE_PAIRS])
    b_idx = np.array([p[1] for p in _LINE_PAIRS])
    for sa, sb in itertools.product((1.0, -1.0), (1.0, -1.0)):
        orth = np.array([[-sa, 0.0, 0.0], [0.0, -sb, 0.0]])  # sa x_i >= 0, sb x_j >= 0
        lines = np.concatenate([lim, np.broadcast_to(orth, (P, 2, 3))], axis=1)  # (P, 10, 3)
        l1, l2 = lines[:, a_idx], lines[:, b_idx]  # (P, 45, 3)
        det = l1[..., 0] * l2[..., 1] - l2[..., 0] * l1[..., 1]
        ok = np.abs(det) > 1e-12
        det = np.where(ok, det, 1.0)
        x = (l1[..., 2] * l2[..., 1] - l2[..., 2] * l1[..., 1]) / det
        y = (l1[..., 0] * l2[..., 2] - l2[..., 0] * l1[..., 2]) / det
        # feasibility with a tolerance that admits rounding (more points: a larger hull)
        lhs = lines[:, None, :, 0] * x[..., None] + lines[:, None, :, 1] * y[..., None]
        c = lines[:, None, :, 2]
        feas = ok & (lhs <= c + 1e-9 * (1.0 + np.abs(c))).all(-1)
        for p in np.nonzero(feas.any(1))[0]:
            xs, ys = x[p][feas[p]], y[p][feas[p]]
            pts[p].append(np.stack([xs, ys, xs if sa > 0 else 0 * xs, ys if sb > 0 else 0 * ys], 1))
    return [np.unique(np.concatenate(q), axis=0) if q else np.zeros((0, 4)) for q in pts]


def _facets(points: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """(normal (4,), rhs) of the hull's facets with both output coefficients, rhs recomputed
    over the points with a rounding margin."""
    from scipy.spatial import ConvexHull, QhullError  # type: ignore[import-untyped]

    if points.shape[0] < 5:
        return []
    try:
        hull = ConvexHull(points)
    except (QhullError, ValueError):  # a flat set: the pair's neurons are tied exactly
        try:
            hull = ConvexHull(points, qhull_options="QJ")
        except (QhullError, ValueError):
            return []
    out = []
    scale = float(np.abs(points).max()) + 1.0
    for eq in hull.equations:
        n = eq[:4] / np.abs(eq[:4]).max()
        if abs(n[2]) < 1e-6 or abs(n[3]) < 1e-6:
            continue  # a facet of one neuron's triangle, or of the octagon itself
        rhs = float((points @ n).max()) + 1e-9 * (float(np.abs(n).sum()) * scale)
        out.append((n, rhs))
    return out


def _samples(graph: Graph, lo: torch.Tensor, hi: torch.Tensor, seed: int) -> list[torch.Tensor]:
    """Every node's values at SAMPLES random points of the box (they choose the pairs)."""
    gen = torch.Generator().manual_seed(seed)
    xs = lo + torch.rand(SAMPLES, lo.shape[1], generator=gen, dtype=torch.float64) * (hi - lo)
    with torch.no_grad():
        return graph.forward_all(xs.reshape(SAMPLES, *graph.input_shape))


def _relu_of(graph: Graph) -> dict[int, int]:
    """Pre-activation node -> its plain Relu node (the cuts use relu(x) exactly)."""
    return {n.inputs[0]: i for i, n in enumerate(graph.nodes) if type(n.op).__name__ == "Relu"}


def _prefix_bounds(
    graph: Graph,
    lo: torch.Tensor,
    hi: torch.Tensor,
    pre: dict[int, Box],
    j: int,
    rows: torch.Tensor,
    cuts: CutSet | None,
    iters: int,
    stop: float = math.inf,
    float32: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(sound lower bounds (R,) of rows (R, size) . x_j over the box, by alpha-CROWN on the
    network cut at node j with the intermediate bounds pre and the cuts (on nodes before j),
    its optimisation cut short at the time.monotonic() instant stop; with float32 the slopes
    and cut multipliers are searched in float32 and the bound computed in float64 at them
    (``bounds/mixed.py``: as sound, measured 1.7x faster with the same tightening);
    each cut's largest multiplier over the rows (K,), inf for the cuts that have terms on node j
    or later and so could not serve, or None when no cut served)."""
    prefix = graph.with_nodes(graph.nodes[: j + 1])
    sub_pre = {i: (b[0].reshape(1, -1), b[1].reshape(1, -1)) for i, b in pre.items() if i < j}
    use, inside = None, None
    if cuts is not None and sub_pre:
        # only cuts that lie wholly on nodes before j (a cut with a term dropped is not a cut)
        inside = torch.ones(cuts.size, dtype=torch.bool)
        for n, g in cuts.values.items():
            if n >= j:
                inside &= (g == 0).all(1)
        use = select(CutSet({n: g for n, g in cuts.values.items() if n < j}, {}, cuts.rhs), inside)
    cfg = BoundConfig(intermediate_crown=False, alpha_iters=iters)
    engine = BoundEngine(prefix, cfg)
    batch_cuts = None if use is None or not use.values else BatchCuts(use)
    deadline = None if math.isinf(stop) else stop
    C, c0 = rows.unsqueeze(0), torch.zeros(1, rows.shape[0], dtype=torch.float64)
    if sub_pre and float32:
        # slopes and multipliers searched in float32, the bound computed in float64 at them
        res = MixedPrecision(engine, BoundEngine(prefix, cfg, dtype=torch.float32)).compute(
            lo, hi, C, c0, pre=sub_pre, deadline=deadline, cuts=batch_cuts
        )
    else:
        res = engine.compute(
            lo,
            hi,
            C,
            c0,
            method="alpha-crown" if sub_pre else "crown",
            pre=sub_pre or None,
            cuts=batch_cuts,
            deadline=deadline,
        )
    mu = None
    if use is not None and inside is not None and res.state is not None:
        got = res.state.betas.get(CUT_KEY)
        if got is not None:
            # the cuts this bound could not use count as useful (they are kept)
            mu = torch.full((inside.numel(),), math.inf, dtype=got.dtype)
            mu[inside] = got.reshape(-1, got.shape[-1]).amax(0)
    return res.lb[0], mu


def node_pair_cuts(
    graph: Graph,
    lo: torch.Tensor,
    hi: torch.Tensor,
    pre: dict[int, Box],
    j: int,
    values: torch.Tensor,
    per_neuron: int,
    cuts: CutSet | None = None,
    iters: int = 20,
    stop: float = math.inf,
    float32: bool = True,
) -> CutSet | None:
    """The pair cuts of the ReLU on pre-activation node j (see the module docstring): values
    (samples, size) its sampled values, cuts: valid cuts on earlier nodes that tighten the
    octagons; float32: search the octagons' bounds in float32 (see _prefix_bounds).  None when
    the node has no unstable pair."""
    relu = _relu_of(graph).get(j)
    if relu is None or j not in pre:
        return None
    lj, uj = pre[j][0].reshape(-1), pre[j][1].reshape(-1)
    unst = ((lj < 0) & (uj > 0)).nonzero().flatten()
    pairs = _pairs(values.reshape(values.shape[0], -1)[:, unst], per_neuron)
    if not pairs:
        return None
    ia = unst[torch.tensor([p[0] for p in pairs])]
    ib = unst[torch.tensor([p[1] for p in pairs])]
    rows_c = torch.zeros(4 * len(pairs), lj.numel(), dtype=torch.float64)
    r = torch.arange(len(pairs))
    for q, (sa, sb) in enumerate(((1.0, 1.0), (-1.0, -1.0), (1.0, -1.0), (-1.0, 1.0))):
        rows_c[4 * r + q, ia] = sa
        rows_c[4 * r + q, ib] = sb
    low = _prefix_bounds(graph, lo, hi, pre, j, rows_c, cuts, iters, stop, float32)[0].numpy()
    la, ua = lj[ia].numpy(), uj[ia].numpy()
    lb_, ub_ = lj[ib].numpy(), uj[ib].numpy()
    one, zero = np.ones(len(pairs)), np.zeros(len(pairs))
    # a x_i + b x_j <= c with c = -(lower bound of -(a x_i + b x_j))
    lim = np.stack(
        [
            np.stack([one, zero, ua], 1),
            np.stack([-one, zero, -la], 1),
            np.stack([zero, one, ub_], 1),
            np.stack([zero, -one, -lb_], 1),
            np.stack([one, one, -low[1::4]], 1),
            np.stack([-one, -one, -low[0::4]], 1),
            np.stack([one, -one, -low[3::4]], 1),
            np.stack([-one, one, -low[2::4]], 1),
        ],
        1,
    )
    found: list[tuple[int, int, np.ndarray, float]] = []
    for q, pts in enumerate(_octagon_points(lim)):
        for n, rhs in _facets(pts):
            found.append((int(ia[q]), int(ib[q]), n, rhs))
    if not found:
        return None
    K, size = len(found), lj.numel()
    gx = torch.zeros(K, size, dtype=torch.float64)
    gy = torch.zeros(K, size, dtype=torch.float64)
    for k, (a, b, n, _) in enumerate(found):
        gx[k, a], gx[k, b] = float(n[0]), float(n[1])
        gy[k, a], gy[k, b] = float(n[2]), float(n[3])
    rhs_t = torch.tensor([f[3] for f in found], dtype=torch.float64)
    return CutSet({j: gx, relu: gy}, {}, rhs_t)


def join(a: CutSet | None, b: CutSet | None) -> CutSet | None:
    """Both sets of value cuts as one (a's first); None when both are None."""
    if a is None or b is None:
        return a if b is None else b
    out = {}
    for n in sorted(set(a.values) | set(b.values)):
        size = (a.values[n] if n in a.values else b.values[n]).shape[1]
        out[n] = torch.cat(
            [
                a.values.get(n, torch.zeros(a.size, size, dtype=torch.float64)),
                b.values.get(n, torch.zeros(b.size, size, dtype=torch.float64)),
            ]
        )
    return CutSet(out, {}, torch.cat([a.rhs, b.rhs]))


def tighten_with_pair_cuts(
    graph: Graph,
    lo: torch.Tensor,
    hi: torch.Tensor,
    pre: dict[int, Box],
    per_neuron: int = 4,
    keep: float = 1e-3,
    iters: int = 20,
    seed: int = 0,
    stop: float = math.inf,
    float32: bool = True,
) -> tuple[dict[int, Box], CutSet | None]:
    """Intermediate bounds tightened layer by layer with the pair cuts of the layers before
    (PRIMA's use of multi-neuron relaxations), and the cuts that served.

    For each ReLU pre-activation node in order: its unstable neurons are bounded again (both
    sides) by alpha-CROWN with the cuts of the earlier layers, and the bounds intersected with
    the old ones; then the node's own pair cuts are built on its new bounds, with the earlier
    cuts tightening their octagons.  After each use, only the cuts whose multiplier exceeded
    ``keep`` for some row are carried on (a dense set grows by thousands a layer).  The last
    ReLU layer gets no cuts of its own: no intermediate bound comes after it (on MNIST 256x4
    they took half the step's time).  float32: search the bounds in float32 and compute them in
    float64 (see _prefix_bounds).  Never looser than pre; nodes after ``stop`` keep their
    bounds.
    """
    t0 = time.monotonic()
    values = _samples(graph, lo, hi, seed)
    out = {j: (b[0].reshape(-1).clone(), b[1].reshape(-1).clone()) for j, b in pre.items()}
    cuts: CutSet | None = None
    before = after = 0
    nodes: list[int] = []  # the ReLU layers in order, up to the first without bounds
    for j in sorted(_relu_of(graph)):
        if j not in out:
            break
        nodes.append(j)
    for j in nodes:
        if time.monotonic() >= stop:
            break
        lj, uj = out[j]
        unst = ((lj < 0) & (uj > 0)).nonzero().flatten()
        before += unst.numel()
        if cuts is not None and unst.numel():
            u = unst.numel()
            rows = torch.zeros(2 * u, lj.numel(), dtype=torch.float64)
            rows[torch.arange(u), unst] = 1.0
            rows[u + torch.arange(u), unst] = -1.0
            low, mu = _prefix_bounds(graph, lo, hi, out, j, rows, cuts, iters, stop, float32)
            lj[unst] = torch.maximum(lj[unst], low[:u])
            uj[unst] = torch.minimum(uj[unst], -low[u:])
            if mu is not None:
                cuts = select(cuts, mu > keep)
        after += int(((lj < 0) & (uj > 0)).sum())
        if j == nodes[-1]:
            break  # no later intermediate bound for the last layer's cuts to serve
        cuts = join(
            cuts,
            node_pair_cuts(
                graph, lo, hi, out, j, values[j], per_neuron, cuts, iters, stop, float32
            ),
        )
    log.info(
        "pair cuts: unstable %d -> %d, %d cut(s) in %.1f s",
        before,
        after,
        0 if cuts is None else cuts.size,
        time.monotonic() - t0,
    )
    return out, cuts


def select(cuts: CutSet, keep: torch.Tensor) -> CutSet | None:
    """The cuts where keep (K,) is True; None when none is."""
    idx = keep.nonzero().flatten()
    if idx.numel() == 0:
        return None
    return CutSet(
        {n: g[idx] for n, g in cuts.values.items()},
        {n: g[idx] for n, g in cuts.z.items()},
        cuts.rhs[idx],
    )

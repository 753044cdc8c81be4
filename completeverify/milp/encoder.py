"""Exact MILP encoding of a piecewise-linear Graph on one input box and one unsafe polytope.

Program: minimise t subject to  C y - d <= t (every row),  y = network(x),  x in box.
The property holds on the box iff min t > 0.

One small encoder per op, looked up by op type in the table ENCODERS (ops the
exact MILP cannot encode, i.e. without ``caps.piecewise_linear``, have the
row NOT_SUPPORTED).  Shape-only ops (Reshape,
Concat, Gather) alias columns instead of adding rows.  ReLU uses the big-M
encoding with the given pre-activation bounds; stable neurons get no binary.
MaxPool uses the exact max encoding with one binary per window entry.
Pre-activation bounds must be sound: callers pass bounds computed in float64
and this module widens them once more before using them as big-M constants.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InternalError, ModelError
from ..graph import (
    NOT_SUPPORTED,
    Add,
    Concat,
    Conv,
    Gather,
    Graph,
    Input,
    LeakyRelu,
    Linear,
    MaxPool,
    Node,
    NotSupported,
    Relu,
    Reshape,
    Scale,
    Sigmoid,
    Tanh,
)
from ..solvers import MilpProgram
from .intervals import interval_affine, widen, widen_finite, widened
from .outcomes import EmptyDomain


class _Program:
    """Growable column/row storage, turned into a MilpProgram at the end."""

    def __init__(self) -> None:
        self.col_lower: list[np.ndarray] = []
        self.col_upper: list[np.ndarray] = []
        self.col_int: list[np.ndarray] = []
        self.n_cols = 0
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self.row_lower: list[np.ndarray] = []
        self.row_upper: list[np.ndarray] = []
        self.n_rows = 0

    def new_cols(self, lower, upper, n: int, integer: bool = False) -> np.ndarray:
        """Add n columns with the given bounds; returns their indices."""
        lo = np.broadcast_to(np.asarray(lower, dtype=np.float64), (n,)).copy()
        hi = np.broadcast_to(np.asarray(upper, dtype=np.float64), (n,)).copy()
        self.col_lower.append(lo)
        self.col_upper.append(hi)
        self.col_int.append(np.full(n, integer))
        idx = np.arange(self.n_cols, self.n_cols + n)
        self.n_cols += n
        return idx

    def add_rows(self, rows, cols, vals, lower, upper, n: int) -> None:
        """Add n rows; rows are 0-based local indices into the new block."""
        self.rows.append(np.asarray(rows, dtype=np.int64) + self.n_rows)
        self.cols.append(np.asarray(cols, dtype=np.int64))
        self.vals.append(np.asarray(vals, dtype=np.float64))
        self.row_lower.append(np.broadcast_to(np.asarray(lower, dtype=np.float64), (n,)).copy())
        self.row_upper.append(np.broadcast_to(np.asarray(upper, dtype=np.float64), (n,)).copy())
        self.n_rows += n

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The current column bounds as two arrays (consolidated in place, so edits stick)."""
        if len(self.col_lower) != 1:
            self.col_lower = [np.concatenate(self.col_lower)] if self.col_lower else [np.zeros(0)]
            self.col_upper = [np.concatenate(self.col_upper)] if self.col_upper else [np.zeros(0)]
        return self.col_lower[0], self.col_upper[0]

    def tighten(self, cols: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
        """Intersect existing column bounds with [lower, upper]."""
        lo, hi = self.bounds()
        lo[cols] = np.maximum(lo[cols], lower)
        hi[cols] = np.minimum(hi[cols], upper)

    def build(self, objective_col: int) -> MilpProgram:
        """The finished program: minimise column ``objective_col``."""
        c = np.zeros(self.n_cols)
        c[objective_col] = 1.0
        cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dtype=dt)  # noqa: E731
        return MilpProgram(
            c=c,
            col_lower=cat(self.col_lower, np.float64),
            col_upper=cat(self.col_upper, np.float64),
            A_rows=cat(self.rows, np.int64),
            A_cols=cat(self.cols, np.int64),
            A_vals=cat(self.vals, np.float64),
            row_lower=cat(self.row_lower, np.float64),
            row_upper=cat(self.row_upper, np.float64),
            integrality=cat(self.col_int, bool),
        )


@dataclass
class Encoding:
    """A MILP for one (box, polytope) pair and how to read a solution back."""

    program: MilpProgram
    input_cols: np.ndarray  # (n_in,) columns of the flat input
    output_cols: np.ndarray  # (n_out,) columns of the flat output
    t_col: int
    n_binaries: int
    node_cols: list[np.ndarray] | None = None  # per graph node, the columns of its flat value

    def input_of(self, x: np.ndarray) -> np.ndarray:
        """The flat network input in a solution vector."""
        return np.asarray(x)[self.input_cols]


def _affine(
    p: _Program,
    out: np.ndarray,
    rows: np.ndarray,
    in_cols: np.ndarray,
    vals: np.ndarray,
    const,
    rel: float,
) -> None:
    """Rows out_r - sum_k vals_k x[in_cols_k] = const_r (rows_k == r); box out by interval
    arithmetic.

    The box is implied by the rows and the input columns' bounds (widened outward), so it never
    cuts off a point of the program; it makes every column bounded, which the rigorous LP bound
    from duals (solvers.safe_lp_lower_bound) needs.
    """
    n = out.size
    const = np.broadcast_to(np.asarray(const, dtype=np.float64), (n,))
    p.add_rows(
        np.concatenate([np.arange(n), rows]),
        np.concatenate([out, in_cols]),
        np.concatenate([np.ones(n), -np.asarray(vals, dtype=np.float64)]),
        const,
        const,
        n,
    )
    col_lo, col_hi = p.bounds()
    lo, hi = interval_affine(n, rows, vals, const, col_lo[in_cols], col_hi[in_cols])
    p.tighten(out, *widen_finite(lo, hi, rel))


def conv_triplets(op: Conv) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Sparse matrix of a convolution: (out_index, in_index, weight) triplets and the output
    size."""
    c, h, w = op.in_chw
    idx = torch.arange(c * h * w, dtype=torch.float64).reshape(1, c, h, w) + 1.0  # 0 marks padding
    idx = op.pad_input(idx)
    ph, pw = op.torch_padding()
    if ph or pw:
        idx = F.pad(idx, (pw, pw, ph, ph))
    cout, cin_g, kh, kw = op.weight.shape
    unfolded = F.unfold(idx, (kh, kw), dilation=op.dilation, stride=op.stride)[0]  # (c*kh*kw, L)
    n_pos = unfolded.shape[1]
    patches = unfolded.cpu().numpy().astype(np.int64) - 1
    g = op.groups
    cout_g = cout // g
    rows_l, cols_l, vals_l = [], [], []
    for gi in range(g):
        pg = patches[gi * cin_g * kh * kw : (gi + 1) * cin_g * kh * kw]  # (cin_g*kh*kw, L)
        wg = op.weight[gi * cout_g : (gi + 1) * cout_g].reshape(cout_g, -1)  # (cout_g, cin_g*kh*kw)
        co, k = np.nonzero(wg)
        # each nonzero weight contributes at every output position
        pos = np.arange(n_pos)
        ins = pg[k][:, pos]  # (nnz, L)
        outs = (gi * cout_g + co)[:, None] * n_pos + pos[None, :]
        vals = np.broadcast_to(wg[co, k][:, None], ins.shape)
        keep = ins >= 0
        rows_l.append(outs[keep])
        cols_l.append(ins[keep])
        vals_l.append(vals[keep])
    return np.concatenate(rows_l), np.concatenate(cols_l), np.concatenate(vals_l), cout * n_pos


@dataclass
class EncodeState:
    """What the per-op encoders share while one program is built.

    program: the growing program; zero: a column fixed at 0; lower/upper: the input box (flat);
    pre: node -> flat (lower, upper) bounds of the nodes feeding an activation; splits: splittable
    node -> (size,) signs; widening: the relative margin on bounds; n_bin: binaries so far.
    """

    program: _Program
    zero: int
    graph: Graph
    lower: np.ndarray
    upper: np.ndarray
    pre: dict
    splits: dict
    widening: float
    n_bin: int = 0

    def input_bounds(self, node: Node) -> tuple[np.ndarray, np.ndarray]:
        """Widened flat bounds of an activation node's input (the big-M constants)."""
        j = node.inputs[0]
        if j not in self.pre:
            raise InternalError(f"no pre-activation bounds for node '{self.graph.nodes[j].name}'")
        lo, hi = self.pre[j]
        return widen(
            np.asarray(lo, dtype=np.float64).reshape(-1),
            np.asarray(hi, dtype=np.float64).reshape(-1),
            self.widening,
        )


# An encoder adds the rows/columns of one node and returns the columns of its flat value:
# (state, node index, node, its op, columns of each input) -> (size,) column indices.
Encoder = Callable[[EncodeState, int, Node, Any, list[np.ndarray]], np.ndarray]


def _enc_input(st: EncodeState, i: int, node: Node, op: Input, ins: list[np.ndarray]) -> np.ndarray:
    """The input box as column bounds."""
    return st.program.new_cols(st.lower, st.upper, node.size)


def _enc_reshape(
    st: EncodeState, i: int, node: Node, op: Reshape, ins: list[np.ndarray]
) -> np.ndarray:
    """Alias of the input's columns."""
    return ins[0]


def _enc_concat(
    st: EncodeState, i: int, node: Node, op: Concat, ins: list[np.ndarray]
) -> np.ndarray:
    """The inputs' columns, concatenated."""
    return np.concatenate(ins)


def _enc_gather(
    st: EncodeState, i: int, node: Node, op: Gather, ins: list[np.ndarray]
) -> np.ndarray:
    """Selected input columns; padding entries are the zero column."""
    idx = op.index.reshape(-1)
    return np.where(idx >= 0, ins[0][np.maximum(idx, 0)], st.zero)


def _enc_linear(
    st: EncodeState, i: int, node: Node, op: Linear, ins: list[np.ndarray]
) -> np.ndarray:
    """One equality row per output over the nonzero weights."""
    out = st.program.new_cols(-np.inf, np.inf, node.size)
    r, c = np.nonzero(op.weight)
    _affine(st.program, out, r, ins[0][c], op.weight[r, c], op.bias, st.widening)
    return out


def _enc_conv(st: EncodeState, i: int, node: Node, op: Conv, ins: list[np.ndarray]) -> np.ndarray:
    """One equality row per output from the convolution's sparse matrix."""
    out = st.program.new_cols(-np.inf, np.inf, node.size)
    r, c, v, n = conv_triplets(op)
    _affine(
        st.program, out, r, ins[0][c], v, np.repeat(op.bias, n // op.weight.shape[0]), st.widening
    )
    return out


def _enc_scale(st: EncodeState, i: int, node: Node, op: Scale, ins: list[np.ndarray]) -> np.ndarray:
    """y = x * mul + add, one row per entry."""
    out = st.program.new_cols(-np.inf, np.inf, node.size)
    _affine(
        st.program,
        out,
        np.arange(node.size),
        ins[0],
        op.mul.reshape(-1),
        op.add.reshape(-1),
        st.widening,
    )
    return out


def _enc_add(st: EncodeState, i: int, node: Node, op: Add, ins: list[np.ndarray]) -> np.ndarray:
    """Sum of the inputs, one row per entry."""
    out = st.program.new_cols(-np.inf, np.inf, node.size)
    n = node.size
    _affine(
        st.program,
        out,
        np.concatenate([np.arange(n)] * len(ins)),
        np.concatenate(ins),
        np.ones(n * len(ins)),
        0.0,
        st.widening,
    )
    return out


def _split_bounds(st: EncodeState, i: int, node: Node) -> tuple[np.ndarray, np.ndarray]:
    """Widened input bounds of a splittable node with its split signs applied (flat)."""
    lo, hi = st.input_bounds(node)
    sp = np.asarray(st.splits.get(i, np.zeros(node.size)), dtype=np.int64).reshape(-1)
    lo = np.where(sp > 0, np.maximum(lo, 0.0), lo)
    hi = np.where(sp < 0, np.minimum(hi, 0.0), hi)
    if np.any(lo > hi):
        raise EmptyDomain("empty pre-activation bounds")  # caller treats as an infeasible domain
    return lo, hi


def _enc_relu(st: EncodeState, i: int, node: Node, op: Relu, ins: list[np.ndarray]) -> np.ndarray:
    """Big-M ReLU with the (split-tightened) input bounds; stable neurons get no binary."""
    p = st.program
    lo, hi = _split_bounds(st, i, node)
    x = ins[0]
    p.tighten(x, lo, hi)
    out = np.where(lo >= 0, x, st.zero)
    unstable = np.nonzero((lo < 0) & (hi > 0))[0]
    m = unstable.size
    if m:
        y = p.new_cols(0.0, hi[unstable], m)
        z = p.new_cols(0.0, 1.0, m, integer=True)
        st.n_bin += m
        xu, l_u, h_u = x[unstable], lo[unstable], hi[unstable]
        ar = np.arange(m)
        # y - x >= 0
        p.add_rows(
            np.concatenate([ar, ar]),
            np.concatenate([y, xu]),
            np.concatenate([np.ones(m), -np.ones(m)]),
            0.0,
            np.inf,
            m,
        )
        # y - x - l z <= -l     (y <= x - l (1 - z))
        p.add_rows(
            np.concatenate([ar, ar, ar]),
            np.concatenate([y, xu, z]),
            np.concatenate([np.ones(m), -np.ones(m), -l_u]),
            -np.inf,
            -l_u,
            m,
        )
        # y - u z <= 0
        p.add_rows(
            np.concatenate([ar, ar]),
            np.concatenate([y, z]),
            np.concatenate([np.ones(m), -h_u]),
            -np.inf,
            0.0,
            m,
        )
        out = out.copy()
        out[unstable] = y
    return out


def _enc_leaky_relu(
    st: EncodeState, i: int, node: Node, op: LeakyRelu, ins: list[np.ndarray]
) -> np.ndarray:
    """Big-M LeakyReLU y = max(x, s x), 0 <= s <= 1; stable neurons are affine (no binary).

    z = 1 forces y = x (and x >= 0), z = 0 forces y = s x (and x <= 0):
    y >= x, y >= s x, y <= x - (1 - s) l (1 - z), y <= s x + (1 - s) u z.
    """
    p = st.program
    s = float(op.alpha)
    lo, hi = _split_bounds(st, i, node)
    x = ins[0]
    p.tighten(x, lo, hi)
    out = np.where(lo >= 0, x, st.zero)
    neg = np.nonzero(hi <= 0)[0]
    if neg.size:  # inactive: y = s x exactly
        yn = p.new_cols(-np.inf, np.inf, neg.size)
        _affine(p, yn, np.arange(neg.size), x[neg], np.full(neg.size, s), 0.0, st.widening)
        out = out.copy()
        out[neg] = yn
    unstable = np.nonzero((lo < 0) & (hi > 0))[0]
    m = unstable.size
    if m:
        xu, l_u, h_u = x[unstable], lo[unstable], hi[unstable]
        y_lo, y_hi = widen_finite(s * l_u, h_u, st.widening)
        y = p.new_cols(y_lo, y_hi, m)
        z = p.new_cols(0.0, 1.0, m, integer=True)
        st.n_bin += m
        ar = np.arange(m)
        one = np.ones(m)
        # y - x >= 0 and y - s x >= 0
        p.add_rows(
            np.concatenate([ar, ar]),
            np.concatenate([y, xu]),
            np.concatenate([one, -one]),
            0.0,
            np.inf,
            m,
        )
        p.add_rows(
            np.concatenate([ar, ar]),
            np.concatenate([y, xu]),
            np.concatenate([one, -s * one]),
            0.0,
            np.inf,
            m,
        )
        # y - x - (1 - s) l z <= -(1 - s) l
        big_l = (1.0 - s) * l_u
        p.add_rows(
            np.concatenate([ar, ar, ar]),
            np.concatenate([y, xu, z]),
            np.concatenate([one, -one, -big_l]),
            -np.inf,
            -big_l,
            m,
        )
        # y - s x - (1 - s) u z <= 0
        p.add_rows(
            np.concatenate([ar, ar, ar]),
            np.concatenate([y, xu, z]),
            np.concatenate([one, -s * one, -(1.0 - s) * h_u]),
            -np.inf,
            0.0,
            m,
        )
        out = out.copy()
        out[unstable] = y
    return out


def _enc_maxpool(
    st: EncodeState, i: int, node: Node, op: MaxPool, ins: list[np.ndarray]
) -> np.ndarray:
    """Exact max of each window: one binary per candidate that can be the max."""
    p = st.program
    lo, hi = st.input_bounds(node)
    p.tighten(ins[0], lo, hi)
    out_cols = np.empty(node.size, dtype=np.int64)
    for o, win in enumerate(op.windows):
        win = win[win >= 0]
        best_lo = lo[win].max()
        cand = win[hi[win] >= best_lo]  # the others can never be the max
        if cand.size == 1:
            out_cols[o] = ins[0][cand[0]]
            continue
        ymax = hi[cand].max()
        y = p.new_cols(best_lo, ymax, 1)[0]
        z = p.new_cols(0.0, 1.0, cand.size, integer=True)
        st.n_bin += cand.size
        k = cand.size
        ar = np.arange(k)
        xs = ins[0][cand]
        # y >= x_k
        p.add_rows(
            np.concatenate([ar, ar]),
            np.concatenate([np.full(k, y), xs]),
            np.concatenate([np.ones(k), -np.ones(k)]),
            0.0,
            np.inf,
            k,
        )
        # y <= x_k + (ymax - l_k)(1 - z_k)  ->  y - x_k + (ymax - l_k) z_k <= ymax - l_k
        big = ymax - lo[cand]
        p.add_rows(
            np.concatenate([ar, ar, ar]),
            np.concatenate([np.full(k, y), xs, z]),
            np.concatenate([np.ones(k), -np.ones(k), big]),
            -np.inf,
            big,
            k,
        )
        p.add_rows(np.zeros(k), z, np.ones(k), 1.0, 1.0, 1)
        out_cols[o] = y
    return out_cols


# op type -> its exact encoder, or NOT_SUPPORTED (agrees with caps.piecewise_linear)
ENCODERS: dict[type, Encoder | NotSupported] = {
    Input: _enc_input,
    Linear: _enc_linear,
    Conv: _enc_conv,
    Scale: _enc_scale,
    Gather: _enc_gather,
    Reshape: _enc_reshape,
    Add: _enc_add,
    Concat: _enc_concat,
    Relu: _enc_relu,
    LeakyRelu: _enc_leaky_relu,
    MaxPool: _enc_maxpool,
    Sigmoid: NOT_SUPPORTED,
    Tanh: NOT_SUPPORTED,
}


def encode(
    graph: Graph,
    lower: np.ndarray,
    upper: np.ndarray,
    pre: dict,
    C: np.ndarray,
    d: np.ndarray,
    splits: dict | None = None,
    widening: float = 1e-7,
) -> Encoding:
    """Build the MILP; ``pre`` maps each node feeding a Relu/MaxPool to flat (lower, upper) arrays.

    splits: optional {relu node index: int array (size,) of +1 (active), -1 (inactive), 0 (free)}.
    """
    rows = [ENCODERS.get(type(n.op), NOT_SUPPORTED) for n in graph.nodes]
    if any(isinstance(r, NotSupported) for r in rows):
        bad = sorted(
            {type(n.op).__name__ for n, r in zip(graph.nodes, rows) if isinstance(r, NotSupported)}
        )
        raise ModelError(
            f"{graph.source}: the exact MILP supports piecewise-linear networks only"
            f" (found {', '.join(bad)})"
        )
    p = _Program()
    zero = p.new_cols(0.0, 0.0, 1)[0]
    st = EncodeState(p, int(zero), graph, lower, upper, pre, splits or {}, widening)
    cols: list[np.ndarray] = []
    for i, (node, enc) in enumerate(zip(graph.nodes, rows)):
        assert not isinstance(enc, NotSupported)
        cols.append(enc(st, i, node, node.op, [cols[j] for j in node.inputs]))
        if i in pre and i != 0:
            lo_b, hi_b = widened(pre[i], widening)
            p.tighten(cols[i], lo_b, hi_b)
    col_lo, col_hi = p.bounds()
    if np.any(col_lo > col_hi):  # sound boxes (pre, splits, intervals) with no common point
        raise EmptyDomain("empty pre-activation bounds")  # caller treats as an infeasible domain
    y_cols = cols[-1]
    C = np.asarray(C, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64).reshape(-1)
    m = C.shape[0]
    r, c = np.nonzero(C)
    # t >= max_k (C_k y - d_k) at every point; an interval box of that max bounds t below
    # (implied) and above (each point keeps its minimal t = max_k(...) <= the box's top, so
    # min t and the set of network points are unchanged)
    t_lo: float | np.ndarray = -np.inf
    t_hi: float | np.ndarray = np.inf
    if m:
        k_lo, k_hi = interval_affine(m, r, C[r, c], -d, col_lo[y_cols[c]], col_hi[y_cols[c]])
        t_lo, t_hi = widen_finite(
            np.max(k_lo, keepdims=True), np.max(k_hi, keepdims=True), widening
        )
    t = p.new_cols(t_lo, t_hi, 1)[0]
    p.add_rows(
        np.concatenate([r, np.arange(m)]),
        np.concatenate([y_cols[c], np.full(m, t)]),
        np.concatenate([C[r, c], -np.ones(m)]),
        -np.inf,
        d,
        m,
    )
    return Encoding(p.build(t), cols[0], y_cols, int(t), st.n_bin, cols)

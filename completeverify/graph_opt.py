"""Exact graph simplifications: drop shape-only nodes and fuse chains of affine ops.

Every rewrite here preserves the function computed by the graph exactly (up to
float64 rounding of the fused parameters); the pipeline re-checks the result
against the ONNX reference evaluator anyway.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .graph import Conv, Gather, Graph, Linear, Node, Reshape, Scale

MAX_FUSED_ENTRIES = 20_000_000


def _per_channel(values: np.ndarray, channels: int) -> np.ndarray | None:
    """The per-channel constants of a (1, C, ...) Scale parameter, or None if they vary inside a
    channel."""
    v = values.reshape(channels, -1)
    return v[:, 0] if np.all(v == v[:, :1]) else None


def _compose(outer, inner, n_in: int):
    """outer(inner(x)) as one op, or None when it would not be exact or not cheaper.

    n_in is the size of inner's input.  A fused op never has more parameters than
    the ops it replaces, so bottleneck layers and sparse index maps are kept.
    """
    if isinstance(outer, Scale) and isinstance(inner, Scale):
        return Scale(outer.mul * inner.mul, outer.mul * inner.add + outer.add)
    if isinstance(outer, Scale) and isinstance(inner, Linear):
        m, a = outer.mul.reshape(-1), outer.add.reshape(-1)
        return Linear(inner.weight * m[:, None], inner.bias * m + a)
    if isinstance(outer, Linear) and isinstance(inner, Scale):
        m, a = inner.mul.reshape(-1), inner.add.reshape(-1)
        return Linear(outer.weight * m[None, :], outer.weight @ a + outer.bias)
    if isinstance(outer, Scale) and isinstance(inner, Conv):  # e.g. BatchNormalization after a conv
        c = inner.weight.shape[0]
        cm, ca = _per_channel(outer.mul, c), _per_channel(outer.add, c)
        if cm is None or ca is None:
            return None
        return replace(
            inner, weight=inner.weight * cm[:, None, None, None], bias=inner.bias * cm + ca
        )
    if isinstance(outer, Gather) and isinstance(inner, Gather):
        idx, inner_idx = outer.index.reshape(-1), inner.index.reshape(-1)
        fused = np.where(idx >= 0, inner_idx[np.maximum(idx, 0)], -1)
        return Gather(fused.reshape(outer.index.shape))
    if isinstance(outer, Linear) and isinstance(inner, Gather):
        if n_in > outer.weight.shape[1]:
            return None  # a slice: the dense map would grow
        idx = inner.index.reshape(-1)
        w = np.zeros((outer.weight.shape[0], n_in))
        keep = idx >= 0
        np.add.at(w.T, idx[keep], outer.weight.T[keep])
        return Linear(w, outer.bias.copy())
    if isinstance(outer, Gather) and isinstance(inner, Linear):
        idx = outer.index.reshape(-1)
        if idx.size > inner.weight.shape[0]:
            return None  # padding or broadcasting: the dense map would grow
        keep = (idx >= 0).astype(np.float64)
        return Linear(
            inner.weight[np.maximum(idx, 0)] * keep[:, None], inner.bias[np.maximum(idx, 0)] * keep
        )
    if isinstance(outer, Linear) and isinstance(inner, Linear):
        if outer.weight.shape[0] * inner.weight.shape[1] > MAX_FUSED_ENTRIES:
            return None
        if outer.weight.shape[0] * inner.weight.shape[1] > outer.weight.size + inner.weight.size:
            return None  # fusing would make the layer bigger (e.g. a bottleneck)
        return Linear(outer.weight @ inner.weight, outer.weight @ inner.bias + outer.bias)
    return None


def simplify(graph: Graph) -> Graph:
    """Remove Reshape nodes and fuse single-consumer affine chains."""
    nodes = list(graph.nodes)
    last = len(nodes) - 1
    alias = list(range(len(nodes)))  # node index -> index it forwards to

    def resolve(i: int) -> int:
        while alias[i] != i:
            i = alias[i]
        return i

    new: list[Node | None] = [None] * len(nodes)
    for i, node in enumerate(nodes):
        inputs = tuple(resolve(j) for j in node.inputs)
        node = Node(node.name, node.op, inputs, node.shape)
        if i != last and isinstance(node.op, Reshape):
            alias[i] = inputs[0]
            continue
        new[i] = node
    consumers: dict[int, list[int]] = {}
    for i, kept_node in enumerate(new):
        if kept_node is not None:
            for j in kept_node.inputs:
                consumers.setdefault(j, []).append(i)
    for i, outer in enumerate(new):
        if outer is None or len(outer.inputs) != 1:
            continue
        j = outer.inputs[0]
        inner = new[j]
        if j == 0 or inner is None or len(inner.inputs) != 1 or consumers.get(j, []) != [i]:
            continue
        source = new[inner.inputs[0]]
        n_in = source.size if source is not None else 0
        fused = _compose(outer.op, inner.op, n_in)
        if fused is None:
            continue
        new[i] = Node(outer.name, fused, inner.inputs, outer.shape)
        new[j] = None
        consumers.setdefault(inner.inputs[0], [])
        consumers[inner.inputs[0]] = [i if c == j else c for c in consumers[inner.inputs[0]]]
    kept = [(k, n) for k, n in enumerate(new) if n is not None]
    remap = {old: idx for idx, (old, _) in enumerate(kept)}
    out = tuple(Node(n.name, n.op, tuple(remap[j] for j in n.inputs), n.shape) for _, n in kept)
    return graph.with_nodes(out)

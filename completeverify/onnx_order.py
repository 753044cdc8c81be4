"""Graph analyses of an ONNX model's node list with networkx: evaluation order and cycles.

ONNX asks exporters to list nodes in topological order, and onnx's checker refuses models
that do not; onnxruntime and most exporters' consumers sort for themselves.  So that models
are read as their tools run them, the importer evaluates nodes in a topological order of
their data dependencies (stable: the file's order wherever dependencies allow) and names the
nodes of a dependency cycle when there is one.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import onnx

from .errors import ModelError


def dependency_graph(nodes: Sequence[onnx.NodeProto]) -> nx.DiGraph:
    """A DiGraph on node positions with an edge producer -> consumer for every tensor read."""
    producer: dict[str, int] = {}
    for k, node in enumerate(nodes):
        for out in node.output:
            if out:
                producer.setdefault(out, k)
    g: nx.DiGraph[int] = nx.DiGraph()
    g.add_nodes_from(range(len(nodes)))
    for k, node in enumerate(nodes):
        for name in node.input:
            j = producer.get(name) if name else None
            if j is not None and j != k:
                g.add_edge(j, k)
            elif j == k:
                g.add_edge(k, k)  # a node reading its own output: a cycle of length one
    return g


def evaluation_order(
    nodes: Sequence[onnx.NodeProto], names: Sequence[str], source: str
) -> list[int]:
    """Positions of ``nodes`` in an order where every tensor is produced before it is read.

    The file's order is kept wherever the dependencies allow it.  A dependency cycle is a
    ModelError naming its nodes (``names``: the display name of each node).
    """
    g = dependency_graph(nodes)
    try:
        return list(nx.lexicographical_topological_sort(g))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(g)
        ring = " -> ".join(f"'{names[u]}'" for u, _ in cycle) + f" -> '{names[cycle[0][0]]}'"
        raise ModelError(
            f"{source}: the graph has a cycle ({ring}); ONNX graphs must be acyclic"
        ) from None

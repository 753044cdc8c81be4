"""A bounded network: the bound engine as a reusable object with named intermediate bounds.

::

    import completeverify as cv
    net = cv.BoundedNetwork("net.onnx")                   # or a Graph, ModelProto, nn.Module
    r = net.compute_bounds(lower, upper, method="crown", return_A=True)
    r.lb, r.ub                                            # (m,) each; m = rows of C
    r.lA, r.lbias                                         # C y >= lA . x + lbias on the box
    r.intermediate["relu0"]                               # (lower, upper) of ReLU relu0's input

Shapes (``in_shape`` = the ONNX input shape, e.g. (1, 5); ``n_in`` = its number of entries):

* ``lower`` / ``upper``: one box ``in_shape`` (or flat ``(n_in,)``), or a batch
  ``(B, *in_shape)`` (or ``(B, n_in)``).  Results then carry no batch axis, or a leading ``B``.
* ``C``: ``(m, n_out)``; the bounds are of ``C @ y`` with ``y`` the flat output (default the
  identity, m = n_out).
* ``lA`` / ``uA``: ``(m, *in_shape)`` (``(B, m, *in_shape)`` for a batch); ``lbias`` /
  ``ubias``: ``(m,)`` (``(B, m)``).  ``lA . x + lbias <= (C y)(x) <= uA . x + ubias`` for
  every x in the box.  They are the CROWN linear bounds (default ReLU slopes), so for
  ``method="crown"`` concretising them over the box gives ``lb`` (up to the float margin)
  unless the output's interval bound was tighter; for ``"alpha-crown"`` the optimised ``lb``
  can be tighter.
* ``intermediate``: ``{node name: (lower, upper)}`` for every node whose value feeds an
  activation (ReLU, MaxPool, Sigmoid, Tanh): each array has the node's shape (``(B, *shape)``
  for a batch).  For an ONNX model the names are the ONNX node names (fused nodes keep
  the name of the last node of the fusion); for a torch module, the module's layer names.
* ``splits``: ``{ReLU node name: array of the node's shape (or flat)}`` with +1 (its input is
  constrained >= 0), -1 (<= 0) or 0 (free); with ``"alpha-crown"`` the bound is beta-CROWN.
  Bounds with splits hold on the part of the box where the splits hold.

All numbers are float64 and sound: the engine widens every bound outward for rounding
(README, "Soundness in floating point").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from .bounds import BoundConfig, BoundEngine, Splits
from .errors import InputError
from .graph import Graph, Relu
from .loading import NetLike, as_graph

METHODS = ("ibp", "crown", "alpha-crown")


@dataclass(frozen=True)
class NetworkBounds:
    """Bounds of ``C @ y`` over an input box, as returned by BoundedNetwork.compute_bounds.

    lb, ub: (m,) or (B, m).  lA, uA: (m, *in_shape) or (B, m, *in_shape), lbias, ubias: (m,) or
    (B, m), present when asked (``return_A=True``) and the method is not IBP.  intermediate:
    node name -> (lower, upper), each of the node's shape (with a leading B for a batch).
    """

    lb: np.ndarray
    ub: np.ndarray
    method: str
    lA: np.ndarray | None = None
    lbias: np.ndarray | None = None
    uA: np.ndarray | None = None
    ubias: np.ndarray | None = None
    intermediate: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @property
    def A(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(lA, lbias)``, the final linear lower bound, or None when not computed."""
        if self.lA is None or self.lbias is None:
            return None
        return self.lA, self.lbias


class BoundedNetwork:
    """A network prepared once for many bound computations (parameters cached in float64).

    net: a path / bytes / ModelProto / Graph, or a ``torch.nn.Module`` with ``example_input``
    (a tensor of the input's shape, batch dimension included, or that shape).
    """

    def __init__(self, net: NetLike | Any, example_input: Any = None) -> None:
        """Import the network once."""
        self.graph: Graph = as_graph(net, example_input)
        self._engines: dict[BoundConfig, BoundEngine] = {}
        self._names = {node.name: i for i, node in enumerate(self.graph.nodes)}

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The ONNX input shape of one sample (e.g. (1, 5))."""
        return tuple(self.graph.input_shape)

    @property
    def node_names(self) -> tuple[str, ...]:
        """Names of the graph's nodes in topological order (the input first)."""
        return tuple(node.name for node in self.graph.nodes)

    def engine(self, config: BoundConfig | None = None) -> BoundEngine:
        """The bound engine for ``config`` (one per distinct config, kept for reuse)."""
        config = config or BoundConfig()
        if config not in self._engines:
            self._engines[config] = BoundEngine(self.graph, config)
        return self._engines[config]

    def compute_bounds(
        self,
        lower: Any,
        upper: Any,
        method: str = "crown",
        C: Any = None,
        splits: Mapping[str, Any] | None = None,
        intermediate: bool = True,
        return_A: bool = False,
        config: BoundConfig | None = None,
    ) -> NetworkBounds:
        """Sound bounds of ``C @ y`` over the box [lower, upper]; shapes in the module docstring."""
        import torch

        if method not in METHODS:
            raise InputError(f"unknown bound method '{method}' (choose from {', '.join(METHODS)})")
        lo, hi, single = self._box(lower, upper)
        batch = lo.shape[0]
        cmat = self._spec(C)
        engine = self.engine(config)
        res = engine.compute(
            torch.from_numpy(lo),
            torch.from_numpy(hi),
            torch.from_numpy(cmat),
            method=method,
            splits=self._splits(splits, batch),
            need_ub=True,
        )
        m = cmat.shape[0]
        lb = res.lb.numpy().copy()
        ub = res.ub.numpy().copy() if res.ub is not None else np.full_like(lb, np.inf)
        shape = self.input_shape
        extra: dict[str, Any] = {}
        if return_A and res.linear is not None:
            a0, bias = (t.numpy() for t in res.linear)
            extra = {
                "lA": a0[:, :m].reshape(batch, m, *shape).copy(),
                "lbias": bias[:, :m].copy(),
                "uA": (-a0[:, m:]).reshape(batch, m, *shape).copy(),
                "ubias": (-bias[:, m:]).copy(),
            }
        inter: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if intermediate:
            for j, (plo, phi) in sorted(res.pre.items()):
                node = self.graph.nodes[j]
                inter[node.name] = (
                    plo.numpy().reshape(batch, *node.shape).copy(),
                    phi.numpy().reshape(batch, *node.shape).copy(),
                )
        if single:
            lb, ub = lb[0], ub[0]
            extra = {k: v[0] for k, v in extra.items()}
            inter = {k: (v[0][0], v[1][0]) for k, v in inter.items()}
        return NetworkBounds(lb, ub, method, intermediate=MappingProxyType(inter), **extra)

    # ------------------------------------------------------------------ helpers
    def _box(self, lower: Any, upper: Any) -> tuple[np.ndarray, np.ndarray, bool]:
        """Flat (B, n_in) float64 bounds and whether one box (not a batch) was given."""
        lo = np.asarray(lower, dtype=np.float64)
        hi = np.asarray(upper, dtype=np.float64)
        shape, n_in = self.input_shape, self.graph.n_inputs
        if lo.shape != hi.shape:
            raise InputError(f"lower {lo.shape} and upper {hi.shape} differ in shape")
        if lo.shape == shape or lo.shape == (n_in,):
            return lo.reshape(1, -1), hi.reshape(1, -1), True
        if lo.ndim >= 2 and (lo.shape[1:] == shape or lo.shape[1:] == (n_in,)):
            return lo.reshape(lo.shape[0], -1), hi.reshape(hi.shape[0], -1), False
        raise InputError(
            f"input box of shape {lo.shape} fits neither the input shape {shape} "
            f"nor a batch (B, *{shape})"
        )

    def _spec(self, C: Any) -> np.ndarray:
        """C as a float64 (m, n_out) matrix (the identity by default)."""
        n_out = self.graph.n_outputs
        cmat = np.eye(n_out) if C is None else np.asarray(C, dtype=np.float64)
        if cmat.ndim != 2 or cmat.shape[1] != n_out:
            raise InputError(f"C must be (m, {n_out}), got {cmat.shape}")
        return cmat

    def _splits(self, splits: Mapping[str, Any] | None, batch: int) -> Splits | None:
        """Named ReLU splits as the engine's Splits (one sign array per ReLU, tiled over B)."""
        import torch

        if not splits:
            return None
        relu: dict[int, torch.Tensor] = {}
        for name, signs in splits.items():
            j = self._names.get(name)
            if j is None or not isinstance(self.graph.nodes[j].op, Relu):
                relus = [n.name for n in self.graph.nodes if isinstance(n.op, Relu)]
                raise InputError(
                    f"splits: '{name}' is not a ReLU node (ReLU nodes: "
                    f"{', '.join(relus) or 'none'})"
                )
            size = self.graph.nodes[j].size
            arr = np.asarray(signs)
            if arr.size != size or not np.isin(arr, (-1, 0, 1)).all():
                raise InputError(f"splits['{name}'] must hold {size} entries of -1, 0 or +1")
            row = torch.as_tensor(arr.reshape(1, size), dtype=torch.int8)
            relu[j] = row.expand(batch, size).clone()
        return Splits(relu)


__all__ = ["BoundedNetwork", "NetworkBounds"]

"""The Python entry points: load_onnx, load_vnnlib, verify."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Union

import onnx

from .config import Deadline, VerifyConfig
from .graph import Graph
from .onnx_import import load_onnx as _load_graph
from .verdict import Result
from .vnnlib import Property, load_vnnlib as _load_property, parse_vnnlib

if TYPE_CHECKING:
    import torch

NetLike = Union[str, os.PathLike, bytes, onnx.ModelProto, Graph, "torch.nn.Module"]
PropLike = Union[str, os.PathLike, Property]


def load_onnx(source: NetLike) -> Graph:
    """Read an ONNX model (path, .onnx.gz, bytes or ModelProto) into a verifiable Graph."""
    if isinstance(source, Graph):
        return source
    return _load_graph(source)


def as_graph(net: NetLike, example_input: Any = None) -> Graph:
    """The one place every entry point turns what the user passed into a Graph.

    ``net``: a Graph, an ONNX path / bytes / ModelProto, or a ``torch.nn.Module``; a module
    needs ``example_input`` (a tensor of the input's shape, batch dimension included, or that
    shape as a tuple) and goes through ``completeverify.torch_import.load_torch``.
    """
    import sys

    torch_mod = sys.modules.get("torch")
    if torch_mod is not None and isinstance(net, torch_mod.nn.Module):
        from .torch_import import load_torch

        return load_torch(net, example_input)
    return load_onnx(net)


def load_vnnlib(source: PropLike, net: Graph | None = None) -> Property:
    """Read a VNNLIB property (path or .vnnlib.gz; or a Property), checked against ``net`` if given."""
    if isinstance(source, Property):
        return source
    n_in = net.n_inputs if net is not None else None
    n_out = net.n_outputs if net is not None else None
    if isinstance(source, str) and "(assert" in source and not os.path.exists(source):
        return parse_vnnlib(source, n_inputs=n_in, n_outputs=n_out)
    return _load_property(source, n_inputs=n_in, n_outputs=n_out)


def verify(net: NetLike, prop: PropLike, timeout: float | None = None, solver: str | None = None,
           config: VerifyConfig | None = None) -> Result:
    """Verify ``prop`` on ``net``; returns a Result with .status, .counterexample and .stats.

    ``timeout`` and ``solver`` override the corresponding fields of ``config``.
    """
    from dataclasses import replace

    from .pipeline import verify_graph

    config = config or VerifyConfig()
    if timeout is not None:
        config = replace(config, timeout=float(timeout))
    if solver is not None:
        config = replace(config, solver=solver)
    deadline = Deadline(config.timeout)
    graph = as_graph(net)
    if type(prop).__name__ == "BallProperty":  # an L-inf/L1/L2/L0 ball (robustness/)
        from .robustness.ball_verify import verify_ball

        return verify_ball(graph, prop, config, deadline)  # type: ignore[arg-type]
    prop = load_vnnlib(prop, graph)
    result = verify_graph(graph, prop, config, deadline)
    return result

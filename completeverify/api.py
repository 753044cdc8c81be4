"""The Python entry points: load_onnx, load_vnnlib, verify."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Union

import onnx

from .config import Deadline, Limits, SolverName, VerifyConfig
from .errors import ModelError
from .graph import Graph
from .onnx_import import load_onnx as _load_graph
from .verdict import Result
from .vnnlib import Property, parse_vnnlib
from .vnnlib import load_vnnlib as _load_property

if TYPE_CHECKING:
    import torch

NetLike = Union[str, os.PathLike, bytes, onnx.ModelProto, Graph, "torch.nn.Module"]
PropLike = Union[str, os.PathLike, Property]


def load_onnx(source: Union[str, os.PathLike, bytes, onnx.ModelProto, Graph],
              limits: Limits | None = None) -> Graph:
    """Read an ONNX model (path, .onnx.gz, bytes or ModelProto) into a verifiable Graph.

    ``limits`` (default: Limits()) bounds file sizes, tensor sizes and node counts.
    """
    if isinstance(source, Graph):
        return source
    return _load_graph(source, limits=limits)


def as_graph(net: NetLike, example_input: Any = None, limits: Limits | None = None) -> Graph:
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
    if not isinstance(net, (str, os.PathLike, bytes, onnx.ModelProto, Graph)):
        raise ModelError(f"cannot read a network from a {type(net).__name__}: pass an ONNX path, "
                         "bytes, a ModelProto, a Graph or a torch.nn.Module")
    return load_onnx(net, limits)


def load_vnnlib(source: PropLike, net: Graph | None = None, limits: Limits | None = None) -> Property:
    """Read a VNNLIB property (path or .vnnlib.gz; or a Property), checked against ``net`` if given."""
    if isinstance(source, Property):
        return source
    n_in = net.n_inputs if net is not None else None
    n_out = net.n_outputs if net is not None else None
    lim = limits or Limits()
    if isinstance(source, str) and "(assert" in source and not os.path.exists(source):
        return parse_vnnlib(source, n_inputs=n_in, n_outputs=n_out,
                            max_disjuncts=lim.max_disjuncts, max_depth=lim.max_nesting_depth)
    return _load_property(source, n_inputs=n_in, n_outputs=n_out,
                          max_disjuncts=lim.max_disjuncts, max_depth=lim.max_nesting_depth,
                          max_bytes=min(lim.max_property_bytes, lim.max_file_bytes),
                          max_compression_ratio=lim.max_compression_ratio)


def verify(net: NetLike, prop: PropLike, timeout: float | None = None, solver: SolverName | None = None,
           config: VerifyConfig | None = None, example_input: Any = None,
           device: str | None = None) -> Result:
    """Verify ``prop`` on ``net``; returns a Result with .status, .counterexample and .stats.

    ``timeout``, ``solver`` and ``device`` ("cpu", "cuda", "cuda:N") override the corresponding
    fields of ``config``.
    ``example_input``: for a torch module, its input shape or an example tensor (batch included).
    """
    from dataclasses import replace

    from .pipeline import verify_graph

    config = config or VerifyConfig()
    if timeout is not None:
        config = replace(config, timeout=float(timeout))
    if solver is not None:
        config = replace(config, solver=solver)
    if device is not None:
        config = replace(config, device=device)
    deadline = Deadline(config.timeout)
    graph = as_graph(net, example_input, limits=config.limits)
    prop = load_vnnlib(prop, graph, config.limits)
    result = verify_graph(graph, prop, config, deadline)
    return result

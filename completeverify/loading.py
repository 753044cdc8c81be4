"""Turning what a user passes as a network into a Graph: ONNX paths, bytes, ModelProtos,
Graphs and torch modules.  Below every stage that accepts a network (robustness, training,
the backend and the API all call ``as_graph``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Union

import onnx

from .config import Limits
from .errors import ModelError
from .graph import Graph
from .onnx_import import load_onnx as _load_graph

if TYPE_CHECKING:
    import torch

NetLike = Union[str, os.PathLike, bytes, onnx.ModelProto, Graph, "torch.nn.Module"]


def load_onnx(
    source: Union[str, os.PathLike, bytes, onnx.ModelProto, Graph], limits: Limits | None = None
) -> Graph:
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
        raise ModelError(
            f"cannot read a network from a {type(net).__name__}: pass an ONNX path, "
            "bytes, a ModelProto, a Graph or a torch.nn.Module"
        )
    return load_onnx(net, limits)

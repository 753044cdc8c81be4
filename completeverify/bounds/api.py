"""The public one-call API: compute_bounds(net, lower, upper, method, C)."""

from __future__ import annotations

import os
from typing import Union

import numpy as np
import torch

from ..errors import ModelError
from ..graph import Graph
from .engine import BoundEngine
from .input_sets import Ball
from .types import BoundConfig


def compute_bounds(
    net: Union[Graph, str, os.PathLike],
    lower: np.ndarray | None,
    upper: np.ndarray | None,
    method: str = "crown",
    C: np.ndarray | None = None,
    config: BoundConfig = BoundConfig(),
    input_set: Ball | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sound lower/upper bounds of the outputs (or of C @ y) over an input box.

    net: a Graph or the path of an .onnx file.  lower/upper: arrays shaped like one ONNX input
    (graph.input_shape) or a batch of them (B, *input_shape).  method: "ibp", "crown" or
    "alpha-crown".  C: optional (m, n_out) matrix; by default the identity (m = n_outputs).
    Returns (lb, ub), numpy float64, each (m,) for one input box or (B, m) for a batch.
    input_set: an L-inf/L1/L2/L0 ball ∩ domain (input_sets.Ball); lower/upper may then be None
    (the ball's bounding box is used) and the bounds hold over the ball only.
    """
    if input_set is not None and lower is None and upper is None:
        lower, upper = input_set.box()
    if not isinstance(net, Graph):
        from ..onnx_import import load_onnx

        net = load_onnx(net)
    lo = np.asarray(lower, dtype=np.float64)
    hi = np.asarray(upper, dtype=np.float64)
    shape = tuple(net.input_shape)
    if lo.shape != hi.shape:
        raise ModelError(f"lower {lo.shape} and upper {hi.shape} differ in shape")
    if lo.shape == shape or (lo.ndim == 1 and lo.size == net.n_inputs):
        single = True
        lo, hi = lo.reshape(1, -1), hi.reshape(1, -1)
    elif lo.shape[1:] == shape or (lo.ndim == 2 and lo.shape[1] == net.n_inputs):
        single = False
        lo, hi = lo.reshape(lo.shape[0], -1), hi.reshape(hi.shape[0], -1)
    else:
        raise ModelError(f"input box of shape {lo.shape} does not fit the input shape {shape}")
    cmat = np.eye(net.n_outputs) if C is None else np.asarray(C, dtype=np.float64)
    if cmat.ndim != 2 or cmat.shape[1] != net.n_outputs:
        raise ModelError(f"C must be (m, {net.n_outputs}), got {cmat.shape}")
    engine = BoundEngine(net, config, input_set=input_set)
    res = engine.compute(
        torch.from_numpy(lo),
        torch.from_numpy(hi),
        torch.from_numpy(cmat),
        method=method,
        need_ub=True,
    )
    lb = res.lb.cpu().numpy().copy()
    ub = res.ub.cpu().numpy().copy() if res.ub is not None else np.full_like(lb, np.inf)
    return (lb[0], ub[0]) if single else (lb, ub)

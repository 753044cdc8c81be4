"""The Python entry points: load_onnx, load_vnnlib, verify (as_graph lives in loading.py)."""

from __future__ import annotations

import os
from typing import Any, Union

from .config import Deadline, Limits, SolverName, VerifyConfig
from .graph import Graph
from .loading import NetLike, as_graph
from .verdict import Result
from .vnnlib import Property, parse_vnnlib
from .vnnlib import load_vnnlib as _load_property

PropLike = Union[str, os.PathLike, Property]


def load_vnnlib(
    source: PropLike, net: Graph | None = None, limits: Limits | None = None
) -> Property:
    """Read a VNNLIB property (path or .vnnlib.gz; or a Property), checked against ``net`` if
    given."""
    if isinstance(source, Property):
        return source
    n_in = net.n_inputs if net is not None else None
    n_out = net.n_outputs if net is not None else None
    lim = limits or Limits()
    if isinstance(source, str) and "(assert" in source and not os.path.exists(source):
        return parse_vnnlib(
            source,
            n_inputs=n_in,
            n_outputs=n_out,
            max_disjuncts=lim.max_disjuncts,
            max_depth=lim.max_nesting_depth,
        )
    return _load_property(
        source,
        n_inputs=n_in,
        n_outputs=n_out,
        max_disjuncts=lim.max_disjuncts,
        max_depth=lim.max_nesting_depth,
        max_bytes=min(lim.max_property_bytes, lim.max_file_bytes),
        max_compression_ratio=lim.max_compression_ratio,
    )


def verify(
    net: NetLike,
    prop: PropLike,
    timeout: float | None = None,
    solver: SolverName | None = None,
    config: VerifyConfig | None = None,
    example_input: Any = None,
    device: str | None = None,
) -> Result:
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
    if type(prop).__name__ == "BallProperty":  # an L-inf/L1/L2/L0 ball (robustness/)
        from .robustness.ball_verify import verify_ball

        return verify_ball(graph, prop, config, deadline)  # type: ignore[arg-type]
    prop = load_vnnlib(prop, graph, config.limits)
    result = verify_graph(graph, prop, config, deadline)
    return result

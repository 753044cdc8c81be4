"""completeverify: a sound and complete verifier for neural networks.

Public API::

    import completeverify as cv
    r = cv.verify("net.onnx", "prop.vnnlib", timeout=60)
    r.status            # Status.SAT / UNSAT / UNKNOWN / TIMEOUT (a str enum)
    r.counterexample    # None, or .input / .output numpy arrays in the ONNX shapes
"""

from .api import as_graph, load_onnx, load_vnnlib, verify
from .backend import BoundedNetwork, NetworkBounds
from .config import AttackConfig, BabConfig, MilpConfig, VerifyConfig
from .errors import (
    CompleteVerifyError,
    InputError,
    ModelError,
    PropertyError,
    SolverError,
    UnsupportedOperatorError,
)
from .verdict import Counterexample, Result, Status


def compute_bounds(net, lower, upper, method: str = "crown", C=None, config=None, example_input=None):
    """Sound bounds (lb, ub) of the outputs (or of C @ y) over the box [lower, upper]; see bounds.compute_bounds.

    The one-call form of BoundedNetwork(net, example_input).compute_bounds; config: a BoundConfig.
    """
    from .bounds import BoundConfig
    from .bounds import compute_bounds as _compute_bounds

    graph = as_graph(net, example_input)
    return _compute_bounds(graph, lower, upper, method=method, C=C, config=config or BoundConfig())


__all__ = [
    "AttackConfig", "BabConfig", "BoundedNetwork", "CompleteVerifyError", "Counterexample", "InputError", "MilpConfig",
    "ModelError", "NetworkBounds", "PropertyError", "Result", "SolverError", "Status", "UnsupportedOperatorError",
    "VerifyConfig", "as_graph", "compute_bounds", "load_onnx", "load_vnnlib", "verify",
]
__version__ = "0.1.0"

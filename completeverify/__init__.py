"""completeverify: a sound and complete verifier for neural networks.

Public API::

    import completeverify as cv
    r = cv.verify("net.onnx", "prop.vnnlib", timeout=60)
    r.status            # Status.SAT / UNSAT / UNKNOWN / TIMEOUT (a str enum)
    r.counterexample    # None, or .input / .output numpy arrays in the ONNX shapes
"""

from .api import load_onnx, load_vnnlib, verify
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


def compute_bounds(net, lower, upper, method: str = "crown", C=None):
    """Sound bounds (lb, ub) of the outputs (or of C @ y) over the box [lower, upper]; see bounds.compute_bounds."""
    from .bounds import compute_bounds as _compute_bounds

    return _compute_bounds(net, lower, upper, method=method, C=C)


__all__ = [
    "AttackConfig", "BabConfig", "CompleteVerifyError", "Counterexample", "InputError", "MilpConfig",
    "ModelError", "PropertyError", "Result", "SolverError", "Status", "UnsupportedOperatorError",
    "VerifyConfig", "compute_bounds", "load_onnx", "load_vnnlib", "verify",
]
__version__ = "0.1.0"

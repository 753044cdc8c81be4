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


def compute_bounds(net, lower, upper, method: str = "crown", C=None, input_shape=None):
    """Sound bounds (lb, ub) of the outputs (or of C @ y) over the box [lower, upper]; see bounds.compute_bounds.

    ``net`` may be a torch module; its input shape is ``input_shape`` or else lower's shape.
    """
    import numpy as np

    from .api import as_graph
    from .bounds import compute_bounds as _compute_bounds

    graph = as_graph(net, input_shape if input_shape is not None else np.shape(lower))
    return _compute_bounds(graph, lower, upper, method=method, C=C)


def load_torch(module, example_input):
    """A verifiable Graph of a torch module, its nodes named like the layers; see torch_import."""
    from .torch_import import load_torch as _load_torch

    return _load_torch(module, example_input)


def robust_loss(model, x, y, eps, norm="linf", method="ibp", beta=1.0, domain=(0.0, 1.0), **kw):
    """Scalar IBP / CROWN-IBP / PGD training loss of a torch module; see training.losses."""
    from .training.losses import robust_loss as _robust_loss

    return _robust_loss(model, x, y, eps, norm=norm, method=method, beta=beta, domain=domain, **kw)


def verified_error(model, x, y, eps, norm="linf", method="ibp", domain=(0.0, 1.0)):
    """Fraction of a batch not certified by sound IBP / CROWN-IBP / CROWN bounds."""
    from .training.losses import verified_error as _verified_error

    return _verified_error(model, x, y, eps, norm=norm, method=method, domain=domain)


__all__ = [
    "AttackConfig", "BabConfig", "CompleteVerifyError", "Counterexample", "InputError", "MilpConfig",
    "ModelError", "PropertyError", "Result", "SolverError", "Status", "UnsupportedOperatorError",
    "VerifyConfig", "compute_bounds", "load_onnx", "load_torch", "load_vnnlib", "robust_loss",
    "verified_error", "verify",
]
__version__ = "0.1.0"

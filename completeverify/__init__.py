"""completeverify: a sound and complete verifier for neural networks.

Public API::

    import completeverify as cv
    r = cv.verify("net.onnx", "prop.vnnlib", timeout=60)
    r.status            # Status.SAT / UNSAT / UNKNOWN / TIMEOUT (a str enum)
    r.counterexample    # None, or .input / .output numpy arrays in the ONNX shapes

Names are imported lazily (PEP 562): ``import completeverify`` loads neither torch nor
onnx, so the command line can arm its watchdog before any heavy import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import load_vnnlib, verify
    from .backend import BoundedNetwork, NetworkBounds
    from .config import AttackConfig, BabConfig, Limits, MilpConfig, VerifyConfig
    from .errors import (
        CompleteVerifyError,
        InputError,
        InternalError,
        ModelError,
        PropertyError,
        SolverError,
        UnsupportedOperatorError,
    )
    from .loading import as_graph, load_onnx
    from .robustness import Ball, BallProperty, RadiusResult
    from .robustness.certify import CertifyReport
    from .verdict import Counterexample, Result, Status

# public name -> the module that defines it
_LAZY = {
    "as_graph": "loading",
    "load_onnx": "loading",
    "load_vnnlib": "api",
    "verify": "api",
    "BoundedNetwork": "backend",
    "NetworkBounds": "backend",
    "Ball": "robustness",
    "BallProperty": "robustness",
    "RadiusResult": "robustness",
    "CertifyReport": "robustness.certify",
    "AttackConfig": "config",
    "BabConfig": "config",
    "Limits": "config",
    "MilpConfig": "config",
    "VerifyConfig": "config",
    "CompleteVerifyError": "errors",
    "InputError": "errors",
    "InternalError": "errors",
    "ModelError": "errors",
    "PropertyError": "errors",
    "SolverError": "errors",
    "UnsupportedOperatorError": "errors",
    "Counterexample": "verdict",
    "Result": "verdict",
    "Status": "verdict",
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'completeverify' has no attribute '{name}'")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """Module attributes, the lazy public names included."""
    return sorted(set(globals()) | set(__all__))


def compute_bounds(
    net,
    lower=None,
    upper=None,
    method: str = "crown",
    C=None,
    config=None,
    example_input=None,
    input_set=None,
):
    """Sound bounds (lb, ub) of the outputs (or of C @ y) over the box [lower, upper]; see
    bounds.compute_bounds.

    The one-call form of BoundedNetwork(net, example_input).compute_bounds; config: a BoundConfig.
    ``net`` may be a torch module; its input shape is ``example_input`` or else lower's shape.
    ``input_set``: a ``Ball`` (L-inf/L1/L2/L0 ball intersected with its domain box) instead of
    or inside the box.
    """
    import numpy as np

    from .bounds import BoundConfig
    from .bounds import compute_bounds as _compute_bounds
    from .loading import as_graph

    shape = example_input if example_input is not None or lower is None else np.shape(lower)
    graph = as_graph(net, shape)
    return _compute_bounds(
        graph, lower, upper, method=method, C=C, config=config or BoundConfig(), input_set=input_set
    )


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


def certified_radius(
    net, x, norm: str = "linf", label=None, domain=None, timeout: float = 60.0, **kwargs
):
    """Exact certified radius of x under norm -> RadiusResult; see robustness.radius."""
    from .robustness.radius import certified_radius as _certified_radius

    return _certified_radius(
        net, x, norm=norm, label=label, domain=domain, timeout=timeout, **kwargs
    )


def certify(
    net,
    x,
    y,
    eps=(),
    norm: str = "linf",
    timeout_per_input: float = 10.0,
    radius: bool = False,
    **kwargs,
):
    """Per-input verdicts per eps, PGD vs certified accuracy -> CertifyReport; see
    robustness.certify."""
    from .robustness.certify import certify as _certify

    return _certify(
        net, x, y, eps=eps, norm=norm, timeout_per_input=timeout_per_input, radius=radius, **kwargs
    )


__all__ = [
    "AttackConfig",
    "BabConfig",
    "BoundedNetwork",
    "CompleteVerifyError",
    "Counterexample",
    "Ball",
    "BallProperty",
    "CertifyReport",
    "InputError",
    "InternalError",
    "Limits",
    "MilpConfig",
    "ModelError",
    "NetworkBounds",
    "RadiusResult",
    "PropertyError",
    "Result",
    "SolverError",
    "Status",
    "UnsupportedOperatorError",
    "VerifyConfig",
    "as_graph",
    "certified_radius",
    "certify",
    "compute_bounds",
    "load_onnx",
    "load_torch",
    "load_vnnlib",
    "robust_loss",
    "verified_error",
    "verify",
]
__version__ = "0.1.0"

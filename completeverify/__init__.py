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


def compute_bounds(net, lower=None, upper=None, method: str = "crown", C=None, input_set=None):
    """Sound bounds (lb, ub) of the outputs (or of C @ y) over the box [lower, upper]; see bounds.compute_bounds."""
    from .bounds import compute_bounds as _compute_bounds

    return _compute_bounds(net, lower, upper, method=method, C=C, input_set=input_set)


def certified_radius(net, x, norm: str = "linf", label=None, domain=None, timeout: float = 60.0,
                     **kwargs):
    """Exact certified radius of x under norm -> RadiusResult; see robustness.radius."""
    from .robustness.radius import certified_radius as _certified_radius

    return _certified_radius(net, x, norm=norm, label=label, domain=domain, timeout=timeout,
                             **kwargs)


def certify(net, x, y, eps=(), norm: str = "linf", timeout_per_input: float = 10.0,
            radius: bool = False, **kwargs):
    """Per-input verdicts per eps, PGD vs certified accuracy -> CertifyReport; see robustness.certify."""
    from .robustness.certify import certify as _certify

    return _certify(net, x, y, eps=eps, norm=norm, timeout_per_input=timeout_per_input,
                    radius=radius, **kwargs)


def __getattr__(name: str):
    """Lazy re-exports of the robustness types (Ball, BallProperty, RadiusResult, CertifyReport)."""
    if name in ("Ball", "BallProperty", "RadiusResult", "robustness"):
        import importlib

        mod = importlib.import_module(".robustness", __name__)
        return mod if name == "robustness" else getattr(mod, name)
    if name == "CertifyReport":
        from .robustness.certify import CertifyReport

        return CertifyReport
    raise AttributeError(f"module 'completeverify' has no attribute {name!r}")


__all__ = [
    "AttackConfig", "BabConfig", "CompleteVerifyError", "Counterexample", "InputError", "MilpConfig",
    "ModelError", "PropertyError", "Result", "SolverError", "Status", "UnsupportedOperatorError",
    "VerifyConfig", "certified_radius", "certify", "compute_bounds", "load_onnx", "load_vnnlib",
    "verify",
]
__version__ = "0.1.0"

"""VNN-LIB property reader (installed as completeverify.vnnlib): 1.0 natively, 2.0 via PyPI vnnlib.

``parse_vnnlib`` / ``load_vnnlib`` turn a property into a :class:`Property`:
a tuple of :class:`Case` (an input box each) with the output polytopes
``{y : C y <= d}`` that are unsafe for that box. The property is violated
iff some case's box reaches one of its polytopes. A property whose formula
is constant false has no cases (it can never be violated).
"""

from .limits import MAX_TERMS
from .property_types import Case, Polytope, Property
from .reader import load_vnnlib, parse_vnnlib
from .v2 import detect_version

__all__ = [
    "MAX_TERMS",
    "Case",
    "Polytope",
    "Property",
    "detect_version",
    "load_vnnlib",
    "parse_vnnlib",
]

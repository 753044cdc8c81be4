"""Certified robustness beyond yes/no: exact certified radius, balls as input sets, certify.

Public entry points (re-exported by ``completeverify``): ``certified_radius``, ``certify``,
``Ball``, ``BallProperty``; see radius.py, certify.py and ball_verify.py.
"""

from ..bounds.input_sets import Ball
from .ball_verify import BallProperty
from .radius import RadiusResult, bisect_radius, certified_radius

__all__ = ["Ball", "BallProperty", "RadiusResult", "bisect_radius", "certified_radius"]

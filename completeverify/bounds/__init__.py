"""Fast sound bounds: IBP, CROWN, alpha-CROWN and beta-CROWN on a Graph (float64 throughout)."""

from .api import compute_bounds
from .engine import BoundEngine
from .types import AlphaState, BoundConfig, BoundResult, Splits, select_pre

__all__ = ["AlphaState", "BoundConfig", "BoundEngine", "BoundResult", "Splits", "compute_bounds", "select_pre"]

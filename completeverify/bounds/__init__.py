"""Fast sound bounds: IBP, CROWN, alpha-CROWN and beta-CROWN on a Graph (float64 throughout)."""

from .api import compute_bounds
from .cuts import BatchCuts, CutSet
from .engine import BoundEngine
from .pre import PreBounds, pre_to_numpy
from .types import (
    AlphaState,
    BoundConfig,
    BoundResult,
    Refinement,
    Splits,
    select_pre,
)

__all__ = [
    "AlphaState",
    "BatchCuts",
    "BoundConfig",
    "BoundEngine",
    "BoundResult",
    "CutSet",
    "PreBounds",
    "Refinement",
    "Splits",
    "compute_bounds",
    "pre_to_numpy",
    "select_pre",
]

"""What a branch-and-bound search reports back to the pipeline."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..bounds.pre import PreBounds
from ..verdict import Counterexample


class BabVerdict(enum.Enum):
    """Outcome of deciding one (case, polytope) pair."""

    PROVEN = "proven"  # the polytope is unreachable from the box
    FALSIFIED = "falsified"  # a replay-confirmed counterexample exists
    OPEN = "open"  # the search gave up (e.g. memory limit) without a verdict
    TIMEOUT = "timeout"  # the deadline passed


@dataclass
class BabOutcome:
    """A verdict for one pair, with the counterexample when FALSIFIED and search statistics."""

    verdict: BabVerdict
    counterexample: Counterexample | None = None
    domains: int = 0
    note: str = ""
    # TIMEOUT with every undecided domain still queued: a proven lower bound, over the box, of the
    # smallest margin min_p max_k (C_p y - d_p)_k of the searched polytopes (always <= 0)
    lower_bound: float | None = None


def falsified_outcomes(
    cex: Counterexample, poly_indices: list[int], domains: int
) -> dict[int, BabOutcome]:
    """A search's outcomes once a counterexample is confirmed: FALSIFIED for its polytope
    (confirm() checks every polytope of the case; cex.polytope indexes case.polytopes), OPEN for
    the other polytopes the search was deciding."""
    k = cex.polytope if cex.polytope in poly_indices else poly_indices[0]
    return {
        kk: (
            BabOutcome(BabVerdict.FALSIFIED, cex, domains)
            if kk == k
            else BabOutcome(BabVerdict.OPEN, domains=domains)
        )
        for kk in poly_indices
    }


MilpLeaf = Callable[[np.ndarray, np.ndarray, int, "PreBounds | None"], BabOutcome]
"""milp_leaf(lower (n_in,), upper (n_in,), poly_index, pre) -> the outcome of one exact leaf."""

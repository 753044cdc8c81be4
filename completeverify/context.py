"""The typed state that one verify() call passes to its stages (attack, bounds, BaB, MILP)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .bounds.pre import PreBounds
from .config import Deadline, VerifyConfig
from .graph import Graph
from .verdict import Replayer
from .vnnlib import Property

Stats = dict[str, float | int | str]
"""Named timings (seconds), counters and labels reported in Result.stats."""


@dataclass
class VerifyContext:
    """Mutable state of one verify() call, local to it: inputs, settings, clock, replay, rng."""

    graph: Graph
    prop: Property
    config: VerifyConfig
    deadline: Deadline
    replayer: Replayer
    rng: np.random.Generator
    stats: Stats = field(default_factory=dict)
    nested: bool = False  # a sub-search inside another one: its summary lines log at DEBUG

    def timed(self, key: str, t0: float) -> None:
        """Add the seconds since t0 to stats[key]."""
        self.add(key, time.monotonic() - t0)

    def add(self, key: str, amount: float) -> None:
        """Add amount to the numeric stats[key] (0 when absent)."""
        old = self.stats.get(key, 0)
        assert not isinstance(old, str), f"stats[{key!r}] is a label"
        self.stats[key] = old + amount


@dataclass
class Pair:
    """One (case, polytope) sub-problem still to decide."""

    case: int
    poly: int
    proven: bool = False
    pre: PreBounds | None = None  # intermediate bounds from the bound stage
    note: str = ""

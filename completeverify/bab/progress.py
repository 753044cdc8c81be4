"""The trend of a branch-and-bound search's global lower bound, to judge whether it will finish.

ReLU splitting hands a pair to the exact MILP once its queue passes ``milp_handoff_domains``.
On a small network that MILP is quick; on a large one (a CIFAR CNN, a deep MLP) it rarely
finishes, and a search whose global lower bound is still climbing towards 0 would have.  This
module keeps the (time, bound) history and extrapolates it linearly over a trailing window:
the search keeps going while the extrapolated bound reaches 0 within a share of the time left.
It decides nothing about soundness: only which exact stage gets the remaining time.
"""

from __future__ import annotations

import math
from collections import deque

MIN_WINDOW_S = 5.0  # the trend is measured over at least this many seconds ...
WINDOW_SHARE = 0.25  # ... or this share of the search so far, whichever is longer


class BoundTrend:
    """(time, global lower bound) samples of one search; ``reaches_zero`` extrapolates them."""

    def __init__(self, start: float) -> None:
        """start: time.monotonic() when the search began."""
        self.start = start
        self.samples: deque[tuple[float, float]] = deque()

    def add(self, now: float, glb: float) -> None:
        """Record the global lower bound at time now (non-finite values are skipped)."""
        if math.isfinite(glb):
            self.samples.append((now, glb))
            window = max(MIN_WINDOW_S, WINDOW_SHARE * (now - self.start))
            # keep one sample older than the window, so its full length is measured
            while len(self.samples) > 2 and self.samples[1][0] <= now - window:
                self.samples.popleft()

    def reaches_zero(self, now: float, remaining: float, share: float) -> bool:
        """True when the bound, extrapolated linearly from its trend over the trailing window,
        reaches 0 within share * remaining seconds (False without a full window of history or
        without progress)."""
        if share <= 0 or len(self.samples) < 2:
            return False
        window = max(MIN_WINDOW_S, WINDOW_SHARE * (now - self.start))
        t0, b0 = self.samples[0]
        t1, b1 = self.samples[-1]
        if t1 - t0 < window or b1 <= b0:
            return False
        if b1 >= 0:
            return True
        rate = (b1 - b0) / (t1 - t0)
        return -b1 / rate <= share * remaining


class Stall:
    """Batches in a row in which a search made no progress: its global lower bound did not rise
    (relative tolerance ``rel``) and its queue did not get shorter than it has ever been.

    A shrinking queue is progress too: a search that closes one child of most splits (filtered
    smart branching does) can hold its worst bound for many batches while it empties the tree.
    """

    def __init__(self, rel: float = 1e-6) -> None:
        """rel: the relative rise of the bound that counts as progress."""
        self.rel = rel
        self.best_glb = -math.inf
        self.min_queue = math.inf
        self.rounds = 0

    def update(self, glb: float, queue_len: int) -> int:
        """Record one batch's global lower bound and queue length; the stalled rounds so far."""
        best = self.best_glb
        rose = glb > best + self.rel * ((1.0 + abs(best)) if math.isfinite(best) else 1.0)
        shorter = queue_len < self.min_queue
        if rose:
            self.best_glb = glb
        if shorter:
            self.min_queue = queue_len
        self.rounds = 0 if rose or shorter else self.rounds + 1
        return self.rounds


def fitting_batch(batch_size: int, seconds_left: float, per_domain: float) -> int:
    """batch_size, or fewer domains where the last batch's pace per domain (seconds; 0: not
    measured yet) would overrun the time left, with a 25% margin; at least 1."""
    if per_domain <= 0 or not math.isfinite(seconds_left):  # no deadline: full batches
        return batch_size
    return max(1, min(batch_size, int(seconds_left / (1.25 * per_domain))))

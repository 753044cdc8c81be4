"""Both cores: the exact MILP of a whole case races the ReLU-splitting search on a second thread.

HiGHS releases the GIL while it solves, so a MILP started on a thread runs on the second core
while beta-CROWN keeps the first one busy (torch with one intra-op thread).  The MILP gets the
root intermediate bounds the search has just optimised with alpha-CROWN, so it starts from big-M
constants as tight as the search's own.  Whichever side decides first wins; the other stops: the
search polls ``verdict()`` once per batch, and the MILP is cancelled through its solver's interrupt
callback (``SolveLimits.cancel``).

When it pays.  Not on the 2-vCPU machine it was measured on, hence off by default
(config.bab.race_milp, CLI --race-milp).  Two busy threads there give about 1.2x the throughput
of one: two independent searches each ran ~40% slower (1,791 -> ~1,090 domains in 40 s on
mnist_fc 256x4), so the race slows the search and the MILP alike.  On a random 10-20x4-1 MLP
where the search stalls and hands off, search-then-MILP took 42.6 s and the race 49.1 s; on
oval21 the convolutional encoding also holds the GIL for seconds (17 s -> 36 s).  Whether machines
with independent cores gain was not measured.  Even when enabled, race.start_race skips
networks with convolutions or more than ``race_max_unstable`` unstable ReLUs at the root.

Soundness does not change: the MILP's answers go through the same ``_Search.exact`` as every
exact leaf (proof only from a proven dual bound above the margin, a counterexample only after its
ONNX replay), and the race only reports a case proven when every open polytope is.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

log = logging.getLogger(__name__)


def start_race(search) -> MilpRace | None:
    """The MILP racing a ReLU-splitting search (bab.relu_split._Search, after its root) on a
    second thread, started; None where config.bab.race_milp is off or the race does not serve
    (no HiGHS, under a second left, nothing open, convolutions, too many unstable ReLUs)."""
    cfg = search.cfg
    if not cfg.race_milp or search.run.config.solver != "highs" or search.root_pre is None:
        return None
    if search.deadline.remaining() < 1.0 or not bool(search.root_open.any()):
        return None
    nodes = search.graph.nodes
    if search.graph.has_convolutions():
        return None
    unstable = sum(
        int(((lo < 0) & (hi > 0)).sum())
        for j, (lo, hi) in search.root_pre.items()
        if any(n.op.caps.splittable and n.inputs[0] == j for n in nodes)
    )
    if unstable > cfg.race_max_unstable:
        log.debug("race: none (%d unstable ReLUs at the root)", unstable)
        return None
    polys = [p for p in range(search.P) if bool(search.root_open[p])]
    return MilpRace(search, search.root_pre, polys).start()


class MilpRace:
    """One background thread deciding the open polytopes of a search by MILP, one after another."""

    def __init__(self, search, root_pre: dict, polys: list[int]) -> None:
        """search: the _Search (for exact()); root_pre: flat numpy bounds; polys: positions to
        decide."""
        self.search = search
        self.root_pre = root_pre
        self.polys = list(polys)
        self.cancel = threading.Event()
        self.result: tuple[str, object] | None = None  # set once, by the thread
        self.rng = np.random.default_rng(
            search.run.config.seed + 1
        )  # numpy generators are not thread-safe
        self.thread = threading.Thread(
            target=self._main, name="completeverify-milp-race", daemon=True
        )
        self.seconds = 0.0

    def start(self) -> "MilpRace":
        """Start the thread; returns self."""
        log.info("race: MILP on %d polytope(s) starts on a second thread", len(self.polys))
        self.thread.start()
        return self

    def _main(self) -> None:
        """Decide each polytope in turn; stop at the first one that is not proven."""
        t0 = time.monotonic()
        verdict, cex = "proven", None
        try:
            for p in self.polys:
                if self.cancel.is_set():
                    verdict = "cancelled"
                    break
                verdict, cex = self.search.checks.exact(
                    self.root_pre, None, p, cancel=self.cancel, rng=self.rng
                )
                if verdict != "proven":
                    break
        except Exception as err:  # noqa: BLE001 - a failed race must not take the search down with it
            log.warning(
                "race: the MILP thread failed (%s: %s); the search goes on alone",
                type(err).__name__,
                err,
            )
            verdict, cex = "error", None
        self.seconds = time.monotonic() - t0
        self.result = (verdict, cex)
        log.info("race: MILP thread ends with '%s' after %.1f s", verdict, self.seconds)

    def verdict(self) -> tuple[str, object] | None:
        """('proven', None) or ('cex', Counterexample) once the MILP has decided; else None."""
        res = self.result
        if res is not None and res[0] in ("proven", "cex"):
            return res
        return None

    def stop(self) -> None:
        """Cancel the solve and wait for the thread (the solver checks the flag in its callback)."""
        self.cancel.set()
        self.thread.join(timeout=1.0)
        if self.thread.is_alive():
            log.warning(
                "race: the MILP thread did not stop within 1 s; its solve ends at the deadline"
            )
        self.search.run.stats["race_milp"] = (
            self.search.run.stats.get("race_milp", 0.0) + self.seconds
        )

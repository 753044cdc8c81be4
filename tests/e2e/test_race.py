"""The MILP that races the ReLU-splitting search on a second thread (completeverify/bab/race.py)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from test_bab_relu import GAPS, assert_agrees, build_run, instance

from completeverify.bab import relu_split as rs
from completeverify.bab.race import MilpRace
from completeverify.bab.types import BabVerdict
from completeverify.config import BabConfig

RACE_THREAD = "completeverify-milp-race"


def _stuck_search(monkeypatch) -> None:
    """Make the search unable to decide anything after its root: every batch goes back unchanged."""
    original = rs._Search.process

    def process(self, doms, queue, root=False):
        if root:
            return original(self, doms, queue, root=True)
        time.sleep(0.01)
        for d in doms:
            queue.push(d)
        return "", None, [], None

    monkeypatch.setattr(rs._Search, "process", process)


def _solve(seed: int, gap: float, race: bool, timeout: float = 30.0):
    layers, lower, upper, C, m = instance(seed)
    d = np.full(C.shape[0], m + gap)
    bab = BabConfig(stall_rounds=0, milp_handoff_domains=0)
    run = build_run(layers, lower, upper, C, d, bab, timeout=timeout, race=race)
    return rs.relu_split(run, 0, 0, None, run.deadline), (layers, lower, upper, C, d, m)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("gap", GAPS)
def test_race_alone_decides_correctly(monkeypatch, seed, gap):
    """With the search stuck, the racing MILP decides every instance, in agreement with the
    oracle."""
    _stuck_search(monkeypatch)
    out, inst = _solve(seed, gap, race=True)
    if "milp race" not in out.note and out.domains <= 1:
        # decided by the root bounds before the race starts: the verdict must still agree
        assert_agrees(out, inst)
        return
    assert "milp race" in out.note, out.note
    assert_agrees(out, inst)


def test_without_race_the_stuck_search_times_out(monkeypatch):
    """The control for the test above: the same stuck search alone decides only what its root
    does."""
    _stuck_search(monkeypatch)
    verdicts = [_solve(seed, -0.02, race=False, timeout=1.0)[0].verdict for seed in range(4)]
    assert BabVerdict.TIMEOUT in verdicts
    assert set(verdicts) <= {BabVerdict.TIMEOUT, BabVerdict.PROVEN}


def test_no_race_thread_survives_the_search():
    for seed in range(3):
        out, inst = _solve(seed, -0.02, race=True)
        assert_agrees(out, inst)
    assert not [t for t in threading.enumerate() if t.name == RACE_THREAD]


class _FakeRun:
    def __init__(self):
        from completeverify.config import VerifyConfig

        self.config = VerifyConfig()
        self.stats = {}


class _FakeSearch:
    """checks.exact() answers from a script; 'block' waits for the cancel flag."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.run = _FakeRun()
        self.calls = 0
        self.checks = self  # the race calls search.checks.exact (bab/pair_checks.py)

    def exact(self, pre, splits, p, cancel=None, rng=None):
        self.calls += 1
        a = self.answers[p]
        if a == "block":
            cancel.wait(30.0)
            return "unknown", None
        if a == "raise":
            raise RuntimeError("solver exploded")
        return a, ("cex-object" if a == "cex" else None)


def _finish(race: MilpRace) -> MilpRace:
    race.thread.join(5.0)
    return race


@pytest.mark.parametrize(
    "answers, expected",
    [
        (["proven", "proven"], ("proven", None)),
        (["proven", "cex"], ("cex", "cex-object")),
        (["proven", "unknown"], None),  # one polytope undecided: the case is not proven
        (["timeout", "proven"], None),
        (["raise"], None),  # a failing thread reports nothing, the search goes on
    ],
)
def test_race_verdicts(answers, expected):
    race = _finish(MilpRace(_FakeSearch(answers), {}, list(range(len(answers)))).start())
    assert race.verdict() == expected


def test_race_stops_after_the_first_undecided_polytope():
    search = _FakeSearch(["unknown", "proven", "proven"])
    _finish(MilpRace(search, {}, [0, 1, 2]).start())
    assert search.calls == 1


def test_stop_cancels_a_running_solve():
    race = MilpRace(_FakeSearch(["block"]), {}, [0]).start()
    time.sleep(0.05)
    t0 = time.monotonic()
    race.stop()
    assert time.monotonic() - t0 < 2.0
    assert not race.thread.is_alive()
    assert race.verdict() is None

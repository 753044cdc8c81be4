"""The global-lower-bound trend that decides whether a search hands off to the MILP."""

from __future__ import annotations

from completeverify.bab.progress import MIN_WINDOW_S, BoundTrend, Stall


def _trend(points, start=0.0):
    t = BoundTrend(start)
    for now, glb in points:
        t.add(now, glb)
    return t


def test_linear_climb_reaches_zero_only_with_enough_time():
    # -1.0 at t=0, +0.1 per second: 0 at t=10; at t=6 the bound is -0.4, 4 s to go
    t = _trend([(s, -1.0 + 0.1 * s) for s in range(7)])
    assert t.reaches_zero(6.0, remaining=8.0, share=0.5)  # 4 s <= 0.5 * 8 s
    assert not t.reaches_zero(6.0, remaining=7.9, share=0.5)
    assert not t.reaches_zero(6.0, remaining=100.0, share=0.0)  # share 0: never defer


def test_flat_falling_or_short_history_never_defers():
    assert not _trend([(s, -1.0) for s in range(10)]).reaches_zero(9.0, 1e9, 1.0)
    assert not _trend([(s, -1.0 - s) for s in range(10)]).reaches_zero(9.0, 1e9, 1.0)
    short = MIN_WINDOW_S / 2
    assert not _trend([(0.0, -1.0), (short, -0.5)]).reaches_zero(short, 1e9, 1.0)
    assert not _trend([]).reaches_zero(1.0, 1e9, 1.0)


def test_the_trend_is_the_recent_window_not_the_whole_search():
    # fast early progress, then a plateau longer than the window: no deferral
    early = [(s, -10.0 + s) for s in range(9)]  # -10 -> -2 in 8 s
    late = [(8.0 + s, -2.0) for s in range(1, 40)]  # flat for 39 s
    t = _trend(early + late)
    assert not t.reaches_zero(47.0, remaining=1e6, share=1.0)
    # non-finite samples (an empty queue's -inf) are ignored
    t.add(48.0, float("-inf"))
    assert t.samples[-1] == (47.0, -2.0)


def _stall(samples):
    s = Stall()
    return [s.update(glb, n) for glb, n in samples]


def test_a_flat_bound_with_a_growing_queue_stalls():
    assert _stall([(-1.0, 10), (-1.0, 12), (-1.0, 14), (-1.0, 16)]) == [0, 1, 2, 3]


def test_a_rising_bound_or_a_queue_shorter_than_ever_is_progress():
    # the bound holds while the queue empties: no stall (filtered smart branching does this)
    assert _stall([(-1.0, 100), (-1.0, 90), (-1.0, 80), (-1.0, 70)]) == [0, 0, 0, 0]
    # a queue that only wobbles back to an earlier length is not progress; a rise resets
    assert _stall([(-1.0, 50), (-1.0, 60), (-1.0, 55), (-1.0, 51), (-0.5, 70), (-0.5, 71)]) == [
        0,
        1,
        2,
        3,
        0,
        1,
    ]
    # a rise below the relative tolerance is not progress either
    assert _stall([(-1.0, 5), (-1.0 + 1e-9, 6)]) == [0, 1]


def test_fitting_batch_shrinks_to_the_time_left():
    from completeverify.bab.progress import fitting_batch

    assert fitting_batch(64, 10.0, 0.0) == 64  # pace not measured yet
    assert fitting_batch(64, 10.0, 0.01) == 64
    assert fitting_batch(64, 1.0, 0.1) == 8  # 1 s / (1.25 * 0.1 s)
    assert fitting_batch(64, 0.0, 0.1) == 1
    assert fitting_batch(64, float("inf"), 0.1) == 64  # no deadline (timeout=inf)

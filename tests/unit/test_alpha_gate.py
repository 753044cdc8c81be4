"""AlphaGate: when input splitting gives its open domains alpha-CROWN (bab/input_split.py)."""

from __future__ import annotations

from completeverify.bab.input_split import ALPHA_PROBE_EVERY, ALPHA_WINDOW, AlphaGate


def _rounds(gate: AlphaGate, n: int, done: int = 10_000) -> list[bool]:
    return [gate.wanted(done) for _ in range(n)]


def test_not_before_the_domain_count():
    gate = AlphaGate(after=1024, min_rate=0.1)
    assert not gate.wanted(1023)
    assert gate.wanted(1024)


def test_every_round_while_it_closes_enough():
    gate = AlphaGate(after=0, min_rate=0.1)
    for _ in range(50):
        assert gate.wanted(0)
        gate.record(100, 20)  # 20% closed


def test_one_round_in_probe_every_once_it_closes_too_few_and_back_when_it_recovers():
    gate = AlphaGate(after=0, min_rate=0.1)
    assert gate.wanted(0)
    gate.record(ALPHA_WINDOW, ALPHA_WINDOW // 50)  # 2% closed
    on = _rounds(gate, 4 * ALPHA_PROBE_EVERY)
    assert sum(on) == 4  # only the probe rounds
    # probes that close most of their domains bring it back within a few probes
    for _ in range(20):
        if gate.wanted(0):
            gate.record(100, 90)
    assert all(_rounds(gate, 5))


def test_a_zero_rate_runs_every_round():
    gate = AlphaGate(after=0, min_rate=0.0)
    gate.record(10 * ALPHA_WINDOW, 0)
    assert all(_rounds(gate, 20))


def test_the_rate_follows_the_recent_domains():
    gate = AlphaGate(after=0, min_rate=0.1)
    gate.record(100 * ALPHA_WINDOW, 50 * ALPHA_WINDOW)  # a long good history ...
    for _ in range(6):
        gate.record(ALPHA_WINDOW, 0)  # ... outweighed by a few windows of nothing
    assert sum(_rounds(gate, 2 * ALPHA_PROBE_EVERY)) == 2

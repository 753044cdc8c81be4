"""Cactus plot: the x-axis reaches the timeout, minor ticks on both axes."""

from __future__ import annotations

import pytest

from completeverify.bench.plot import cactus_plot, cactus_xlim
from completeverify.bench.results import ResultRow

pytest.importorskip("matplotlib")


def _rows(times, statuses, timeout=300.0):
    return [
        ResultRow("n.onnx", f"p{i}.vnnlib", timeout, s, t)
        for i, (t, s) in enumerate(zip(times, statuses))
    ]


def test_xlim_reaches_the_timeout():
    rows = _rows([0.4, 2.0, 15.0, 300.0], ["sat", "unsat", "unsat", "timeout"])
    assert cactus_xlim([("a", rows)]) == (0.1, 300.0)
    slow = _rows([0.05, 500.0], ["sat", "unsat"], timeout=120.0)  # decided after its timeout
    assert cactus_xlim([("a", rows), ("b", slow)]) == (0.01, 500.0)
    assert cactus_xlim([("a", _rows([60.0], ["timeout"], 60.0))]) == (0.6, 60.0)
    assert cactus_xlim([("a", [])]) is None


def test_plot_axis_and_minor_ticks(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figs = []
    monkeypatch.setattr(plt, "close", figs.append)  # keep the figure to inspect it
    rows = _rows([0.4, 2.0, 15.0, 300.0], ["sat", "unsat", "unsat", "timeout"])
    out = cactus_plot([("cv", rows)], tmp_path / "c.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
    ax = figs[0].axes[0]
    assert ax.get_xlim()[1] == pytest.approx(300.0)
    minor = [t for t in ax.xaxis.get_minorticklocs() if 0.1 < t < 300]
    assert len(minor) >= 16  # 2..9 in each decade
    assert len(ax.yaxis.get_minorticklocs()) > 0
    line = ax.lines[0]
    assert max(line.get_xdata()) == pytest.approx(300.0)  # the step runs flat to the timeout
    for fig in figs:
        fig.clf()

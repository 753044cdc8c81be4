"""Cactus plots: instances decided (sat or unsat) against time, one line per results file."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Optional, Sequence

from ..errors import InputError
from .results import ResultRow
from .suite import DECIDED

log = logging.getLogger(__name__)


def cactus_points(rows: Sequence[ResultRow]) -> tuple[list[float], list[int]]:
    """Sorted decision times and the running count of decided instances."""
    times = sorted(max(r.seconds, 1e-3) for r in rows if r.status in DECIDED)
    return times, list(range(1, len(times) + 1))


def cactus_xlim(series: Sequence[tuple[str, Sequence[ResultRow]]]) -> tuple[float, float] | None:
    """The x range (seconds): from the decade below the fastest decision up to the largest timeout.

    The right end is the largest per-instance timeout (or the slowest decision, if later), so
    the axis shows how close to its budget the tool got; None when there is nothing to plot.
    """
    times = [t for _, rows in series for t in cactus_points(rows)[0]]
    timeouts = [r.timeout for _, rows in series for r in rows if r.timeout > 0]
    if not times and not timeouts:
        return None
    right = max(times + timeouts)
    left = 10.0 ** math.floor(math.log10(min(times))) if times else right / 100.0
    return left, max(right, left * 10.0)


def default_labels(paths: Sequence[Path]) -> list[str]:
    """File stems, or parent/stem where stems repeat."""
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    return [f"{p.parent.name}/{p.stem}" for p in paths]


def cactus_plot(
    series: Sequence[tuple[str, Sequence[ResultRow]]], out: str | Path, title: Optional[str] = None
) -> Path:
    """Draw the overlaid cactus plot of ``(label, rows)`` series to a PNG (or any matplotlib
    format)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import AutoMinorLocator, FuncFormatter, LogLocator, NullFormatter
    except ImportError:
        raise InputError("plotting needs matplotlib: pip install 'completeverify[plot]'") from None
    out = Path(out)
    if not out.parent.is_dir():
        raise InputError(f"folder of the plot file does not exist: {out.parent}")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
        total = max((len(rows) for _, rows in series), default=0)
        xlim = cactus_xlim(series)
        for label, rows in series:
            times, counts = cactus_points(rows)
            n_sat = sum(r.status == "sat" for r in rows)
            n_unsat = sum(r.status == "unsat" for r in rows)
            legend = f"{label} ({len(times)}/{len(rows)}: {n_sat} sat, {n_unsat} unsat)"
            if times:
                end = [xlim[1]] if xlim and xlim[1] > times[-1] else []  # flat up to the timeout
                ax.step(
                    [times[0]] + times + end,
                    [0] + counts + counts[-1:] * len(end),
                    where="post",
                    label=legend,
                )
                ax.plot(times[-1], counts[-1], marker="o", color=ax.lines[-1].get_color())
            else:
                ax.plot([], [], label=legend)
        ax.set_xscale("log")
        if xlim is not None:
            ax.set_xlim(*xlim)
            timeouts = {r.timeout for _, rows in series for r in rows if r.timeout > 0}
            if len(timeouts) == 1:
                ax.axvline(xlim[1], color="grey", linestyle="--", linewidth=0.8)
                ax.annotate(
                    f"timeout {xlim[1]:g} s",
                    (xlim[1], 0),
                    xytext=(-4, 4),
                    textcoords="offset points",
                    ha="right",
                    fontsize="small",
                    color="grey",
                )
        ax.xaxis.set_major_locator(LogLocator(base=10.0))
        ax.xaxis.set_minor_locator(LogLocator(base=10.0, subs=tuple(range(2, 10)), numticks=100))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_locator(AutoMinorLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("time per instance (s, log scale)")
        ax.set_ylabel("instances decided")
        ax.set_ylim(0, max(total, 1) * 1.05)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(title or "completeverify: instances decided within a given time")
        ax.legend(loc="upper left", fontsize="small")
        fig.tight_layout()
        try:
            fig.savefig(out, dpi=120)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot write the plot {out}: {exc}") from None
    finally:
        plt.close(fig)
    log.info("wrote %s", out)
    return out

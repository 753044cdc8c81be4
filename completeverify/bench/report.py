"""Summaries of a results table, optionally against the agreed verdicts of a ground_truth.csv."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from .results import STATUSES, ResultRow
from .suite import DECIDED, is_wrong, normalize_key, resolved_key

MAX_LISTED = 20  # undecided-but-known instances listed by name before "... and N more"


@dataclass
class Summary:
    """Counts and disagreements over one suite's rows."""

    total: int
    counts: Counter
    seconds: dict[str, float]
    compared: bool = False
    agree: int = 0
    wrong: list[tuple[ResultRow, str]] = field(default_factory=list)
    missed: list[tuple[ResultRow, str]] = field(default_factory=list)
    new: list[ResultRow] = field(default_factory=list)
    no_truth: list[ResultRow] = field(default_factory=list)

    @property
    def decided(self) -> int:
        """Instances answered sat or unsat."""
        return self.counts["sat"] + self.counts["unsat"]


def summarize(
    rows: Sequence[ResultRow],
    total: int,
    expected: Optional[dict[tuple[str, str], str]] = None,
    folders: Optional[tuple[Path, Path]] = None,
) -> Summary:
    """Counts per status, seconds per status, and (with ``expected``) every disagreement.

    ``folders``: the folders of the instances CSV and of the ground truth.  With them a row
    matches the ground-truth row that names the same files (a subset CSV kept elsewhere, or
    one with absolute paths); the text of the paths, as both files write them, is the
    fallback."""
    counts: Counter = Counter(r.status for r in rows)
    seconds: dict[str, float] = {s: 0.0 for s in STATUSES}
    for r in rows:
        seconds[r.status] = seconds.get(r.status, 0.0) + r.seconds
    summary = Summary(total, counts, seconds, compared=expected is not None)
    if expected is None:
        return summary
    by_file: dict[tuple[str, str], str] = {}
    if folders is not None:
        for (onnx, vnnlib), verdict in expected.items():
            by_file.setdefault(resolved_key(folders[1], onnx, vnnlib), verdict)
    for r in rows:
        consensus = None
        if folders is not None:
            consensus = by_file.get(resolved_key(folders[0], r.onnx, r.vnnlib))
        if consensus is None:
            consensus = expected.get(normalize_key(r.onnx, r.vnnlib))
        if consensus is None:
            summary.no_truth.append(r)
        elif is_wrong(r.status, consensus):
            summary.wrong.append((r, consensus))
        elif r.status in DECIDED and r.status == consensus:
            summary.agree += 1
        elif r.status in DECIDED:
            summary.new.append(r)  # decided where nobody agreed on a verdict
        elif consensus in DECIDED:
            summary.missed.append((r, consensus))
    return summary


def format_summary(s: Summary, expected_name: str = "ground truth") -> str:
    """The summary table as text (what ``completeverify bench`` prints at the end)."""
    lines = [f"{'status':<9}{'count':>7}{'seconds':>11}"]
    for status in STATUSES:
        lines.append(f"{status:<9}{s.counts[status]:>7}{s.seconds.get(status, 0.0):>11.1f}")
    done = sum(s.counts.values())
    lines.append(
        f"{'decided':<9}{s.decided:>7}{s.seconds['sat'] + s.seconds['unsat']:>11.1f}"
        f"   ({s.decided} of {s.total} instances; {done} have a row)"
    )
    if not s.compared:
        return "\n".join(lines)
    lines.append("")
    lines.append(
        f"against {expected_name}: {s.agree} agree, {len(s.wrong)} wrong, "
        f"{len(s.missed)} undecided where the consensus is decided, "
        f"{len(s.new)} decided where there is no consensus"
        + (f", {len(s.no_truth)} not in the file" if s.no_truth else "")
    )
    for r, consensus in s.wrong:
        lines.append(f"  WRONG      {r.onnx},{r.vnnlib}: {r.status}, consensus {consensus}")
    for r in s.new:
        lines.append(f"  NEW        {r.onnx},{r.vnnlib}: {r.status}, no consensus")
    for r, consensus in s.missed[:MAX_LISTED]:
        lines.append(f"  undecided  {r.onnx},{r.vnnlib}: {r.status}, consensus {consensus}")
    if len(s.missed) > MAX_LISTED:
        lines.append(f"  ... and {len(s.missed) - MAX_LISTED} more undecided")
    return "\n".join(lines)


def progress_counts(rows: Sequence[ResultRow]) -> dict[str, int]:
    """The counts shown next to the progress bar."""
    c = Counter(r.status for r in rows)
    return {
        "decided": c["sat"] + c["unsat"],
        "sat": c["sat"],
        "unsat": c["unsat"],
        "unknown": c["unknown"] + c["timeout"],
        "error": c["error"],
    }

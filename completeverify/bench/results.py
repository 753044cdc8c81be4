"""The results CSV written by ``completeverify bench`` and read by ``completeverify plot``.

One header line, then one row per instance, columns in this order:

``onnx``
    the network path exactly as written in ``instances.csv`` (relative to its folder)
``vnnlib``
    the property path exactly as written in ``instances.csv``
``timeout``
    the timeout the instance ran with, in seconds (after ``--timeout-scale`` / ``--timeout-cap``)
``status``
    ``sat``, ``unsat``, ``unknown``, ``timeout`` or ``error``
``seconds``
    wall-clock seconds of the verifier process, start-up included
``counterexample``
    for ``sat``: path of the VNN-COMP result file holding the counterexample, relative
    to the results CSV's folder; empty otherwise
``message``
    free text: the verifier's note, or the reason for ``error`` / ``timeout``

Rows are appended one at a time with a single ``write`` call followed by
``fsync``, so an interrupted run leaves at most a trailing partial line, which
is dropped when the file is opened again.  Other tools' results can be
converted to this format; ``plot`` needs only ``status`` and ``seconds``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from ..errors import InputError

log = logging.getLogger(__name__)

COLUMNS = ("onnx", "vnnlib", "timeout", "status", "seconds", "counterexample", "message")
STATUSES = ("sat", "unsat", "unknown", "timeout", "error")


@dataclass(frozen=True)
class ResultRow:
    """One line of the results CSV."""

    onnx: str
    vnnlib: str
    timeout: float
    status: str
    seconds: float
    counterexample: str = ""
    message: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """The (onnx, vnnlib) pair."""
        return (self.onnx, self.vnnlib)

    def to_line(self) -> str:
        """The row as one CSV line, newline included."""
        buf = io.StringIO()
        values = asdict(self)
        values["timeout"] = f"{self.timeout:g}"
        values["seconds"] = f"{self.seconds:.3f}"
        values["message"] = " ".join(self.message.split())
        csv.writer(buf, lineterminator="\n").writerow([values[c] for c in COLUMNS])
        return buf.getvalue()


def _header_line() -> str:
    """The header as one CSV line."""
    return ",".join(COLUMNS) + "\n"


def _parse_float(text: str, where: str, column: str) -> float:
    """A float cell, or an InputError naming the place."""
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{where}: column '{column}' is not a number: '{text}'") from None


def read_results(path: str | Path, *, require_all: bool = False) -> list[ResultRow]:
    """The complete rows of a results CSV (a trailing partial line is ignored).

    With ``require_all`` every column of ``COLUMNS`` must be present; otherwise
    only ``status`` and ``seconds`` are needed (results converted from other tools).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"results file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # an interrupted write: drop the partial line
    reader = csv.reader(io.StringIO(text))
    header = [c.strip().lower() for c in next(reader, [])]
    needed = COLUMNS if require_all else ("status", "seconds")
    missing = [c for c in needed if c not in header]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} in the header")
    rows = []
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        where = f"{path}:{reader.line_num}"
        if len(cells) != len(header):
            raise InputError(f"{where}: expected {len(header)} columns, got {len(cells)}")
        cell = dict(zip(header, (c.strip() for c in cells)))
        status = cell["status"].lower()
        if status not in STATUSES:
            raise InputError(f"{where}: unknown status '{cell['status']}'")
        timeout = _parse_float(cell["timeout"], where, "timeout") if cell.get("timeout") else 0.0
        rows.append(
            ResultRow(
                cell.get("onnx", ""),
                cell.get("vnnlib", ""),
                timeout,
                status,
                _parse_float(cell["seconds"], where, "seconds"),
                cell.get("counterexample", ""),
                cell.get("message", ""),
            )
        )
    return rows


class ResultsWriter:
    """Appends rows to a results CSV durably; knows which instances it already holds."""

    def __init__(self, path: str | Path) -> None:
        """Open (or create) the file, dropping a trailing partial line, and load its rows."""
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise InputError(f"folder of --out does not exist: {self.path.parent}")
        self.rows: list[ResultRow] = []
        if self.path.exists() and self.path.stat().st_size > 0:
            self._drop_partial_line()
            self.rows = read_results(self.path, require_all=True)
        self._fd: Optional[int] = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if os.fstat(self._fd).st_size == 0:
            self._write(_header_line())

    def _drop_partial_line(self) -> None:
        """Truncate the file after its last newline, so appends start on a fresh line."""
        data = self.path.read_bytes()
        if data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        log.warning("%s: dropping an incomplete last line left by an interrupted run", self.path)
        with open(self.path, "r+b") as fh:
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())

    def _write(self, line: str) -> None:
        """One write call, then fsync."""
        if self._fd is None:
            raise ValueError("results file is closed")
        data = line.encode("utf-8")
        written = os.write(self._fd, data)
        if written != len(data):  # regular files write fully; guard anyway
            raise OSError(f"{self.path}: short write ({written} of {len(data)} bytes)")
        os.fsync(self._fd)

    def done(self) -> set[tuple[str, str]]:
        """The (onnx, vnnlib) pairs already in the file."""
        return {r.key for r in self.rows}

    def append(self, row: ResultRow) -> None:
        """Write one row durably."""
        self._write(row.to_line())
        self.rows.append(row)

    def close(self) -> None:
        """Close the file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "ResultsWriter":
        """Context manager entry."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Context manager exit: close."""
        self.close()

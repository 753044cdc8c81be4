"""Reading benchmark suites: VNN-COMP ``instances.csv`` and ``ground_truth.csv`` files.

``instances.csv`` is read as the competition publishes it: no header, one
``onnx,vnnlib,timeout`` row per instance, paths relative to the CSV's folder
(``.gz`` allowed; the verify command reads gzip itself), CRLF or LF line ends,
blank lines ignored.  A header row ``onnx,vnnlib,timeout`` is tolerated.

``ground_truth.csv`` has a header; only its ``onnx``, ``vnnlib`` and
``consensus`` columns are read.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from ..errors import InputError

log = logging.getLogger(__name__)

DECIDED = ("sat", "unsat")


@dataclass(frozen=True)
class Instance:
    """One row of an ``instances.csv``: paths as written there, and the published timeout."""

    onnx: str
    vnnlib: str
    timeout: float
    folder: Path

    @property
    def key(self) -> tuple[str, str]:
        """The (onnx, vnnlib) pair that identifies the instance in results files."""
        return (self.onnx, self.vnnlib)

    @property
    def onnx_path(self) -> Path:
        """The network's path, resolved against the CSV's folder."""
        return (self.folder / self.onnx).resolve()

    @property
    def vnnlib_path(self) -> Path:
        """The property's path, resolved against the CSV's folder."""
        return (self.folder / self.vnnlib).resolve()


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """CSV rows of a file with their 1-based line numbers, blank rows dropped."""
    if not path.is_file():
        raise InputError(f"file not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            rows = []
            for row in reader:
                cells = [c.strip() for c in row]
                if any(cells):
                    rows.append((reader.line_num, cells))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    return rows


def read_instances(path: str | Path) -> list[Instance]:
    """All instances of a VNN-COMP ``instances.csv``, in file order, duplicates dropped."""
    path = Path(path)
    folder = path.resolve().parent
    instances: list[Instance] = []
    seen: set[tuple[str, str]] = set()
    for index, (line, cells) in enumerate(_read_rows(path)):
        if index == 0 and [c.lower() for c in cells[:3]] == ["onnx", "vnnlib", "timeout"]:
            continue
        if len(cells) < 3 or not cells[0] or not cells[1]:
            raise InputError(
                f"{path}:{line}: expected 'onnx,vnnlib,timeout', got '{','.join(cells)}'"
            )
        try:
            timeout = float(cells[2])
        except ValueError:
            raise InputError(f"{path}:{line}: timeout is not a number: '{cells[2]}'") from None
        if not (math.isfinite(timeout) and timeout > 0):
            raise InputError(f"{path}:{line}: timeout must be positive: '{cells[2]}'")
        inst = Instance(cells[0], cells[1], timeout, folder)
        if inst.key in seen:
            log.warning("%s:%d: duplicate instance %s,%s ignored", path, line, *inst.key)
            continue
        seen.add(inst.key)
        instances.append(inst)
    if not instances:
        raise InputError(f"{path}: no instances")
    return instances


def normalize_key(onnx: str, vnnlib: str) -> tuple[str, str]:
    """A matching key that ignores a ``.gz`` suffix, ``./`` prefixes and backslashes."""

    def norm(p: str) -> str:
        p = p.strip().replace("\\", "/")
        while p.startswith("./"):
            p = p[2:]
        return p[:-3] if p.endswith(".gz") else p

    return (norm(onnx), norm(vnnlib))


def resolved_key(folder: Path, onnx: str, vnnlib: str) -> tuple[str, str]:
    """The key of the files a row names: both paths resolved against the folder of the CSV that
    holds it, a ``.gz`` suffix ignored (rows of CSVs in different folders, or with absolute
    paths, match when they name the same files)."""
    return normalize_key(
        str((folder / onnx.strip()).resolve()), str((folder / vnnlib.strip()).resolve())
    )


def read_expected(path: str | Path) -> dict[tuple[str, str], str]:
    """The ``consensus`` verdict of every row of a ``ground_truth.csv``, keyed by normalized (onnx,
    vnnlib)."""
    path = Path(path)
    rows = _read_rows(path)
    if not rows:
        raise InputError(f"{path}: empty file")
    header = [c.lower() for c in rows[0][1]]
    missing = [c for c in ("onnx", "vnnlib", "consensus") if c not in header]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} in the header")
    io, iv, ic = header.index("onnx"), header.index("vnnlib"), header.index("consensus")
    expected: dict[tuple[str, str], str] = {}
    for line, cells in rows[1:]:
        if len(cells) <= max(io, iv, ic):
            raise InputError(f"{path}:{line}: too few columns")
        expected[normalize_key(cells[io], cells[iv])] = cells[ic].lower()
    return expected


def select(instances: Iterable[Instance], pattern: Optional[str]) -> list[Instance]:
    """Instances whose ``onnx,vnnlib`` text matches the regular expression (all when None)."""
    if not pattern:
        return list(instances)
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise InputError(f"--filter is not a valid regular expression: {exc}") from None
    return [i for i in instances if regex.search(f"{i.onnx},{i.vnnlib}")]


def effective_timeout(published: float, scale: float = 1.0, cap: Optional[float] = None) -> float:
    """The timeout an instance runs with: published x scale, at most cap."""
    t = published * scale
    return min(t, cap) if cap is not None else t


def is_wrong(status: str, consensus: Optional[str]) -> bool:
    """True for a verdict that contradicts a decided consensus (sat vs unsat or the reverse)."""
    return status in DECIDED and consensus in DECIDED and status != consensus

"""One benchmark run: read the suite, skip what --out already holds, run the rest, append rows."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..config import VerifyConfig
from ..errors import InputError
from .report import Summary, summarize
from .results import ResultRow, ResultsWriter
from .runner import DEFAULT_GRACE, check_isolation, execute, make_job
from .suite import Instance, effective_timeout, read_expected, read_instances, select

log = logging.getLogger(__name__)


@dataclass
class BenchOptions:
    """The knobs of ``completeverify bench``."""

    instances: Path
    out: Path
    workers: int = 1
    scheduler: Optional[str] = None
    timeout_scale: float = 1.0
    timeout_cap: Optional[float] = None
    filter: Optional[str] = None
    expected: Optional[Path] = None
    command: Optional[Sequence[str]] = None
    grace: float = DEFAULT_GRACE
    isolation: Optional[str] = None  # fork | spawn; None: fork locally, spawn on Dask
    config: Optional[Path] = None  # VerifyConfig YAML for every instance (the CSV sets timeouts)


@dataclass
class BenchOutcome:
    """What a run did and what the suite's rows now say."""

    selected: list[Instance]
    skipped: int
    ran: int
    rows: list[ResultRow]
    summary: Summary
    files_dir: Path


def files_dir_for(out: Path) -> Path:
    """Folder for the per-instance VNN-COMP result files: ``results.csv`` -> ``results_files/``."""
    return out.with_name(out.stem + "_files")


def run_bench(
    opts: BenchOptions,
    on_start: Optional[Callable[[int, list[ResultRow]], None]] = None,
    on_row: Optional[Callable[[ResultRow], None]] = None,
) -> BenchOutcome:
    """Run every selected instance not yet in ``opts.out``; rows are written as they finish.

    ``on_start(n_to_run, rows_already_done)`` is called once before the first
    instance starts, ``on_row(row)`` after each row is on disk.
    """
    if opts.workers < 1:
        raise InputError("--workers must be at least 1")
    if not opts.timeout_scale > 0:
        raise InputError("--timeout-scale must be positive")
    if opts.timeout_cap is not None and not opts.timeout_cap > 0:
        raise InputError("--timeout-cap must be positive")
    check_isolation(opts.isolation, opts.scheduler)
    if opts.config is not None:  # a bad file is one error now, not one error row per instance
        VerifyConfig.from_yaml(opts.config)
    selected = select(read_instances(opts.instances), opts.filter)
    expected = read_expected(opts.expected) if opts.expected else None
    if not selected:
        raise InputError(f"--filter '{opts.filter}' matches no instance of {opts.instances}")
    out = Path(opts.out)
    files_dir = files_dir_for(out)
    with ResultsWriter(out) as writer:
        done = writer.done()
        todo = [i for i in selected if i.key not in done]
        skipped = len(selected) - len(todo)
        if skipped:
            log.info("%d of %d instances already in %s, skipped", skipped, len(selected), out)
        jobs = [
            make_job(
                i,
                effective_timeout(i.timeout, opts.timeout_scale, opts.timeout_cap),
                files_dir,
                out.parent,
                opts.command,
                opts.grace,
                opts.config,
                # verifiers side by side each get one torch thread, not two on a CNN
                1 if opts.workers > 1 or opts.scheduler else None,
            )
            for i in todo
        ]
        keys = {i.key for i in selected}
        if on_start is not None:
            on_start(len(jobs), [r for r in writer.rows if r.key in keys])
        ran = 0
        if jobs:
            files_dir.mkdir(parents=True, exist_ok=True)
            for row in execute(jobs, opts.workers, opts.scheduler, opts.isolation):
                writer.append(row)
                ran += 1
                if on_row is not None:
                    on_row(row)
        rows_by_key = {r.key: r for r in writer.rows if r.key in keys}
    rows = [rows_by_key[i.key] for i in selected if i.key in rows_by_key]
    summary = summarize(rows, len(selected), expected, expected_folders(opts))
    return BenchOutcome(selected, skipped, ran, rows, summary, files_dir)


def expected_folders(opts: BenchOptions) -> Optional[tuple[Path, Path]]:
    """The folders of the instances CSV and of the ground truth (None without one): rows are
    matched to the ground truth by the files they name."""
    if opts.expected is None:
        return None
    return Path(opts.instances).resolve().parent, Path(opts.expected).resolve().parent

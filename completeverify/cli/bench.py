"""The ``bench`` and ``plot`` subcommands; the only part of completeverify.bench that prints.

Exit codes of ``bench``: 0 when the run finished and no verdict contradicts
``--expected``; 3 when some verdict is wrong (sat where the consensus is unsat,
or unsat where it is sat); 2 for bad input; 130 when interrupted (rows written
so far are kept; rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from .args import positive_float, positive_int

if TYPE_CHECKING:
    from ..bench.run import BenchOptions

EXIT_WRONG = 3


def add_parser(sub: "argparse._SubParsersAction") -> None:
    """Add ``bench`` and ``plot`` to the top-level subparsers."""
    p = sub.add_parser(
        "bench",
        help="run a VNN-COMP style instances.csv, one process per instance",
        description="Run every instance of a VNN-COMP instances.csv (onnx,vnnlib,timeout; "
        "no header; paths relative to the CSV) in its own process and append "
        "one row per instance to --out. Rerunning with the same --out resumes. "
        "Exit code 3 when a verdict contradicts --expected.",
    )
    p.add_argument("instances", help="instances.csv")
    p.add_argument(
        "--out",
        default="results.csv",
        help="results CSV, appended to and resumed (default results.csv)",
    )
    p.add_argument(
        "--workers", type=positive_int, default=1, help="instances run at once on this machine"
    )
    p.add_argument(
        "--scheduler", metavar="ADDRESS", help="Dask scheduler address (e.g. tcp://host:8786)"
    )
    p.add_argument(
        "--timeout-scale",
        type=positive_float,
        default=1.0,
        metavar="F",
        help="multiply every published timeout by F",
    )
    p.add_argument(
        "--timeout-cap",
        type=positive_float,
        metavar="S",
        help="never give an instance more than S seconds",
    )
    p.add_argument(
        "--filter", metavar="REGEX", help="run only rows whose 'onnx,vnnlib' matches REGEX"
    )
    p.add_argument(
        "--expected", metavar="GROUND_TRUTH", help="ground_truth.csv with a 'consensus' column"
    )
    p.add_argument(
        "--config",
        metavar="FILE.yaml",
        help="verify every instance with these options (VerifyConfig keys, as verify --config; "
        "e.g. benchmarks/configs/CATEGORY.yaml); the timeouts still come from the CSV",
    )
    p.add_argument("--plot", metavar="PNG", help="also draw the cactus plot here")
    p.add_argument(
        "--isolation",
        choices=["fork", "spawn"],
        default=None,
        help="fork: fork each instance from a server that imported torch and completeverify once "
        "(default for local runs); spawn: a fresh interpreter per instance (always on Dask)",
    )
    p.add_argument(
        "--grace",
        type=positive_float,
        default=None,
        metavar="S",
        help="seconds past an instance's timeout before its processes are killed (default 5)",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    p.set_defaults(func=run_bench_command)

    q = sub.add_parser(
        "plot",
        help="overlay cactus plots of several results CSVs",
        description="Cactus plot (instances decided vs. time, log scale) of one or more "
        "results CSVs (columns status and seconds at least).",
    )
    q.add_argument("results", nargs="+", help="results CSV files")
    q.add_argument("--out", default="cactus.png", help="image file (default cactus.png)")
    q.add_argument("--labels", nargs="+", help="one legend label per results file")
    q.add_argument("--title", help="plot title")
    q.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    q.set_defaults(func=run_plot_command)


class _Progress:
    """A tqdm bar with decided/sat/unsat/unknown counts; plain lines on stderr when not a
    terminal."""

    def __init__(self, total: int) -> None:
        """Remember the suite size; the bar starts in ``start``."""
        self.total = total
        self.rows: list = []
        self.bar = None

    def start(self, n_todo: int, done_rows: list) -> None:
        """Open the bar at the number of rows already done."""
        from tqdm import tqdm

        self.rows = list(done_rows)
        if done_rows:
            sys.stderr.write(
                f"resuming: {len(done_rows)} of {self.total} instances already done, "
                f"{n_todo} to run\n"
            )
        self.bar = tqdm(
            total=self.total,
            initial=len(done_rows),
            unit="inst",
            file=sys.stderr,
            disable=None,
            dynamic_ncols=True,
            desc="bench",
        )
        self._postfix()

    def _postfix(self) -> None:
        """Refresh the counts next to the bar."""
        from ..bench.report import progress_counts

        if self.bar is not None and not self.bar.disable:
            self.bar.set_postfix(progress_counts(self.rows), refresh=False)

    def row(self, row) -> None:
        """One more instance finished."""
        self.rows.append(row)
        if self.bar is None or self.bar.disable:
            note = f" ({row.message})" if row.status in ("error", "timeout") and row.message else ""
            sys.stderr.write(
                f"[{len(self.rows)}/{self.total}] {row.status:<7} {row.seconds:8.2f}s  "
                f"{row.onnx},{row.vnnlib}{note}\n"
            )
            sys.stderr.flush()
            return
        self._postfix()
        self.bar.update(1)

    def close(self) -> None:
        """Close the bar."""
        if self.bar is not None:
            self.bar.close()


def _interrupt_on_sigterm():
    """Make SIGTERM behave like Ctrl-C (running instances are killed, finished rows kept); returns
    the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def _print_partial(progress: _Progress, opts: "BenchOptions") -> None:
    """The summary of the rows written before an interrupt."""
    from ..bench.report import format_summary, summarize
    from ..bench.run import expected_folders
    from ..bench.suite import read_expected

    expected = read_expected(opts.expected) if opts.expected else None
    print(
        f"interrupted: {len(progress.rows)} of {progress.total} instances have a row in"
        f" {opts.out}; "
        f"rerun the same command to resume"
    )
    print(
        format_summary(
            summarize(progress.rows, progress.total, expected, expected_folders(opts)),
            opts.expected.name if opts.expected else "ground truth",
        )
    )
    sys.stdout.flush()


def run_bench_command(args: argparse.Namespace) -> int:
    """The bench subcommand."""
    from ..bench.plot import cactus_plot
    from ..bench.report import format_summary
    from ..bench.run import BenchOptions, run_bench
    from ..bench.runner import DEFAULT_GRACE
    from ..bench.suite import read_instances, select

    opts = BenchOptions(
        instances=Path(args.instances),
        out=Path(args.out),
        workers=args.workers,
        scheduler=args.scheduler,
        timeout_scale=args.timeout_scale,
        timeout_cap=args.timeout_cap,
        filter=args.filter,
        expected=Path(args.expected) if args.expected else None,
        grace=args.grace if args.grace is not None else DEFAULT_GRACE,
        isolation=args.isolation,
        config=Path(args.config) if args.config else None,
    )
    if args.plot and not Path(args.plot).resolve().parent.is_dir():
        from ..errors import InputError

        raise InputError(f"folder of --plot does not exist: {Path(args.plot).resolve().parent}")
    progress = _Progress(len(select(read_instances(opts.instances), opts.filter)))
    previous = _interrupt_on_sigterm()
    try:
        outcome = run_bench(opts, on_start=progress.start, on_row=progress.row)
    except KeyboardInterrupt:
        progress.close()
        _print_partial(progress, opts)
        raise
    finally:
        progress.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    where = (
        f" on {args.scheduler}"
        if args.scheduler
        else (f" with {args.workers} workers" if args.workers > 1 else "")
    )
    print(
        f"completeverify bench {args.instances}: {len(outcome.selected)} instances, "
        f"{outcome.ran} run now{where}, {outcome.skipped} already in {args.out}"
    )
    print(
        format_summary(
            outcome.summary, Path(args.expected).name if args.expected else "ground truth"
        )
    )
    print(
        f"results: {args.out}"
        + (f"; counterexamples under {outcome.files_dir}" if outcome.summary.counts["sat"] else "")
    )
    if args.plot:
        cactus_plot(
            [(Path(args.out).stem, outcome.rows)],
            args.plot,
            title=(
                f"completeverify on {Path(args.instances).resolve().parent.name}"
                f"/{Path(args.instances).stem}"
            ),
        )
        print(f"cactus plot: {args.plot}")
    if outcome.summary.wrong:
        print(f"{len(outcome.summary.wrong)} WRONG verdict(s): exit code {EXIT_WRONG}")
        return EXIT_WRONG
    return 0


def run_plot_command(args: argparse.Namespace) -> int:
    """The plot subcommand."""
    from ..bench.plot import cactus_plot, default_labels
    from ..bench.results import read_results
    from ..errors import InputError

    paths = [Path(p) for p in args.results]
    labels: Optional[list[str]] = args.labels
    if labels is not None and len(labels) != len(paths):
        raise InputError(f"--labels has {len(labels)} names for {len(paths)} results files")
    labels = labels or default_labels(paths)
    series = [(label, read_results(p)) for label, p in zip(labels, paths)]
    cactus_plot(series, args.out, title=args.title)
    for label, rows in series:
        decided = sum(r.status in ("sat", "unsat") for r in rows)
        print(f"{label}: {decided} of {len(rows)} decided")
    print(f"cactus plot: {args.out}")
    return 0

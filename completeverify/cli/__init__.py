"""Command line: the only place that knows argv, exit codes and VNN-COMP strings.

One module per subcommand; each exposes ``add_parser(sub)`` and sets ``func`` on its
parser.  Exit codes: 0 for any verdict, 2 for bad input (one ``error:`` line on
stderr), 1 for an internal error.
"""

from __future__ import annotations

import argparse
import logging
import sys

from . import bench, certify, radius, train, verify
from .args import EXIT_INPUT, EXIT_INTERNAL, ArgumentParser, CliInputError

# every subcommand module, in the order `--help` lists them
SUBCOMMANDS = (verify, bench, radius, certify, train)


def build_parser() -> argparse.ArgumentParser:
    """The full command-line parser."""
    from .. import __version__

    parser = ArgumentParser(
        prog="completeverify", description="Sound and complete neural-network verification"
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"completeverify {__version__}",
        help="print the version and exit",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser)
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `completeverify` console script."""
    from ..errors import CompleteVerifyError, InputError, InternalError

    parser = build_parser()
    args = parser.parse_args(argv)
    # the process's own command line (console script, python -m, the bench fork server, which
    # sets sys.argv) gets the hard-stop watchdog; other in-process calls (tests, embedding)
    # only the verifier's own deadline
    args.process_entry = argv is None or list(argv) == sys.argv[1:]
    if args.process_entry:  # this process is ours: let the allocator keep freed memory
        from ..host_memory import keep_freed_memory

        keep_freed_memory()
    logging.basicConfig(
        level=logging.WARNING - 10 * min(getattr(args, "verbose", 0), 2),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args)
    except (InputError, CliInputError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_INPUT
    except InternalError as exc:  # a broken invariant: our bug, not the user's input
        if getattr(args, "verbose", 0):
            raise
        sys.stderr.write(
            f"error: internal error, please report: {exc} (rerun with -v for details)\n"
        )
        return EXIT_INTERNAL
    except CompleteVerifyError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except Exception as exc:  # an internal bug: say so in one line, keep details for -v
        if getattr(args, "verbose", 0):
            raise
        instance = " ".join(
            str(getattr(args, k)) for k in ("network", "property") if getattr(args, k, None)
        )
        where = f" on {instance}" if instance else ""
        detail = " ".join(f"{exc.__class__.__name__}: {exc}".split())[:400]
        sys.stderr.write(
            f"error: internal error{where}, please report: {detail} (rerun with -v for details)\n"
        )
        return EXIT_INTERNAL


__all__ = ["build_parser", "main"]

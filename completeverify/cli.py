"""Command line: the only place that knows argv, exit codes and VNN-COMP strings.

Exit codes: 0 for any verdict, 2 for bad input (one ``error:`` line on stderr),
1 for an internal error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from pathlib import Path

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT = 0, 1, 2
HARD_STOP_GRACE = 2.0  # seconds past --timeout before the watchdog ends the process


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that reports usage errors as one ``error:`` line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """One line, exit 2."""
        sys.stderr.write(f"error: {message}\n")
        raise SystemExit(EXIT_INPUT)


def write_atomic(path: str, text: str) -> None:
    """Write a file so that readers never see half of it."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, target)


def positive_float(text: str) -> float:
    """argparse type: a positive number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: '{text}'") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: '{text}'")
    return value


def positive_int(text: str) -> int:
    """argparse type: a positive integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: '{text}'")
    return value


def _add_verify(sub) -> None:
    """The verify subcommand's options."""
    p = sub.add_parser("verify", help="verify one ONNX network against one VNNLIB property")
    p.add_argument("network", help="ONNX model (.onnx or .onnx.gz)")
    p.add_argument("property", help="VNNLIB property (.vnnlib or .vnnlib.gz)")
    p.add_argument("--timeout", type=positive_float, default=300.0, help="seconds (default 300)")
    p.add_argument("--result-file", help="write the VNN-COMP result file here")
    p.add_argument("--solver", choices=["highs", "pulp"], default="highs")
    p.add_argument("--mode", choices=["auto", "relu-split", "input-split", "milp"], default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-bounds", action="store_true", help="skip linear bounds (pure MILP baseline)")
    p.add_argument("--no-attack", action="store_true", help="skip PGD falsification")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="sub-domains bounded together in branch and bound (default 256)")
    p.add_argument("--race-milp", action="store_true",
                   help="ReLU splitting: race the exact MILP on a second core (small networks; see README)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the verdict line")
    p.add_argument("-v", "--verbose", action="count", default=0)


def _start_watchdog(seconds: float, result_file: str | None, as_json: bool) -> None:
    """End the process with a `timeout` answer if verification overruns its deadline."""

    def fire() -> None:
        if result_file:
            try:
                write_atomic(result_file, "timeout\n")
            except OSError:
                pass
        sys.stdout.write(json.dumps({"status": "timeout", "seconds": seconds}) + "\n" if as_json else "timeout\n")
        sys.stdout.flush()
        os._exit(EXIT_OK)

    timer = threading.Timer(seconds + HARD_STOP_GRACE, fire)
    timer.daemon = True
    timer.start()


def _run_verify(args) -> int:
    """The verify subcommand."""
    from dataclasses import replace

    from . import api
    from .config import AttackConfig, VerifyConfig

    if args.result_file:
        parent = Path(args.result_file).resolve().parent
        if not parent.is_dir():
            raise _input_error(f"result file folder does not exist: {parent}")
    config = VerifyConfig(timeout=args.timeout, solver=args.solver, mode=args.mode, seed=args.seed,
                          use_bounds=not args.no_bounds)
    if args.no_attack:
        config = replace(config, attack=AttackConfig(enabled=False))
    if args.batch_size is not None or args.race_milp:
        bab = replace(config.bab, race_milp=args.race_milp)
        if args.batch_size is not None:
            bab = replace(bab, batch_size=args.batch_size)
        config = replace(config, bab=bab)
    _start_watchdog(args.timeout, args.result_file, args.json)
    result = api.verify(args.network, args.property, config=config)
    if args.result_file:
        write_atomic(args.result_file, result.to_vnncomp())
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(result.status.value)
        if result.counterexample is not None and args.verbose:
            print(result.to_vnncomp().split("\n", 1)[1], end="")
    return EXIT_OK


class _InputErrorSignal(Exception):
    """Raised inside the CLI for argument problems found after parsing."""


def _input_error(message: str) -> _InputErrorSignal:
    """An input error raised by the CLI itself."""
    return _InputErrorSignal(message)


def build_parser() -> argparse.ArgumentParser:
    """The full command-line parser."""
    parser = _ArgumentParser(prog="completeverify", description="Sound and complete neural-network verification")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)
    _add_verify(sub)
    from .bench.cli import add_bench_commands

    add_bench_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `completeverify` console script."""
    from .errors import CompleteVerifyError, InputError

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(getattr(args, "verbose", 0), 2),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        if args.command == "verify":
            return _run_verify(args)
        return args.func(args)
    except (InputError, _InputErrorSignal) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_INPUT
    except CompleteVerifyError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except Exception as exc:  # an internal bug: say so in one line, keep details for -v
        if getattr(args, "verbose", 0):
            raise
        sys.stderr.write(f"error: internal error: {exc.__class__.__name__}: {exc} (rerun with -v for details)\n")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())

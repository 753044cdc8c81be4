"""The ``verify`` subcommand: one network, one property, one verdict line (or JSON)."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import MODES, SOLVERS
from .args import (
    EXIT_OK,
    CliInputError,
    positive_float,
    positive_int,
    thread_count,
    write_atomic,
)
from .watchdog import Watchdog, leave, on_terminate, timeout_answer

if TYPE_CHECKING:
    from ..config import VerifyConfig


def add_parser(sub) -> None:
    """The verify subcommand and its options."""
    p = sub.add_parser(
        "verify",
        help="verify one ONNX network against one VNNLIB property",
        description="Verify one network against one property. Options come from "
        "--config FILE.yaml (see benchmarks/configs/) when given; a flag "
        "given on the command line overrides the file.",
    )
    p.add_argument("network", help="ONNX model (.onnx or .onnx.gz)")
    p.add_argument("property", help="VNN-LIB 1.0 or 2.0 property (.vnnlib or .vnnlib.gz)")
    p.add_argument(
        "--config",
        metavar="FILE.yaml",
        help="options file (VerifyConfig keys, e.g. benchmarks/configs/default.yaml)",
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=None,
        help="seconds from the process start (default 300, or the config file's; inf: "
        "none); a watchdog ends the run, its solver processes and their files 0.5 s "
        "past it",
    )
    p.add_argument("--result-file", help="write the VNN-COMP result file here")
    p.add_argument(
        "--solver", choices=SOLVERS, default=None, help="MILP/LP backend (default highs)"
    )
    p.add_argument(
        "--mode",
        choices=MODES,
        default=None,
        help="search strategy (default auto: input splitting for few inputs, else ReLU splitting)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed of every random choice (default 0)")
    p.add_argument(
        "--no-bounds", action="store_true", help="skip linear bounds (pure MILP baseline)"
    )
    p.add_argument("--no-attack", action="store_true", help="skip PGD falsification")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=None,
        help="sub-domains bounded together in branch and bound (default 256)",
    )
    p.add_argument(
        "--threads",
        type=thread_count,
        default=None,
        metavar="N|auto",
        help="torch threads (default auto: 2 on networks with convolutions where two cores "
        "are free, else 1)",
    )
    p.add_argument(
        "--race-milp",
        action="store_true",
        help="ReLU splitting: race the exact MILP on a second core (small networks; see README)",
    )
    p.add_argument(
        "--device",
        default=None,
        help="where bounds and branch and bound run: cpu (default), cuda or cuda:N; "
        "replay and MILP stay on the host",
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the verdict line"
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more log output on stderr (-vv for debug); tracebacks for internal errors",
    )
    p.set_defaults(func=run_verify)


def run_verify(args) -> int:
    """The verify subcommand.

    Order matters: the options (light imports only), then the watchdog, then torch and the
    verifier, so the hard stop covers the heavy imports too.
    """
    from dataclasses import replace

    if args.result_file:
        parent = Path(args.result_file).resolve().parent
        if not parent.is_dir():
            raise CliInputError(f"result file folder does not exist: {parent}")
    config = config_from_args(args)
    watchdog = _arm_watchdog(args, config.timeout)
    from .. import api, pipeline  # noqa: F401  (torch and the verifier: before the clock is read)

    # the verifier's own deadline is what is left of the timeout since the process start, read
    # after the heavy imports so that it ends with the hard stop's deadline, not past it
    config = replace(config, timeout=max(watchdog.remaining(), 1e-3))
    result = api.verify(args.network, args.property, config=config)
    if not watchdog.claim():  # the hard stop is answering `timeout` and ending the process
        threading.Event().wait()
    if args.result_file:
        write_atomic(args.result_file, result.to_vnncomp())
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(result.status.value)
        if result.counterexample is not None and args.verbose:
            print(result.to_vnncomp().split("\n", 1)[1], end="")
    if getattr(args, "process_entry", False):
        leave(EXIT_OK)  # the answer is out: skip the interpreter's slow teardown
    return EXIT_OK


def config_from_args(args: argparse.Namespace) -> VerifyConfig:
    """The run's VerifyConfig: the --config file (or the defaults), then the flags actually
    given."""
    from dataclasses import replace

    from ..config import VerifyConfig

    config = VerifyConfig.from_yaml(args.config) if args.config else VerifyConfig()
    top: dict[str, Any] = {
        key: value
        for key, value in (
            ("timeout", args.timeout),
            ("solver", args.solver),
            ("mode", args.mode),
            ("seed", args.seed),
            ("device", args.device),
            ("torch_threads", args.threads),
        )
        if value is not None
    }
    if args.no_bounds:
        top["use_bounds"] = False
    if args.no_attack:
        top["attack"] = replace(config.attack, enabled=False)
    bab: dict[str, Any] = {}
    if args.batch_size is not None:
        bab["batch_size"] = args.batch_size
    if args.race_milp:
        bab["race_milp"] = True
    if bab:
        top["bab"] = replace(config.bab, **bab)
    return replace(config, **top) if top else config


def _arm_watchdog(args, timeout: float) -> Watchdog:
    """The hard stop of this run (see cli/watchdog.py): counted from the process start and
    armed when this is the process's own command line; in-process calls (tests, embedding)
    get only the verifier's deadline, counted from now."""
    entry = getattr(args, "process_entry", False)
    watchdog = Watchdog(
        timeout, timeout_answer(timeout, args.result_file, args.json), from_process_start=entry
    )
    if entry:
        watchdog.arm()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, on_terminate)
    return watchdog

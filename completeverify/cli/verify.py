"""The ``verify`` subcommand: one network, one property, one verdict line (or JSON)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from pathlib import Path

from .args import EXIT_OK, CliInputError, positive_float, positive_int, write_atomic
from .watchdog import Watchdog, on_terminate, timeout_answer


def add_parser(sub) -> None:
    """The verify subcommand and its options."""
    p = sub.add_parser("verify", help="verify one ONNX network against one VNNLIB property")
    p.add_argument("network", help="ONNX model (.onnx or .onnx.gz)")
    p.add_argument("property", help="VNNLIB property (.vnnlib or .vnnlib.gz)")
    p.add_argument("--timeout", type=positive_float, default=300.0,
                   help="seconds from the process start (default 300; inf: none); a watchdog "
                        "ends the run, its solver processes and their files 1 s past it")
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
    p.set_defaults(func=run_verify)


def run_verify(args) -> int:
    """The verify subcommand.

    Order matters: the options (light imports only), then the watchdog, then torch and the
    verifier, so the hard stop covers the heavy imports too.
    """
    from dataclasses import replace

    from ..config import AttackConfig, VerifyConfig

    if args.result_file:
        parent = Path(args.result_file).resolve().parent
        if not parent.is_dir():
            raise CliInputError(f"result file folder does not exist: {parent}")
    config = VerifyConfig(timeout=args.timeout, solver=args.solver, mode=args.mode, seed=args.seed,
                          use_bounds=not args.no_bounds)
    if args.no_attack:
        config = replace(config, attack=AttackConfig(enabled=False))
    if args.batch_size is not None or args.race_milp:
        bab = replace(config.bab, race_milp=args.race_milp)
        if args.batch_size is not None:
            bab = replace(bab, batch_size=args.batch_size)
        config = replace(config, bab=bab)
    watchdog = _arm_watchdog(args, config.timeout)
    from .. import api

    # the verifier's own deadline is what is left of the timeout since the process start
    config = replace(config, timeout=max(watchdog.remaining(), 1e-3))
    result = api.verify(args.network, args.property, config=config)
    watchdog.cancel()
    if args.result_file:
        write_atomic(args.result_file, result.to_vnncomp())
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(result.status.value)
        if result.counterexample is not None and args.verbose:
            print(result.to_vnncomp().split("\n", 1)[1], end="")
    return EXIT_OK


def _arm_watchdog(args, timeout: float) -> Watchdog:
    """The hard stop of this run (see cli/watchdog.py): counted from the process start and
    armed when this is the process's own command line; in-process calls (tests, embedding)
    get only the verifier's deadline, counted from now."""
    entry = getattr(args, "process_entry", False)
    watchdog = Watchdog(timeout, timeout_answer(timeout, args.result_file, args.json),
                        from_process_start=entry)
    if entry:
        watchdog.arm()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, on_terminate)
    return watchdog

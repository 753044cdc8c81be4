"""The ``verify`` subcommand: one network, one property, one verdict line (or JSON)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from pathlib import Path

from .args import EXIT_OK, CliInputError, positive_float, positive_int, write_atomic

HARD_STOP_GRACE = 2.0  # seconds past --timeout before the watchdog ends the process


def add_parser(sub) -> None:
    """The verify subcommand and its options."""
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
    p.add_argument("--device", default="cpu",
                   help="where bounds and branch and bound run: cpu (default), cuda or cuda:N; "
                        "replay and MILP stay on the host")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the verdict line")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.set_defaults(func=run_verify)


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


def run_verify(args) -> int:
    """The verify subcommand."""
    from dataclasses import replace

    from .. import api
    from ..config import AttackConfig, VerifyConfig

    if args.result_file:
        parent = Path(args.result_file).resolve().parent
        if not parent.is_dir():
            raise CliInputError(f"result file folder does not exist: {parent}")
    config = VerifyConfig(timeout=args.timeout, solver=args.solver, mode=args.mode, seed=args.seed,
                          use_bounds=not args.no_bounds, device=args.device)
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

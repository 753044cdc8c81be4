"""The ``verify`` subcommand: one network, one property, one verdict line (or JSON)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import MODES, SOLVERS
from .args import EXIT_OK, CliInputError, positive_float, positive_int, write_atomic

if TYPE_CHECKING:
    from ..config import VerifyConfig

HARD_STOP_GRACE = 2.0  # seconds past --timeout before the watchdog ends the process


def add_parser(sub) -> None:
    """The verify subcommand and its options."""
    p = sub.add_parser("verify", help="verify one ONNX network against one VNNLIB property",
                       description="Verify one network against one property. Options come from "
                                   "--config FILE.yaml (see benchmarks/configs/) when given; a flag "
                                   "given on the command line overrides the file.")
    p.add_argument("network", help="ONNX model (.onnx or .onnx.gz)")
    p.add_argument("property", help="VNN-LIB 1.0 or 2.0 property (.vnnlib or .vnnlib.gz)")
    p.add_argument("--config", metavar="FILE.yaml",
                   help="options file (VerifyConfig keys, e.g. benchmarks/configs/default.yaml)")
    p.add_argument("--timeout", type=positive_float, default=None,
                   help="seconds (default 300, or the config file's)")
    p.add_argument("--result-file", help="write the VNN-COMP result file here")
    p.add_argument("--solver", choices=SOLVERS, default=None,
                   help="MILP/LP backend (default highs)")
    p.add_argument("--mode", choices=MODES, default=None,
                   help="search strategy (default auto: input splitting for few inputs, else ReLU "
                        "splitting)")
    p.add_argument("--seed", type=int, default=None, help="seed of every random choice (default 0)")
    p.add_argument("--no-bounds", action="store_true", help="skip linear bounds (pure MILP baseline)")
    p.add_argument("--no-attack", action="store_true", help="skip PGD falsification")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="sub-domains bounded together in branch and bound (default 256)")
    p.add_argument("--race-milp", action="store_true",
                   help="ReLU splitting: race the exact MILP on a second core (small networks; see README)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the verdict line")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="more log output on stderr (-vv for debug); tracebacks for internal errors")
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
    from .. import api

    if args.result_file:
        parent = Path(args.result_file).resolve().parent
        if not parent.is_dir():
            raise CliInputError(f"result file folder does not exist: {parent}")
    config = config_from_args(args)
    _start_watchdog(config.timeout, args.result_file, args.json)
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


def config_from_args(args: argparse.Namespace) -> VerifyConfig:
    """The run's VerifyConfig: the --config file (or the defaults), then the flags actually given."""
    from dataclasses import replace

    from ..config import VerifyConfig

    config = VerifyConfig.from_yaml(args.config) if args.config else VerifyConfig()
    top: dict[str, Any] = {key: value for key, value in (("timeout", args.timeout), ("solver", args.solver),
                                         ("mode", args.mode), ("seed", args.seed))
           if value is not None}
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

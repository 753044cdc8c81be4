"""The ``radius`` subcommand: the exact certified radius of one input under one norm."""

from __future__ import annotations

import json
import math
import sys

from .args import EXIT_OK, NORMS, CliInputError, positive_float


def add_parser(sub) -> None:
    """The radius subcommand and its options."""
    p = sub.add_parser(
        "radius",
        help="exact certified radius (minimal adversarial distance) of "
        "one input under L-inf, L1, L2 or L0",
    )
    p.add_argument("network", help="ONNX model (.onnx or .onnx.gz)")
    p.add_argument(
        "--input",
        required=True,
        help="the input as a .npy file (any shape with the network's number of inputs)",
    )
    p.add_argument(
        "--label", type=int, default=None, help="class to keep (default: the predicted class)"
    )
    p.add_argument(
        "--norm",
        choices=NORMS,
        default="linf",
        help="threat model; l0 counts changed features (each anywhere in the domain)",
    )
    p.add_argument(
        "--domain",
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        default=None,
        help="valid input range, e.g. 0 1 for pixels (required for l0; default: the input +- 1)",
    )
    p.add_argument(
        "--max",
        type=positive_float,
        default=None,
        dest="max_radius",
        help="search no further than this radius",
    )
    p.add_argument("--timeout", type=positive_float, default=60.0, help="seconds (default 60)")
    p.add_argument(
        "--method",
        choices=["auto", "milp", "bisect"],
        default="auto",
        help="auto: one-shot MILP/QP search then bisection; milp: one-shot only; "
        "bisect: bisection over verdicts",
    )
    p.add_argument(
        "--save-adversarial",
        metavar="PATH",
        help="save the adversarial example of the upper bound as .npy",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more log output on stderr (-vv for debug); tracebacks for internal errors",
    )
    p.set_defaults(func=run_radius)


def _load_npy(path: str):
    """The array in a .npy file, or CliInputError."""
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CliInputError(f"{path}: cannot read a .npy array ({exc})") from None


def run_radius(args) -> int:
    """The radius subcommand."""
    import numpy as np

    from ..robustness.radius import ATOL, RTOL, certified_radius

    x = _load_npy(args.input)
    domain = None if args.domain is None else (args.domain[0], args.domain[1])
    if domain is not None and not domain[0] <= domain[1]:
        raise CliInputError(f"--domain {domain[0]} {domain[1]}: LO must not exceed HI")
    res = certified_radius(
        args.network,
        x,
        norm=args.norm,
        label=args.label,
        domain=domain,
        timeout=args.timeout,
        max_radius=args.max_radius,
        method=args.method,
    )
    if args.save_adversarial and res.adversarial is not None:
        np.save(args.save_adversarial, res.adversarial.reshape(np.shape(x)))
    if args.json:
        out = res.to_dict()
        out["upper"] = out["upper"] if math.isfinite(out["upper"]) else None
        sys.stdout.write(json.dumps(out) + "\n")
        return EXIT_OK
    tol = "whole features" if args.norm == "l0" else f"atol {ATOL:g} + rtol {RTOL:g}"
    kind = "exact" if res.exact else "bounds"
    upper = f"{res.upper:.6g}" if math.isfinite(res.upper) else "inf (no adversarial example found)"
    sys.stdout.write(
        f"{kind} {args.norm} radius: lower {res.lower:.6g} upper {upper} "
        f"(label {res.stats.get('label')}, tolerance {tol}, "
        f"{res.stats.get('seconds', 0.0):.1f}s)\n"
    )
    if args.save_adversarial:
        saved = "saved to " + args.save_adversarial if res.adversarial is not None else "none found"
        sys.stdout.write(f"adversarial example: {saved}\n")
    return EXIT_OK

"""The ``certify`` subcommand: certified against PGD accuracy over a data set, with abstention."""

from __future__ import annotations

import sys
from pathlib import Path

from .args import EXIT_OK, NORMS, CliInputError, existing_parent, positive_float, positive_int


def _eps_list(text: str) -> list[float]:
    """argparse type: comma-separated non-negative radii."""
    import argparse

    try:
        vals = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of numbers: '{text}'"
        ) from None
    if not vals or any(not v >= 0 for v in vals):
        raise argparse.ArgumentTypeError(f"radii must be >= 0: '{text}'")
    return vals


def add_parser(sub) -> None:
    """The certify subcommand and its options."""
    p = sub.add_parser(
        "certify",
        help="per-input verdicts at several radii, certified vs PGD "
        "accuracy, abstention (risk-coverage)",
    )
    p.add_argument("network", help="ONNX model (.onnx or .onnx.gz)")
    p.add_argument(
        "data",
        help="'digits' (built-in test split, [0, 1]), an .npz with x and y, "
        "or a folder of VNN-COMP robustness .vnnlib properties",
    )
    p.add_argument(
        "--eps",
        type=_eps_list,
        default=[0.01, 0.03, 0.05],
        help="comma-separated radii (l0: numbers of features; default 0.01,0.03,0.05)",
    )
    p.add_argument(
        "--norm",
        choices=NORMS,
        default="linf",
        help="threat model of every eps (default linf)",
    )
    p.add_argument(
        "--domain",
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        default=None,
        help="valid input range (default: [0, 1] for digits and image properties, "
        "else the input +- 1)",
    )
    p.add_argument("--radius", action="store_true", help="also compute each exact radius")
    p.add_argument(
        "--timeout-per-input",
        type=positive_float,
        default=10.0,
        help="seconds per input for all its radii (default 10)",
    )
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N inputs")
    p.add_argument(
        "--out",
        default="certify.csv",
        help="per-input CSV (default certify.csv); an existing one is resumed",
    )
    p.add_argument(
        "--plot",
        metavar="PREFIX",
        default=None,
        help="write PREFIX_risk_coverage.png/.csv, PREFIX_accuracy_radius.png/.csv "
        "and PREFIX_summary.csv",
    )
    p.add_argument("--workers", type=positive_int, default=1, help="processes (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more log output on stderr (-vv for debug); tracebacks for internal errors",
    )
    p.set_defaults(func=run_certify)


def _resume(path: Path, eps: list[float], norm: str) -> dict:
    """Rows already in the CSV at path (same --eps and --norm), keyed by index."""
    from ..robustness.certify import csv_header, parse_line

    if not path.exists():
        return {}
    lines = path.read_text().splitlines()
    want = f"# norm={norm}"
    if len(lines) < 2 or lines[0] != want or lines[1] != ",".join(csv_header(eps)):
        raise CliInputError(
            f"{path} holds a run with other --eps/--norm settings; remove it or "
            "choose another --out"
        )
    rows = {}
    for line in lines[2:]:
        if line.strip():
            row = parse_line(line, eps)
            rows[row.index] = row
    return rows


def run_certify(args) -> int:
    """The certify subcommand."""
    from ..robustness.certify import certify, csv_header, csv_line
    from ..robustness.data import load_data
    from ..robustness.report import plot, write_curves

    existing_parent(args.out, "--out")
    if args.plot:
        existing_parent(args.plot + "_x", "--plot")
    x, y, dom, names = load_data(args.data, args.limit)
    domain = dom if args.domain is None else (args.domain[0], args.domain[1])
    out = Path(args.out)
    done = _resume(out, args.eps, args.norm)
    if not out.exists():
        out.write_text(f"# norm={args.norm}\n" + ",".join(csv_header(args.eps)) + "\n")
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(
            total=len(y),
            initial=len([i for i in done if i < len(y)]),
            unit="input",
            file=sys.stderr,
        )

    def on_row(row) -> None:
        with out.open("a") as f:
            f.write(csv_line(row, args.eps) + "\n")
        if bar is not None:
            bar.update(1)

    report = certify(
        args.network,
        x,
        y,
        eps=args.eps,
        norm=args.norm,
        timeout_per_input=args.timeout_per_input,
        radius=args.radius,
        domain=domain,
        names=names,
        workers=args.workers,
        done={i: r for i, r in done.items() if i < len(y)},
        on_row=on_row,
    )
    if bar is not None:
        bar.close()
    w = sys.stdout.write
    w(f"{len(report.rows)} inputs, norm {args.norm}, clean accuracy {report.clean_accuracy:.4f}\n")
    w(f"{'eps':>10} {'PGD acc':>9} {'certified':>9} {'undecided':>9}\n")
    for d in report.summary_rows():
        w(f"{d['eps']:>10g} {d['pgd']:>9.4f} {d['certified']:>9.4f} {d['undecided']:>9.4f}\n")
    w(
        f"AURC {report.aurc():.4f} (risk-coverage area; abstains where not certified at r: "
        "undecided inputs and ties count as abstentions)\n"
    )
    w(f"per-input rows: {out}\n")
    if args.plot:
        files = write_curves(report, args.plot) + plot(report, args.plot, Path(args.network).stem)
        w("figures and curves: " + ", ".join(files) + "\n")
    return EXIT_OK

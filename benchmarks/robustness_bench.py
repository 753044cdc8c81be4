"""Certified-radius and certify benchmark (issue 12): exact radius vs the bisection baseline.

    python benchmarks/robustness_bench.py [--out benchmarks/results/robustness]
        [--digits 20] [--mnist 15] [--norms linf,l1,l2,l0] [--timeout 30] [--cert-timeout 10]

Models: examples/digits_mlp.onnx and examples/digits_cnn.onnx on the first N images of the
built-in digits test split, and ../shared/benchmarks/mnist_fc/onnx/mnist-net_256x2.onnx on the
15 centres of its properties (skipped if absent).  Domain [0, 1] throughout.

Per input and norm: ``certified_radius`` (one-shot MILP/QP, then bisection) and the baseline
``bisect_radius`` (bisection over ball verdicts from [0, max]) in the same run, each with the
same timeout; lower, upper, exact and seconds go to radius.csv (rows appended as they finish).
Then ``certify`` at 3 L-inf radii per model (certify_<model>.csv, summary, risk-coverage and
accuracy-radius figures).  Prints the tables (markdown) at the end: radius_table.md.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "benchmarks" / "mnist_fc"
EPS = {
    "digits_mlp": [0.02, 0.05, 0.1],
    "digits_cnn": [0.02, 0.05, 0.1],
    "mnist_256x2": [0.01, 0.02, 0.03],
}


def models(n_digits: int, n_mnist: int):
    """(name, onnx path, x (N, n), y (N,)) for each benchmark model."""
    from completeverify.robustness.data import load_data

    x, y, _, _ = load_data("digits", n_digits)
    out = [
        ("digits_mlp", ROOT / "examples" / "digits_mlp.onnx", x, y),
        ("digits_cnn", ROOT / "examples" / "digits_cnn.onnx", x, y),
    ]
    net = MNIST / "onnx" / "mnist-net_256x2.onnx"
    if net.exists() and n_mnist > 0:
        xm, ym, _, _ = load_data(str(MNIST / "vnnlib"), n_mnist)
        out.append(("mnist_256x2", net, xm, ym))
    return out


def main() -> None:
    """Run everything, writing rows as they finish."""
    import completeverify as cv
    from completeverify.robustness import bisect_radius
    from completeverify.robustness.report import plot, write_curves

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "robustness"))
    ap.add_argument("--digits", type=int, default=20)
    ap.add_argument("--mnist", type=int, default=15)
    ap.add_argument(
        "--radius-inputs",
        type=str,
        default=None,
        help="radius runs on fewer inputs per model, e.g. digits_mlp=8,digits_cnn=4 "
        "(certify still uses all)",
    )
    ap.add_argument("--norms", default="linf,l1,l2,l0")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per radius run")
    ap.add_argument("--mnist-timeout", type=float, default=None)
    ap.add_argument("--cert-timeout", type=float, default=10.0, help="seconds per certify input")
    ap.add_argument("--skip-radius", action="store_true")
    ap.add_argument("--skip-certify", action="store_true")
    ap.add_argument(
        "--replot",
        action="store_true",
        help="only redraw figures, curves and the table from the CSVs in --out",
    )
    args = ap.parse_args()
    import torch

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # one-time import, outside the timings
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.replot:
        from completeverify.robustness.certify import read_csv

        for name, eps in EPS.items():
            if (out / f"certify_{name}.csv").exists():
                rep = read_csv(out / f"certify_{name}.csv", eps)
                write_curves(rep, str(out / name))
                plot(rep, str(out / name), name)
        table(out / "radius.csv", out / "radius_table.md")
        return
    norms = args.norms.split(",")
    rad = out / "radius.csv"
    if not args.skip_radius:
        rad.write_text("model,index,label,norm,method,lower,upper,exact,seconds\n")
    for name, net, x, y in models(args.digits, args.mnist):
        graph = cv.load_onnx(str(net))
        limits = (
            dict(kv.split("=") for kv in args.radius_inputs.split(","))
            if args.radius_inputs
            else {}
        )
        n = min(len(y), int(limits.get(name, len(y))))
        t_out = (
            args.mnist_timeout if name.startswith("mnist") and args.mnist_timeout else args.timeout
        )
        for i in range(n) if not args.skip_radius else []:
            for norm in norms:
                for method in ("exact", "bisect"):
                    t0 = time.monotonic()
                    if method == "exact":
                        r = cv.certified_radius(
                            graph, x[i], norm=norm, domain=(0, 1), timeout=t_out
                        )
                    else:
                        r = bisect_radius(graph, x[i], norm=norm, domain=(0, 1), timeout=t_out)
                    dt = time.monotonic() - t0
                    line = (
                        f"{name},{i},{int(y[i])},{norm},{method},{r.lower!r},{r.upper!r},"
                        f"{int(r.exact)},{dt:.3f}"
                    )
                    with rad.open("a") as f:
                        f.write(line + "\n")
                    print(line, flush=True)
        if args.skip_certify:
            continue
        rep = cv.certify(
            graph,
            x,
            y,
            eps=EPS[name],
            norm="linf",
            timeout_per_input=args.cert_timeout,
            domain=(0, 1),
        )
        rep.to_csv(out / f"certify_{name}.csv")
        files = write_curves(rep, str(out / name)) + plot(rep, str(out / name), name)
        for d in rep.summary_rows():
            print(
                f"certify {name} eps={d['eps']:g} clean={d['clean']:.3f} pgd={d['pgd']:.3f} "
                f"certified={d['certified']:.3f} undecided={d['undecided']:.3f}",
                flush=True,
            )
        print(f"certify {name} AURC {rep.aurc():.4f} files {' '.join(files)}", flush=True)
    if rad.exists():
        table(rad, out / "radius_table.md")


def table(csv: Path, md: Path) -> None:
    """Per model and norm: exact share and median time, for the new method and the baseline."""
    rows = [line.split(",") for line in csv.read_text().splitlines()[1:] if line.strip()]
    lines = [
        (
            "| model | norm | inputs | exact (new) | exact (bisect) | median s (new) | "
            "median s (bisect) | time ratio bisect/new | mean gap U-L (new) | mean gap (bisect) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(r[0], r[3]) for r in rows}, key=lambda k: (k[0], k[1]))
    for model, norm in keys:
        sel = {
            m: [r for r in rows if r[0] == model and r[3] == norm and r[4] == m]
            for m in ("exact", "bisect")
        }
        if not sel["exact"]:
            continue

        def stat(rs, col):
            return [float(r[col]) for r in rs]

        def gap(rs):
            g = [float(r[6]) - float(r[5]) for r in rs if math.isfinite(float(r[6]))]
            return f"{np.mean(g):.4g}" if g else "-"

        ex_n = sum(int(r[7]) for r in sel["exact"])
        ex_b = sum(int(r[7]) for r in sel["bisect"])
        t_n = np.median(stat(sel["exact"], 8))
        t_b = np.median(stat(sel["bisect"], 8)) if sel["bisect"] else math.nan
        tot_n, tot_b = sum(stat(sel["exact"], 8)), sum(stat(sel["bisect"], 8))
        lines.append(
            f"| {model} | {norm} | {len(sel['exact'])} | {ex_n} | {ex_b} | {t_n:.2f} | "
            f"{t_b:.2f} | {tot_b / max(tot_n, 1e-9):.2f} | {gap(sel['exact'])} | "
            f"{gap(sel['bisect'])} |"
        )
    md.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Certified training on digits, then exact certification of what it trained.

For each architecture (MLP, small CNN) and training method (standard, PGD, IBP, CROWN-IBP),
train one seeded model (robust methods at --train-eps), then at every eps in --eps report on
the first --n-test inputs of the digits test split: clean accuracy, PGD accuracy, IBP- and
CROWN-verified accuracy (sound bounds), exact certified accuracy from ``completeverify.verify``
(one L-inf box property per correctly classified input, clipped to [0, 1], --timeout seconds
each) with its undecided count, the mean verification time, and the mean number of unstable
ReLUs (CROWN pre-activation bounds).

    python benchmarks/train_bench.py --n-test 100 --timeout 3 --out train_bench.md
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import completeverify as cv
from completeverify.graph import Graph
from completeverify.torch_import import export_onnx
from completeverify.training.data import load_dataset
from completeverify.training.trainer import TrainConfig, build_arch, evaluate, train


def box_property(x: np.ndarray, label: int, n_out: int, eps: float) -> str:
    """VNN-LIB text: X in the L-inf ball (clipped to [0, 1]) and some Y_j >= Y_label."""
    flat = np.asarray(x, dtype=np.float64).reshape(-1)
    lo, hi = np.clip(flat - eps, 0.0, 1.0), np.clip(flat + eps, 0.0, 1.0)
    lines = [f"(declare-const X_{i} Real)" for i in range(flat.size)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    for i in range(flat.size):
        lines.append(f"(assert (>= X_{i} {float(lo[i])!r}))")
        lines.append(f"(assert (<= X_{i} {float(hi[i])!r}))")
    ors = " ".join(f"(and (>= Y_{j} Y_{label}))" for j in range(n_out) if j != label)
    lines.append(f"(assert (or {ors}))")
    return "\n".join(lines) + "\n"


def exact(
    graph: Graph, model: torch.nn.Module, x: np.ndarray, y: np.ndarray, eps: float, timeout: float
) -> dict[str, float]:
    """Exact certified accuracy, undecided / falsified counts and mean seconds per verified
    input."""
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(1).numpy()
    certified = undecided = falsified = 0
    times = []
    for xi, yi, pi in zip(x, y, pred):
        if pi != yi:
            continue
        t0 = time.monotonic()
        r = cv.verify(graph, box_property(xi, int(yi), 10, eps), timeout=timeout)
        times.append(time.monotonic() - t0)
        if r.status == cv.Status.UNSAT:
            certified += 1
        elif r.status == cv.Status.SAT:
            falsified += 1
        else:
            undecided += 1
    return {
        "exact": certified / len(y),
        "undecided": undecided,
        "falsified": falsified,
        "verify_s": float(np.mean(times)) if times else 0.0,
    }


def main() -> None:
    """Train, evaluate, certify; print a markdown table and write JSON rows."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["mlp", "cnn"])
    ap.add_argument("--methods", nargs="+", default=["standard", "pgd", "ibp", "crown-ibp"])
    ap.add_argument("--eps", nargs="+", type=float, default=[0.05, 0.1, 0.2])
    ap.add_argument("--train-eps", type=float, default=0.1, help="target eps of robust training")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--n-test", type=int, default=100, help="first N test inputs (0: all 450)")
    ap.add_argument("--timeout", type=float, default=3.0, help="seconds per verify call")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="train_bench.md")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("digits", seed=args.seed)
    n = args.n_test or len(data.y_test)
    xt, yt = data.x_test[:n], data.y_test[:n]
    rows = []
    header = (
        "| arch | training (train eps) | eps | clean | PGD | IBP-verified | CROWN-verified "
        "| exact certified "
        "| undecided | falsified | verify s/input | unstable ReLUs | train s |"
    )
    lines = [header, "|" + "---|" * 13]
    print(header, flush=True)
    for arch in args.archs:
        for method in args.methods:
            torch.manual_seed(args.seed)
            model = build_arch(arch, data.sample_shape, data.n_classes)
            t0 = time.monotonic()
            train(
                model,
                data,
                TrainConfig(method=method, eps=args.train_eps, epochs=args.epochs, seed=args.seed),
            )
            train_s = time.monotonic() - t0
            graph = cv.load_onnx(export_onnx(model, (1,) + data.sample_shape))
            for eps in args.eps:
                row = {
                    "arch": arch,
                    "method": method,
                    "train_eps": args.train_eps,
                    "eps": eps,
                    "train_s": train_s,
                    **evaluate(model, xt, yt, eps, seed=args.seed),
                    **exact(graph, model, xt, yt, eps, args.timeout),
                }
                rows.append(row)
                trained = method if method == "standard" else f"{method} ({args.train_eps})"
                line = (
                    f"| {arch} | {trained} | {eps} | {row['clean']:.2f} | {row['pgd']:.2f} | "
                    f"{row['ibp']:.2f} | {row['crown']:.2f} | {row['exact']:.2f} | "
                    f"{row['undecided']} | {row['falsified']} | {row['verify_s']:.2f} | "
                    f"{row['unstable']:.1f} | {train_s:.0f} |"
                )
                lines.append(line)
                print(line, flush=True)
    with open(args.out, "w") as fh:
        fh.write(
            f"digits test inputs: first {n}; robust training at eps {args.train_eps}; "
            f"{args.epochs} epochs; verify timeout {args.timeout}s\n\n"
        )
        fh.write("\n".join(lines) + "\n")
    with open(args.out.rsplit(".", 1)[0] + ".json", "w") as fh:
        json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()

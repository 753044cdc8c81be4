"""Domains and seconds to decide, per ReLU branching rule, measured side by side.

Usage: python benchmarks/branching_bench.py [--root ../shared/benchmarks] [--timeout 120]
       [--rules babsr fsb] [--cases family:net.onnx:prop.vnnlib ...]

Each case is verified once per rule (``BabConfig.branching``; everything else default, one
thread, ReLU splitting) in this process, one after the other; the table gives verdict, domains
and seconds per rule, and the ratios of the first rule to each other one (> 1: the other rule
needs fewer).  The last line is the geometric mean of those ratios over the cases every rule
decided.  Timings include bounding the root, not the process start.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import completeverify as cv
from completeverify.config import RELU_BRANCHINGS

DEFAULT_CASES = (
    "mnist_fc:mnist-net_256x2.onnx:prop_6_0.03.vnnlib",
    "mnist_fc:mnist-net_256x4.onnx:prop_8_0.03.vnnlib",
    "mnist_fc:mnist-net_256x4.onnx:prop_3_0.05.vnnlib",
    "mnist_fc:mnist-net_256x6.onnx:prop_7_0.03.vnnlib",
    "oval21:cifar_base_kw.onnx:cifar_base_kw-img8194-eps0.018300653594771243.vnnlib",
)


def run_case(onnx: Path, vnnlib: Path, rule: str, timeout: float) -> tuple[str, int, float]:
    """(status, branch-and-bound domains, seconds) of one verification with that rule."""
    base = cv.VerifyConfig()
    config = dataclasses.replace(
        base, timeout=timeout, mode="relu-split", bab=dataclasses.replace(base.bab, branching=rule)
    )
    result = cv.verify(str(onnx), str(vnnlib), config=config)
    stats = result.stats
    return result.status.value, int(stats.get("bab_domains", 0)), float(stats.get("total", 0.0))


def main() -> None:
    """Run every case under every rule and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--root", default=str(Path(__file__).resolve().parents[2] / "shared/benchmarks")
    )
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--rules", nargs="+", default=["babsr", "fsb"], choices=RELU_BRANCHINGS)
    ap.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES))
    args = ap.parse_args()
    root = Path(args.root)
    ratios: dict[str, list[tuple[float, float]]] = {r: [] for r in args.rules[1:]}
    head = "".join(f" | {r:>7} {'dom':>6} {'s':>6}" for r in args.rules)
    print(f"{'case':<58}{head}")
    for case in args.cases:
        family, net, prop = case.split(":")
        rows = {
            r: run_case(
                root / family / "onnx" / net, root / family / "vnnlib" / prop, r, args.timeout
            )
            for r in args.rules
        }
        cells = "".join(f" | {s[:7]:>7} {d:>6} {t:>6.1f}" for s, d, t in rows.values())
        print(f"{(family + ' ' + net[:-5] + ' ' + prop[:-7])[:58]:<58}{cells}")
        s0, d0, t0 = rows[args.rules[0]]
        for r in args.rules[1:]:
            s1, d1, t1 = rows[r]
            if s0 in ("sat", "unsat") and s1 in ("sat", "unsat") and d1 > 0:
                ratios[r].append((d0 / d1, t0 / t1))
    for r, vals in ratios.items():
        if vals:
            dom = math.exp(sum(math.log(d) for d, _ in vals) / len(vals))
            sec = math.exp(sum(math.log(t) for _, t in vals) / len(vals))
            print(
                f"{args.rules[0]} / {r} over {len(vals)} decided by both: "
                f"domains {dom:.2f}x, seconds {sec:.2f}x (geometric means)"
            )


if __name__ == "__main__":
    main()

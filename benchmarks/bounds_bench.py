"""Time IBP / CROWN / alpha-CROWN on real benchmark boxes and print the bounds side by side.

Usage: python benchmarks/bounds_bench.py [--root /work/shared/benchmarks] [--n 2]
       [--families acasxu mnist_fc oval21]

For each instance (first --n rows of <family>/instances.csv) the first input box of the
property is bounded; the spec rows are the margins d - C y of each unsafe polytope
{C y <= d} (a positive lower bound on some row of a polytope excludes it).  Also times CROWN
on a batch of ACAS Xu sub-boxes, as branch and bound would call it.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch

from completeverify.bounds import BoundConfig, BoundEngine
from completeverify.onnx_import import load_onnx
from completeverify.vnnlib import load_vnnlib

METHODS = ("ibp", "crown", "alpha-crown")


def _spec(case, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack the margin rows d - C y of all polytopes: (C_spec, c0) with C_spec = -C."""
    rows, consts = [], []
    for poly in case.polytopes:
        rows.append(-poly.C)
        consts.append(poly.d)
    if not rows:
        return np.eye(n_out), np.zeros(n_out)
    return np.concatenate(rows), np.concatenate(consts)


def _time(engine: BoundEngine, lo, hi, cmat, c0, method: str, reps: int) -> tuple[float, object]:
    """Best wall time of reps calls and the last result."""
    best, res = float("inf"), None
    for _ in range(reps):
        t = time.perf_counter()
        res = engine.compute(lo, hi, cmat, c0, method=method, need_ub=True)
        best = min(best, time.perf_counter() - t)
    return best, res


def bench_instance(
    root: Path, family: str, onnx_rel: str, vnnlib_rel: str, cfg: BoundConfig
) -> None:
    """Bound one instance's first box with every method and print times and bounds."""
    fam = root / family
    graph = load_onnx(fam / onnx_rel)
    prop = load_vnnlib(fam / vnnlib_rel)
    case = prop.cases[0]
    engine = BoundEngine(graph, cfg)
    lo = torch.as_tensor(case.lower, dtype=torch.float64).reshape(1, -1)
    hi = torch.as_tensor(case.upper, dtype=torch.float64).reshape(1, -1)
    cspec, dspec = _spec(case, graph.n_outputs)
    eye = torch.eye(graph.n_outputs, dtype=torch.float64)
    print(
        f"\n== {family}: {Path(onnx_rel).name} / {Path(vnnlib_rel).name}  "
        f"({graph.n_inputs} inputs, {len(graph.nodes)} nodes, {cspec.shape[0]} spec rows)"
    )
    print(
        f"{'method':<12} {'t_out[s]':>9} {'t_spec[s]':>9}  {'min spec lb':>12}"
        "  out lb / ub (first 5)"
    )
    for method in METHODS:
        reps = 1 if method == "alpha-crown" else 2
        t_out, r_out = _time(engine, lo, hi, eye, None, method, reps)
        t_spec, r_spec = _time(
            engine, lo, hi, torch.as_tensor(cspec), torch.as_tensor(dspec), method, reps
        )
        outs = " ".join(
            f"[{a:.3g},{b:.3g}]" for a, b in zip(r_out.lb[0, :5].tolist(), r_out.ub[0, :5].tolist())
        )
        print(f"{method:<12} {t_out:9.4f} {t_spec:9.4f}  {r_spec.lb.min().item():12.5g}  {outs}")


def bench_acas_batch(root: Path, cfg: BoundConfig, batch: int) -> None:
    """CROWN / alpha-CROWN on a batch of ACAS Xu sub-boxes (as branch and bound would call it)."""
    fam = root / "acasxu"
    graph = load_onnx(fam / "onnx" / "ACASXU_run2a_1_1_batch_2000.onnx")
    case = load_vnnlib(fam / "vnnlib" / "prop_1.vnnlib").cases[0]
    gen = torch.Generator().manual_seed(0)
    lo0 = torch.as_tensor(case.lower, dtype=torch.float64)
    hi0 = torch.as_tensor(case.upper, dtype=torch.float64)
    a = lo0 + (hi0 - lo0) * torch.rand(batch, lo0.numel(), generator=gen, dtype=torch.float64)
    b = (
        lo0
        + (hi0 - lo0) * torch.rand(batch, lo0.numel(), generator=gen, dtype=torch.float64) * 0.05
    )
    lo, hi = a, torch.minimum(a + (b - lo0), hi0)
    cspec, dspec = _spec(case, graph.n_outputs)
    engine = BoundEngine(graph, cfg)
    print(f"\n== acasxu batch of {batch} sub-boxes (5% width), prop_1 spec")
    for method in METHODS:
        t, res = _time(
            engine,
            lo,
            hi,
            torch.as_tensor(cspec),
            torch.as_tensor(dspec),
            method,
            1 if method == "alpha-crown" else 2,
        )
        print(f"{method:<12} {t:9.4f}s  rows proven: {(res.lb > 0).sum().item()}/{res.lb.numel()}")


def main() -> None:
    """Parse arguments and run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/work/shared/benchmarks")
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--families", nargs="+", default=["acasxu", "mnist_fc", "oval21"])
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--alpha-iters", type=int, default=20)
    args = ap.parse_args()
    root = Path(args.root)
    cfg = BoundConfig(alpha_iters=args.alpha_iters)
    for fam in args.families:
        with open(root / fam / "instances.csv") as fh:
            rows = [r for r in csv.reader(fh) if r]
        seen: set = set()
        picked = []
        for r in rows:  # prefer distinct networks
            if r[0] not in seen:
                seen.add(r[0])
                picked.append(r)
        for r in (picked + rows)[: args.n]:
            bench_instance(root, fam, r[0], r[1], cfg)
    if "acasxu" in args.families and args.batch > 0:
        bench_acas_batch(root, cfg, args.batch)


if __name__ == "__main__":
    main()

"""Time LP- and MILP-refined intermediate bounds on real benchmark boxes
and count what they stabilise.

Usage: python benchmarks/tighten_bench.py [--root /work/shared/benchmarks] [--layers 2]
       [--time-per-neuron 1.0] [--budget 300] [--cases family:net.onnx:prop.vnnlib ...]

For each case the first input box of the property is bounded with CROWN; then
``tighten_bounds`` refines the first --layers ReLU layers with relax="lp" and relax="milp"
(each run capped by --budget seconds).  Per layer: unstable neurons before and after, seconds,
solves.  Also: LP with one warm-started HiGHS model per layer against a rebuild per solve, and
how many neurons of all layers CROWN leaves unstable once it reuses the tightened bounds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from completeverify.bounds import BoundEngine
from completeverify.config import Deadline
from completeverify.milp.tighten import LayerStats, relu_layers, tighten_bounds
from completeverify.onnx_import import load_onnx
from completeverify.vnnlib import load_vnnlib

DEFAULT_CASES = (
    "mnist_fc:mnist-net_256x4.onnx:prop_0_0.03.vnnlib",
    "acasxu:ACASXU_run2a_1_1_batch_2000.onnx:prop_1.vnnlib",
    "acasxu:ACASXU_run2a_1_1_batch_2000.onnx:prop_3.vnnlib",
)


def _crown_pre(
    engine: BoundEngine, lower: np.ndarray, upper: np.ndarray, n_out: int, pre: dict | None = None
) -> dict:
    """CROWN intermediate bounds (flat numpy), optionally reusing tightened ones."""
    pre_t = (
        None
        if pre is None
        else {
            k: (torch.as_tensor(lo)[None], torch.as_tensor(hi)[None]) for k, (lo, hi) in pre.items()
        }
    )
    res = engine.compute(
        torch.as_tensor(lower)[None],
        torch.as_tensor(upper)[None],
        C=torch.eye(n_out, dtype=torch.float64),
        method="crown",
        pre=pre_t,
    )
    return {k: (v[0][0].numpy().copy(), v[1][0].numpy().copy()) for k, v in res.pre.items()}


def _unstable(pre: dict, keys: list[int]) -> list[int]:
    """Unstable neuron count per pre-activation node."""
    return [int(np.sum((pre[j][0] < 0) & (pre[j][1] > 0))) for j in keys]


def _row(s: LayerStats) -> str:
    """One table row for a layer."""
    flag = "" if s.complete else "  (deadline)"
    return (
        f"    node {s.node:3d}  size {s.size:4d}"
        f"  unstable {s.unstable_before:4d} -> {s.unstable_after:4d}"
        f"  {s.seconds:8.2f}s  lp {s.lp_solves:4d}  milp {s.milp_solves:4d}{flag}"
    )


def run_case(root: Path, spec: str, layers: int, per_neuron: float, budget: float) -> None:
    """Benchmark one family:net:prop case and print its table."""
    family, net, prop = spec.split(":")
    graph = load_onnx(str(root / family / "onnx" / net))
    case = load_vnnlib(root / family / "vnnlib" / prop, graph.n_inputs, graph.n_outputs).cases[0]
    lower = np.asarray(case.lower, dtype=np.float64).reshape(-1)
    upper = np.asarray(case.upper, dtype=np.float64).reshape(-1)
    engine = BoundEngine(graph)
    t0 = time.perf_counter()
    pre = _crown_pre(engine, lower, upper, graph.n_outputs)
    keys = relu_layers(graph)
    print(
        f"{family}/{net} {prop}: CROWN {time.perf_counter() - t0:.2f}s,"
        f" unstable per layer {_unstable(pre, keys)}"
    )
    for relax in ("lp", "milp"):
        stats: list[LayerStats] = []
        t0 = time.perf_counter()
        new = tighten_bounds(
            graph,
            lower,
            upper,
            pre,
            layers=layers,
            relax=relax,
            deadline=Deadline(budget),
            time_per_neuron=per_neuron,
            stats=stats,
        )
        total = time.perf_counter() - t0
        print(f"  {relax}: {total:.2f}s")
        for s in stats:
            print(_row(s))
        after = _crown_pre(engine, lower, upper, graph.n_outputs, new)
        print(f"    CROWN reusing them: unstable per layer {_unstable(after, keys)}")
    for reuse in (True, False):
        stats = []
        t0 = time.perf_counter()
        tighten_bounds(
            graph,
            lower,
            upper,
            pre,
            layers=layers,
            relax="lp",
            deadline=Deadline(budget),
            time_per_neuron=per_neuron,
            reuse=reuse,
            stats=stats,
        )
        solves = sum(s.lp_solves for s in stats)
        secs = time.perf_counter() - t0
        print(
            f"  lp reuse={reuse!s:5}: {secs:.2f}s for {solves} LPs"
            f" ({1000 * secs / max(solves, 1):.1f} ms each)"
        )


def main() -> None:
    """Parse arguments and run every case."""
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--root", type=Path, default=Path("/work/shared/benchmarks"))
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--time-per-neuron", type=float, default=1.0)
    ap.add_argument("--budget", type=float, default=300.0, help="seconds per tighten_bounds call")
    ap.add_argument("--cases", nargs="*", default=list(DEFAULT_CASES))
    args = ap.parse_args()
    for spec in args.cases:
        run_case(args.root, spec, args.layers, args.time_per_neuron, args.budget)


if __name__ == "__main__":
    main()

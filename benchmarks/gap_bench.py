"""Bound gap against the exact MILP value on fixed branch-and-bound domains (issue 14, item 2).

Usage: python benchmarks/gap_bench.py [--root /work/shared/benchmarks] [--net mnist-net_256x2]
       [--prop prop_0_0.03] [--depths 2 4 8] [--domains 6] [--milp-time 60]

A fixed domain is the property's first input box plus sign constraints on the `depth` unstable
ReLUs with the highest BaBSR scores at the root, each fixed to its sign at a random input of
the box (so the domain is never empty).  On each domain, for the worst spec row at the root:

- ``beta``: beta-CROWN over the ROOT intermediate bounds (branch and bound's default);
- ``beta+ibr``: the same with every intermediate bound recomputed by CROWN inside the domain
  (``BabConfig.intermediate_refine``: split constraints reach the intermediate layers);
- ``exact``: the MILP optimum of the row on the domain (HiGHS to a 1e-6 gap).

It prints the gaps exact - bound (smaller is better) and the seconds of each bound.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from completeverify.api import load_vnnlib
from completeverify.bab.branching import scores
from completeverify.bounds import BoundConfig, BoundEngine, Splits
from completeverify.bounds.pre import pre_to_numpy
from completeverify.milp.encoder import encode
from completeverify.onnx_import import load_onnx
from completeverify.solvers import SolveLimits, get_solver


def _domains(graph, engine, lo, hi, C, c0, depth: int, n: int):
    """n split dicts {relu node: int8 (size,)} of `depth` top-scored splits each."""
    root = engine.compute(lo, hi, C, c0, method="crown")
    row = int(root.lb[0].argmin())
    sc = scores(engine, root.pre, {}, C[row : row + 1], "babsr")
    flat = torch.cat([s[0] for s in sc.values()])
    owners = [(r, k) for r, s in sc.items() for k in range(s.shape[1])]
    top = torch.argsort(flat, descending=True)[:depth].tolist()
    out = []
    for _ in range(n):
        x = lo + (hi - lo) * torch.rand_like(lo)
        vals = graph.forward_all(x.reshape((1,) + graph.input_shape))
        split = {r: torch.zeros(1, s.shape[1], dtype=torch.int8) for r, s in sc.items()}
        for t in top:
            r, k = owners[t]
            pre_node = graph.nodes[r].inputs[0]
            v = float(vals[pre_node].reshape(-1)[k])
            split[r][0, k] = 1 if v >= 0 else -1
        out.append(split)
    return row, root, out


def main() -> None:
    """Print the gap table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/work/shared/benchmarks")
    ap.add_argument("--net", default="mnist-net_256x2")
    ap.add_argument("--prop", default="prop_0_0.03")
    ap.add_argument("--depths", type=int, nargs="+", default=[2, 4, 8])
    ap.add_argument("--domains", type=int, default=6)
    ap.add_argument("--milp-time", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    fam = Path(a.root) / "mnist_fc"
    graph = load_onnx(fam / "onnx" / f"{a.net}.onnx")
    prop = load_vnnlib(fam / "vnnlib" / f"{a.prop}.vnnlib", graph)
    case = prop.cases[0]
    lo = torch.as_tensor(np.asarray(case.lower, dtype=np.float64).reshape(1, -1))
    hi = torch.as_tensor(np.asarray(case.upper, dtype=np.float64).reshape(1, -1))
    C = torch.as_tensor(np.concatenate([np.asarray(p.C, dtype=np.float64) for p in case.polytopes]))
    d = np.concatenate([np.asarray(p.d, dtype=np.float64) for p in case.polytopes])
    c0 = -torch.as_tensor(d)
    engine = BoundEngine(graph)
    beta = BoundEngine(graph, BoundConfig(alpha_iters=20, intermediate_crown=False))
    beta_ibr = BoundEngine(graph, BoundConfig(alpha_iters=20, intermediate_crown=True))
    solver = get_solver("highs")
    print(f"{a.net} {a.prop}: gap = exact - bound of the root's worst row, per domain")
    print(f"{'depth':>5} {'beta gap':>10} {'beta+ibr gap':>12} {'beta s':>7} {'ibr s':>7}")
    for depth in a.depths:
        row, root, splits = _domains(graph, engine, lo, hi, C, c0, depth, a.domains)
        root_pre = {j: (lj, uj) for j, (lj, uj) in root.pre.items()}
        cr, dr = C[row : row + 1], c0[row : row + 1]
        gaps: list[tuple[float, float, float, float]] = []
        for sp in splits:
            s = Splits(sp)
            t0 = time.monotonic()
            b1 = beta.compute(lo, hi, cr, dr, method="alpha-crown", splits=s, pre=root_pre)
            t1 = time.monotonic()
            b2 = beta_ibr.compute(lo, hi, cr, dr, method="alpha-crown", splits=s, pre=root_pre)
            t2 = time.monotonic()
            pre_np = pre_to_numpy(b2.pre, 0)
            sp_np = {r: v[0].numpy().astype(np.int64) for r, v in sp.items()}
            # the MILP minimises t = C_row y - d_row: the row's exact minimum on the domain
            enc = encode(
                graph,
                case.lower,
                case.upper,
                pre_np,
                C[row : row + 1].numpy(),
                d[row : row + 1],
                splits=sp_np,
            )
            res = solver.solve(enc.program, SolveLimits(time_limit=a.milp_time, mip_rel_gap=1e-6))
            if res.objective is None or res.dual_bound is None:
                continue
            if abs(res.objective - res.dual_bound) > 1e-4 * (1 + abs(res.objective)):
                continue  # not solved to optimality within --milp-time
            exact = float(res.objective)
            gaps.append((exact - float(b1.lb[0, 0]), exact - float(b2.lb[0, 0]), t1 - t0, t2 - t1))
        if gaps:
            g = np.array(gaps)
            print(
                f"{depth:>5} {g[:, 0].mean():>10.4f} {g[:, 1].mean():>12.4f} "
                f"{g[:, 2].mean():>7.3f} {g[:, 3].mean():>7.3f}  ({len(gaps)} domains)"
            )


if __name__ == "__main__":
    main()

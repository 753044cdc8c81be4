"""What one ``completeverify verify`` process costs beyond its verification, measured side by side.

Usage: python benchmarks/process_bench.py [--repeat 5] [--cases net.onnx:prop.vnnlib ...]

Suites of many quick instances (VNN-COMP's rl_benchmarks, ACAS Xu) pay the process's start
and end once per instance, and the competition's clock counts both.  For each case this runs
the command line ``--repeat`` times and reads, per run, the wall time of the process and the
verifier's own seconds (``--json``); the overhead is the difference.  The baseline, measured in
the same run and interleaved with the cases, is the least a process with torch can cost:
``python -c "import torch, os; os._exit(0)"``.  The last lines give the median overhead and
its ratio to the baseline (1.0: nothing but importing torch).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# VNN-LIB 1.0 only: 2.0 properties need the optional `vnnlib2` extra
DEFAULT_CASES = (
    "examples/mlp.onnx:examples/mlp_unsat.vnnlib",
    "examples/mlp.onnx:examples/mlp_sat.vnnlib",
)
BASELINE = (sys.executable, "-c", "import torch, os; os._exit(0)")


def timed(cmd: list[str] | tuple[str, ...]) -> tuple[float, str]:
    """(wall seconds, stdout) of one process."""
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-400:]}")
    return wall, proc.stdout


def main() -> int:
    """Run the cases and the baseline interleaved; print the table and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES))
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    cases = []
    for case in args.cases:
        net, prop = case.split(":")
        if not (ROOT / net).is_file() or not (ROOT / prop).is_file():
            print(f"skipped {case}: a file is missing")
            continue
        cases.append((net, prop))
    baseline: list[float] = []
    overheads: list[float] = []
    print(f"{'case':58} {'status':8} {'verify s':>9} {'wall s':>7} {'overhead s':>11}")
    for _ in range(args.repeat):
        baseline.append(timed(BASELINE)[0])
        for net, prop in cases:
            cmd = [sys.executable, "-m", "completeverify", "verify", net, prop]
            cmd += ["--timeout", str(args.timeout), "--json"]
            wall, out = timed(cmd)
            answer = json.loads(out.strip().splitlines()[-1])
            seconds = float(answer.get("seconds", 0.0))
            overheads.append(wall - seconds)
            name = f"{Path(net).name} {Path(prop).name}"
            print(
                f"{name:58} {answer['status']:8} {seconds:9.2f} {wall:7.2f} {wall - seconds:11.2f}"
            )
    base, over = statistics.median(baseline), statistics.median(overheads)
    print(f"baseline (python with torch, os._exit): median {base:.2f} s over {len(baseline)} runs")
    print(f"overhead per verify process: median {over:.2f} s over {len(overheads)} runs")
    print(f"ratio overhead / baseline: {over / base:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

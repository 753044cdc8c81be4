"""End-to-end benchmark: several pipeline configurations side by side on a fixed sample.

Runs every Nth row of each family's instances.csv (default: every 6th row of
acasxu and mnist_fc, timeouts capped at 60 s) once per configuration, each
instance in its own `completeverify verify --json` process, and prints per
family and configuration: decided, sat, unsat, unknown/timeout, wrong against
ground_truth.csv's consensus, total and median seconds.  The configurations
run in the same invocation, so their ratios are measured on the same machine
state.

    python benchmarks/pipeline_bench.py --families acasxu mnist_fc --every 6 --cap 60 \
        --config full= --config milp="--mode milp --no-bounds" --csv /tmp/sample.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"


def sample(family: str, every: int, offset: int) -> list[tuple[str, str, float, str]]:
    """(onnx, vnnlib, timeout, consensus) for every ``every``-th row of the family."""
    folder = SHARED / family
    rows = [r for r in csv.reader((folder / "instances.csv").read_text().splitlines()) if r]
    truth = list(csv.DictReader((folder / "ground_truth.csv").read_text().splitlines()))
    out = []
    for k in range(offset, len(rows), every):
        onnx_path, prop, timeout = rows[k][0], rows[k][1], float(rows[k][2])
        out.append((str(folder / onnx_path), str(folder / prop), timeout, truth[k]["consensus"]))
    return out


def run_one(onnx_path: str, prop: str, timeout: float, extra: list[str]) -> tuple[str, float]:
    """Status and wall seconds of one verify process."""
    cmd = [
        sys.executable,
        "-m",
        "completeverify",
        "verify",
        onnx_path,
        prop,
        "--timeout",
        str(timeout),
        "--json",
        *extra,
    ]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30)
        status = (
            json.loads(p.stdout.strip().splitlines()[0])["status"] if p.returncode == 0 else "error"
        )
    except subprocess.TimeoutExpired:
        status = "timeout"
    except (json.JSONDecodeError, IndexError):
        status = "error"
    return status, time.monotonic() - t0


def main() -> int:
    """Run the sample and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+", default=["acasxu", "mnist_fc"])
    ap.add_argument("--every", type=int, default=6)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--cap", type=float, default=60.0, help="cap on each instance's timeout (s)")
    ap.add_argument(
        "--config",
        action="append",
        default=[],
        help="NAME=EXTRA_ARGS for `completeverify verify` (repeatable; default: full=)",
    )
    ap.add_argument("--csv", help="also write one row per run here")
    args = ap.parse_args()
    configs = [c.split("=", 1) for c in (args.config or ["full="])]
    rows_out = []
    print(
        f"{'family':<12}{'config':<10}{'n':>4}{'decided':>9}{'sat':>5}{'unsat':>7}{'unk/to':>8}"
        f"{'wrong':>7}{'total s':>10}{'median s':>10}"
    )
    for fam in args.families:
        instances = sample(fam, args.every, args.offset)
        for name, extra in configs:
            results = []
            for onnx_path, prop, timeout, truth in instances:
                status, secs = run_one(onnx_path, prop, min(timeout, args.cap), shlex.split(extra))
                wrong = (status, truth) in (("sat", "unsat"), ("unsat", "sat"))
                results.append((status, secs, wrong))
                rows_out.append(
                    [fam, name, Path(onnx_path).name, Path(prop).name, truth, status, f"{secs:.2f}"]
                )
                if wrong:
                    print(
                        f"WRONG: {fam} {name} {onnx_path} {prop}: {status} vs {truth}",
                        file=sys.stderr,
                    )
            n = len(results)
            sat = sum(s == "sat" for s, _, _ in results)
            unsat = sum(s == "unsat" for s, _, _ in results)
            wrong = sum(w for _, _, w in results)
            secs = [t for _, t, _ in results]
            print(
                f"{fam:<12}{name:<10}{n:>4}{sat + unsat:>9}{sat:>5}{unsat:>7}"
                f"{n - sat - unsat:>8}{wrong:>7}"
                f"{sum(secs):>10.1f}{statistics.median(secs) if secs else 0:>10.1f}",
                flush=True,
            )
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["family", "config", "onnx", "vnnlib", "consensus", "status", "seconds"])
            w.writerows(rows_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

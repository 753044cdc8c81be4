"""GPU check: verdicts and wall times on ../shared/benchmarks/samples/core.csv, CPU against GPU.

Runs every instance of the sample twice, ``--device cpu`` then ``--device cuda``, each in its
own ``completeverify verify --json`` process with the timeout capped (default 18 s, so the 14
instances x 2 devices finish within 10 minutes including start-up), and prints one row per
instance: expected verdict, CPU verdict and seconds, GPU verdict and seconds, and the domains
per second of each where the search reports its domain count.  Exit status 1 when a verdict is
wrong against the expected one or the two devices disagree on sat/unsat; 0 otherwise
(timeouts and unknowns are not errors).  Needs a torch build with CUDA:

    python benchmarks/gpu_check.py [--cap 18] [--sample PATH] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "samples" / "core.csv"
DECIDED = ("sat", "unsat")


def run_one(onnx_path: Path, prop: Path, cap: float, device: str) -> tuple[str, float, dict]:
    """(status, wall seconds, stats) of one verify process."""
    cmd = [
        sys.executable,
        "-m",
        "completeverify",
        "verify",
        str(onnx_path),
        str(prop),
        "--timeout",
        str(cap),
        "--json",
        "--device",
        device,
    ]
    t0 = time.monotonic()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=cap + 60, check=False)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - t0, {}
    wall = time.monotonic() - t0
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        return "error", wall, {"message": (out.stderr.strip().splitlines() or ["?"])[-1]}
    data = json.loads(lines[-1])
    return data.get("status", "error"), wall, data.get("stats", {})


def main() -> int:
    """Run the sample on both devices and print the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=Path, default=SAMPLE)
    ap.add_argument("--cap", type=float, default=18.0, help="timeout cap per run in seconds")
    ap.add_argument("--csv", type=Path, help="also write the rows here")
    ap.add_argument("--devices", default="cpu,cuda", help="the two devices (cpu,cpu: dry run)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N instances (0: all)")
    args = ap.parse_args()
    devices = args.devices.split(",")
    import torch

    if "cuda" in args.devices and not torch.cuda.is_available():
        print(
            f"no CUDA device visible to torch {torch.__version__}: nothing to compare",
            file=sys.stderr,
        )
        return 2
    folder = args.sample.parent
    rows = [r for r in csv.reader(args.sample.read_text().splitlines()) if r]
    rows = rows[: args.limit] if args.limit else rows
    truth_path = folder / (args.sample.stem + "_ground_truth.csv")
    truth = list(csv.DictReader(truth_path.read_text().splitlines())) if truth_path.exists() else []
    bad = 0
    table = []
    print(
        f"{'instance':58s} {'expected':8s} {'cpu':>16s} {'gpu':>16s}"
        f" {'dom/s cpu':>10s} {'dom/s gpu':>10s}"
    )
    for k, (onnx_rel, prop_rel, _timeout) in enumerate(rows):
        expected = truth[k].get("consensus", "?") if k < len(truth) else "?"
        (s_c, t_c, st_c), (s_g, t_g, st_g) = [
            run_one(folder / onnx_rel, folder / prop_rel, args.cap, d) for d in devices
        ]
        rate = [
            f"{st.get('domains', 0) / max(st.get('bab', 0) or 1e-9, 1e-9):10.0f}"
            if st.get("domains") and st.get("bab")
            else f"{'-':>10s}"
            for st in (st_c, st_g)
        ]
        wrong = [s for s in (s_c, s_g) if s in DECIDED and expected in DECIDED and s != expected]
        disagree = s_c in DECIDED and s_g in DECIDED and s_c != s_g
        bad += bool(wrong or disagree)
        name = f"{Path(onnx_rel).stem}/{Path(prop_rel).stem}"[:58]
        flag = "  WRONG" if wrong else ("  DISAGREE" if disagree else "")
        print(
            f"{name:58s} {expected:8s} {s_c:>8s} {t_c:6.1f} s {s_g:>8s} {t_g:6.1f} s"
            f" {rate[0]} {rate[1]}{flag}"
        )
        table.append([name, expected, s_c, f"{t_c:.2f}", s_g, f"{t_g:.2f}"])
    for device, col in (("cpu", 2), ("gpu", 4)):
        dec = [r for r in table if r[col] in DECIDED]
        print(
            f"{device}: decided {len(dec)}/{len(table)}"
            f" in {sum(float(r[col + 1]) for r in dec):.1f} s"
        )
    if args.csv:
        with args.csv.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["instance", "expected", "cpu", "cpu_s", "gpu", "gpu_s"])
            w.writerows(table)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

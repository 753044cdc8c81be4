"""Generate the tiny networks and properties of ``benchmarks/suites/nets/`` and their ground truth.

Run from the repository root: ``python benchmarks/suites/make_nets.py``.  The
verdicts come from the exact oracle in ``tests/nets.py`` (activation-pattern
enumeration plus one LP per pattern), never from completeverify itself: each
property asks whether ``C y <= d`` is reachable, with ``d`` set 0.05 above
(``sat``) or below (``unsat``) the exact minimum of ``max_k (C_k y)`` over the box.
"""

from __future__ import annotations

import csv
import gzip
import sys
from pathlib import Path

import numpy as np
import onnx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from nets import exact_min, mlp_onnx, random_mlp, vnnlib_text  # noqa: E402

MARGIN = 0.05
TIMEOUT = 30


def _examples() -> list[tuple[str, str, str]]:
    """The shipped examples/ instances with their known verdicts (see tests/nets.make_example)."""
    return [
        ("../../examples/mlp.onnx", "../../examples/mlp_sat.vnnlib", "sat"),
        ("../../examples/mlp.onnx", "../../examples/mlp_unsat.vnnlib", "unsat"),
    ]


def _net(
    name: str, seed: int, sizes: list[int], C: np.ndarray, gz_property: bool = False
) -> list[tuple[str, str, str]]:
    """One network with a sat and an unsat property, written under nets/; returns suite rows."""
    rng = np.random.default_rng(seed)
    layers = random_mlp(rng, sizes)
    n_in = sizes[0]
    lower, upper = -np.ones(n_in), np.ones(n_in)
    m = exact_min(layers, lower, upper, [(C, np.zeros(C.shape[0]))])
    nets = HERE / "nets"
    nets.mkdir(exist_ok=True)
    onnx.save(mlp_onnx(layers, input_shape=(1, n_in)), nets / f"{name}.onnx")
    rows = []
    for verdict, d in (("sat", m + MARGIN), ("unsat", m - MARGIN)):
        text = vnnlib_text(lower, upper, [(C, np.full(C.shape[0], round(d, 6)))])
        prop = f"{name}_{verdict}.vnnlib"
        if gz_property and verdict == "unsat":
            prop += ".gz"
            with gzip.GzipFile(nets / prop, "wb", mtime=0) as fh:  # mtime 0: reproducible bytes
                fh.write(text.encode())
        else:
            (nets / prop).write_text(text)
        rows.append((f"nets/{name}.onnx", f"nets/{prop}", verdict))
    return rows


def main() -> None:
    """Write nets/, tiny.csv (no header, as VNN-COMP publishes) and tiny_ground_truth.csv."""
    rows = _examples()
    rows += _net("mlp2x4", 11, [2, 4, 4, 2], np.array([[1.0, -1.0]]))
    rows += _net(
        "mlp3x6", 12, [3, 6, 6, 3], np.array([[1.0, -1.0, 0.0], [1.0, 0.0, -1.0]]), gz_property=True
    )
    with open(HERE / "tiny.csv", "w", newline="") as fh:
        for onnx_path, prop, _ in rows:
            fh.write(f"{onnx_path},{prop},{TIMEOUT}\n")
    with open(HERE / "tiny_ground_truth.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["onnx", "vnnlib", "timeout", "consensus"])
        for onnx_path, prop, verdict in rows:
            writer.writerow([onnx_path, prop, f"{TIMEOUT:.1f}", verdict])


if __name__ == "__main__":
    main()

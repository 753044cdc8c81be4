"""Where the tests find the repository's files and the shared benchmarks (one definition)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
EXAMPLE_NET = EXAMPLES / "mlp.onnx"
EXAMPLE_SAT = EXAMPLES / "mlp_sat.vnnlib"
EXAMPLE_UNSAT = EXAMPLES / "mlp_unsat.vnnlib"
# the VNN-COMP instances next to the repository (present for developers and in CI)
SHARED_BENCHMARKS = REPO.parent / "shared" / "benchmarks"

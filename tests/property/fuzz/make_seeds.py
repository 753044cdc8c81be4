"""Write the seed corpus of the fuzz harnesses (tests/property/fuzz/corpus/{vnnlib,onnx,cli}/).

Seeds are the repository's shipped files (examples/, benchmarks/suites/nets/) and small
inputs derived from them or built here; no shared benchmark file is copied.  Rerun after
changing it: ``python tests/property/fuzz/make_seeds.py``.
"""

from __future__ import annotations

import gzip
import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))

from contract import CORPUS, SPLIT  # noqa: E402 - after the path set-up

from nets import mlp_onnx, random_mlp  # noqa: E402

SHIPPED = [REPO / "examples", REPO / "benchmarks" / "suites" / "nets"]

DERIVED_PROPERTIES = [
    # scientific notation, comments, CRLF, a byte-order mark, a latin-1 comment
    (
        "\ufeff; comment\r\n(declare-const X_0 Real)\r\n(declare-const Y_0 Real)\r\n"
        "(assert (>= X_0 -1e-1))\r\n(assert (<= X_0 2.5E+0))\r\n(assert (<= Y_0 0.0))\r\n"
    ),
    # disjunctive input boxes and a disjunctive output
    (
        "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
        "(declare-const Y_1 Real)\n(assert (or (and (>= X_0 0) (<= X_0 1) (>= X_1 0) (<= X_1 1))"
        " (and (>= X_0 -1) (<= X_0 0) (>= X_1 -1) (<= X_1 0))))\n"
        "(assert (or (and (<= Y_0 Y_1)) (and (>= Y_0 (* 2 Y_1)) (<= (+ Y_0 Y_1) 3))))\n"
    ),
    # declare-fun, arithmetic terms, chained comparisons, ignored commands
    (
        "(set-logic QF_LRA)\n(declare-fun X_0 () Real)\n(declare-fun Y_0 () Real)\n"
        "(assert (<= -1 X_0 (/ 3 2)))\n(assert (> (- Y_0 (* 0.5 X_0)) 0))\n(check-sat)\n"
    ),
]


def _write(folder: Path, data: bytes, stem: str) -> None:
    """One seed file, named by its stem and a short hash."""
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(data).hexdigest()[:10]
    (folder / f"{stem}-{digest}").write_bytes(data)


def _conv_model() -> onnx.ModelProto:
    """A tiny Conv -> Relu -> Flatten -> Gemm network with a folded Reshape target."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(2, 1, 2, 2)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(2, np.float32), "b")
    g = numpy_helper.from_array(rng.normal(size=(3, 8)).astype(np.float32), "g")
    shape = numpy_helper.from_array(np.array([1, 8], np.int64), "shape")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[2, 2], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "shape"], ["f"], name="reshape"),
        helper.make_node("Gemm", ["f", "g"], ["y"], transB=1, name="gemm"),
    ]
    graph = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [w, b, g, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def main() -> None:
    """Write every seed."""
    shipped_models = [p for d in SHIPPED for p in sorted(d.glob("*.onnx*"))]
    shipped_props = [p for d in SHIPPED for p in sorted(d.glob("*.vnnlib*"))]
    for p in shipped_props:
        _write(CORPUS / "vnnlib", p.read_bytes(), p.name.split(".")[0])
    for k, text in enumerate(DERIVED_PROPERTIES):
        data = text.encode("utf-8")
        if k == 0:
            data = data.replace(b"; comment", b"; caf\xe9 comment")  # latin-1 byte
        _write(CORPUS / "vnnlib", data, f"derived{k}")
    _write(CORPUS / "vnnlib", gzip.compress(DERIVED_PROPERTIES[1].encode(), mtime=0), "derived1.gz")
    models = {p.name.split(".")[0]: p.read_bytes() for p in shipped_models}
    models["conv"] = _conv_model().SerializeToString()
    models["mlp_f64"] = mlp_onnx(
        random_mlp(np.random.default_rng(1), [2, 3, 2]), dtype=TensorProto.DOUBLE
    ).SerializeToString()
    for stem, data in models.items():
        _write(CORPUS / "onnx", data, stem)
    _write(CORPUS / "onnx", gzip.compress(models["conv"], mtime=0), "conv.gz")
    rng = np.random.default_rng(0)  # onnx_struct: bytes that choose mutations of the models
    for _ in range(12):
        _write(CORPUS / "onnx_struct", rng.integers(0, 256, 24, dtype=np.uint8).tobytes(), "ops")
    pairs = [
        (REPO / "examples" / "mlp.onnx", REPO / "examples" / "mlp_sat.vnnlib"),
        (REPO / "examples" / "mlp.onnx", REPO / "examples" / "mlp_unsat.vnnlib"),
    ]
    nets = REPO / "benchmarks" / "suites" / "nets"
    pairs += [
        (nets / "mlp2x4.onnx", nets / "mlp2x4_sat.vnnlib"),
        (nets / "mlp3x6.onnx", nets / "mlp3x6_unsat.vnnlib.gz"),
    ]
    for net, prop in pairs:
        _write(CORPUS / "cli", net.read_bytes() + SPLIT + prop.read_bytes(), net.stem)


if __name__ == "__main__":
    main()

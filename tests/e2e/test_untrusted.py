"""Untrusted input: every hostile case of issue 10 ends in a correct verdict or one `error:` line
with exit 2, within 10 s (and, for the resource cases, 1 GiB; see test_untrusted_limits.py).

The CLI runs in-process (``completeverify.cli.main``) to keep these fast.
"""

from __future__ import annotations

import gzip
import math
import os
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from paths import REPO

import completeverify as cv
from completeverify.cli import main

ROOT = REPO
NET = ROOT / "examples" / "mlp.onnx"
SAT = ROOT / "examples" / "mlp_sat.vnnlib"
UNSAT = ROOT / "examples" / "mlp_unsat.vnnlib"
BUDGET_S = 10.0


def cli(capsys, *args) -> tuple[int, str, str]:
    """Run ``completeverify verify ARGS`` in-process: (exit code, stdout, stderr), within 10 s."""
    start = time.monotonic()
    try:
        code = main(["verify", *map(str, args)])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    seconds = time.monotonic() - start
    out, err = capsys.readouterr()
    assert seconds < BUDGET_S, f"took {seconds:.1f} s"
    return code, out, err


def refused(capsys, net, prop, needle: str, *extra) -> str:
    """Assert exit 2 with exactly one `error:` line containing ``needle``; return that line."""
    code, out, err = cli(capsys, net, prop, "--timeout", 20, *extra)
    lines = err.strip().splitlines()
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle.lower() in lines[0].lower(), lines[0]
    return lines[0]


def verdict(capsys, net, prop, *extra) -> str:
    """The verdict line of a run that must succeed."""
    code, out, err = cli(capsys, net, prop, "--timeout", 20, *extra)
    assert code == 0, err
    return out.strip().splitlines()[0]


def model(nodes, inits=(), inputs=None, outputs=None, opset=13, ir=8) -> onnx.ModelProto:
    """An ONNX model from parts, without the checker (the point is to be malformed)."""
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5])]
    outputs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])]
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ir
    return m


def gemm_model(weight=None, name="W") -> onnx.ModelProto:
    """x (1, 5) -> Gemm(W (3, 5), transB) -> y (1, 3)."""
    w = np.full((3, 5), 0.1, np.float32) if weight is None else weight
    return model(
        [helper.make_node("Gemm", ["x", name], ["y"], transB=1, name="gemm")],
        [numpy_helper.from_array(w, name)],
    )


def save(tmp_path: Path, m: onnx.ModelProto | bytes, name="net.onnx") -> Path:
    """Write a model (or raw bytes) into tmp_path."""
    path = tmp_path / name
    path.write_bytes(m if isinstance(m, bytes) else m.SerializeToString())
    return path


def prop_file(tmp_path: Path, text: str | bytes, name="prop.vnnlib") -> Path:
    """Write a property into tmp_path."""
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


# ------------------------------------------------------------------------------------ files
def test_missing_files(capsys, tmp_path):
    refused(capsys, tmp_path / "none.onnx", UNSAT, "not found")
    refused(capsys, NET, tmp_path / "none.vnnlib", "not found")


def test_empty_files(capsys, tmp_path):
    refused(capsys, save(tmp_path, b""), UNSAT, "empty")
    refused(capsys, NET, prop_file(tmp_path, ""), "no assertions")


def test_directory_instead_of_a_file(capsys, tmp_path):
    refused(capsys, tmp_path, UNSAT, "is a directory")
    refused(capsys, NET, tmp_path, "is a directory")


def test_binary_files(capsys, tmp_path):
    junk = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    refused(capsys, save(tmp_path, junk), UNSAT, "not a valid onnx")
    refused(capsys, NET, prop_file(tmp_path, b"\x00\x01" + junk), "binary")


def test_garbage_protobuf(capsys, tmp_path):
    refused(capsys, save(tmp_path, b"\x08\x07\x12\x00"), UNSAT, "not a valid onnx")


def test_truncated_gzip(capsys, tmp_path):
    net = gzip.compress(NET.read_bytes())
    refused(capsys, save(tmp_path, net[: len(net) // 2], "net.onnx.gz"), UNSAT, "truncated gzip")
    prop = gzip.compress(UNSAT.read_bytes())
    refused(capsys, NET, prop_file(tmp_path, prop[:-12], "p.vnnlib.gz"), "truncated gzip")
    refused(capsys, NET, prop_file(tmp_path, prop[:2] + b"\xff" * 40, "q.vnnlib.gz"), "gzip")


def test_gzip_bombs(capsys, tmp_path):
    bomb = gzip.compress(b"\x00" * (24 << 20), compresslevel=9)  # ~24 KB -> 24 MiB
    refused(capsys, save(tmp_path, bomb, "bomb.onnx.gz"), UNSAT, "decompression bomb")
    refused(capsys, NET, prop_file(tmp_path, bomb, "bomb.vnnlib.gz"), "decompression bomb")


def test_gzip_that_is_fine_still_works(capsys, tmp_path):
    net = save(tmp_path, gzip.compress(NET.read_bytes()), "net.onnx.gz")
    assert (
        verdict(capsys, net, prop_file(tmp_path, gzip.compress(SAT.read_bytes()), "p.gz")) == "sat"
    )


# ---------------------------------------------------------------------------- external data
def external_model(tmp_path: Path, location: str, length: int | None = None) -> Path:
    """The example network saved with its weights in an external file at ``location``."""
    m = onnx.load(NET)
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    onnx.save_model(
        m,
        folder / "net.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    saved = onnx.load(folder / "net.onnx", load_external_data=False)
    for t in saved.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = location
            if entry.key == "length" and length is not None:
                entry.value = str(length)
    onnx.save_model(saved, folder / "net.onnx")
    return folder / "net.onnx"


def test_external_data_next_to_the_model_from_another_folder(capsys, tmp_path, monkeypatch):
    net = external_model(tmp_path, "weights.bin")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "weights.bin").write_bytes(b"\x00" * 4096)  # a decoy in the working folder
    monkeypatch.chdir(elsewhere)
    assert verdict(capsys, net, UNSAT) == "unsat"
    assert verdict(capsys, net, SAT) == "sat"


def test_external_data_outside_the_folder_is_refused(capsys, tmp_path):
    net = external_model(tmp_path, "../weights.bin")
    (tmp_path / "weights.bin").write_bytes((tmp_path / "model" / "weights.bin").read_bytes())
    refused(capsys, net, UNSAT, "leaves the model's folder")
    net = external_model(tmp_path, str(tmp_path / "model" / "weights.bin"))
    refused(capsys, net, UNSAT, "is absolute")


def test_external_data_symlink_out_of_the_folder_is_refused(capsys, tmp_path):
    net = external_model(tmp_path, "link.bin")
    outside = tmp_path / "outside.bin"
    outside.write_bytes((tmp_path / "model" / "weights.bin").read_bytes())
    os.symlink(outside, tmp_path / "model" / "link.bin")
    refused(capsys, net, UNSAT, "leaves the model's folder")


def test_external_data_size_is_checked(capsys, tmp_path):
    net = external_model(tmp_path, "weights.bin", length=8)
    refused(capsys, net, UNSAT, "does not match")
    net = external_model(tmp_path, "weights.bin")
    (tmp_path / "model" / "weights.bin").write_bytes(b"\x00" * 16)
    refused(capsys, net, UNSAT, "too short")
    (tmp_path / "model" / "weights.bin").unlink()
    refused(capsys, net, UNSAT, "not found")


def test_external_data_from_bytes_is_refused(tmp_path):
    net = external_model(tmp_path, "weights.bin")
    with pytest.raises(cv.ModelError, match="load the model from its path"):
        cv.load_onnx(net.read_bytes())


# ------------------------------------------------------------------------------------ sizes
def test_huge_initializer_dims_without_data(capsys, tmp_path):
    t = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[10**6, 10**6])
    m = model([helper.make_node("Gemm", ["x", "W"], ["y"], transB=1, name="gemm")], [t])
    refused(capsys, save(tmp_path, m), UNSAT, "initializer 'W' has shape")


def test_constant_of_shape_of_1e12_elements(capsys, tmp_path):
    shape = numpy_helper.from_array(np.array([10**6, 10**6], np.int64), "s")
    m = model(
        [
            helper.make_node("ConstantOfShape", ["s"], ["c"], name="cos"),
            helper.make_node("Add", ["x", "c"], ["y"], name="add"),
        ],
        [shape],
    )
    refused(capsys, save(tmp_path, m), UNSAT, "1000000000000 elements")


@pytest.mark.parametrize("dims", ([1, 10**6, 10**6], [511, 759657]))
def test_huge_input_dims(capsys, tmp_path, dims):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)
    m = model([helper.make_node("Relu", ["x"], ["y"])], inputs=[x])
    refused(capsys, save(tmp_path, m), UNSAT, "over the limit")


def test_expand_of_a_constant_is_bounded(capsys, tmp_path):
    inits = [
        numpy_helper.from_array(np.array([10**5, 10**5], np.int64), "s"),
        numpy_helper.from_array(np.ones(1, np.float32), "one"),
    ]
    m = model(
        [
            helper.make_node("Expand", ["one", "s"], ["c"], name="expand"),
            helper.make_node("Add", ["x", "c"], ["y"], name="add"),
        ],
        inits,
    )
    refused(capsys, save(tmp_path, m), UNSAT, "10000000000 elements")


# ------------------------------------------------------------------------------ graph shape
def test_two_inputs_and_two_outputs(capsys, tmp_path):
    xs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 5]) for n in ("x", "z")]
    m = model([helper.make_node("Add", ["x", "z"], ["y"])], inputs=xs)
    refused(capsys, save(tmp_path, m), UNSAT, "exactly one network input, found 2")
    ys = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 5]) for n in ("y", "w")]
    m = model(
        [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Relu", ["x"], ["w"])], outputs=ys
    )
    refused(capsys, save(tmp_path, m), UNSAT, "exactly one network output, found 2")


def test_dynamic_feature_dimension(capsys, tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "n"])
    refused(
        capsys,
        save(tmp_path, model([helper.make_node("Relu", ["x"], ["y"])], inputs=[x])),
        UNSAT,
        "not static",
    )


def test_output_that_ignores_the_input(capsys, tmp_path):
    c = numpy_helper.from_array(np.ones((1, 3), np.float32), "c")
    m = model(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["c"], ["y"])], [c]
    )
    refused(capsys, save(tmp_path, m), UNSAT, "does not depend on the input")


def test_dangling_input_and_cycle(capsys, tmp_path):
    m = model([helper.make_node("Add", ["x", "ghost"], ["y"], name="add")])
    refused(capsys, save(tmp_path, m), UNSAT, "input 'ghost' is not produced")
    m = model(
        [
            helper.make_node("Add", ["x", "b"], ["a"], name="n1"),
            helper.make_node("Relu", ["a"], ["b"], name="n2"),
            helper.make_node("Relu", ["a"], ["y"], name="n3"),
        ]
    )
    refused(capsys, save(tmp_path, m), UNSAT, "a cycle ('n1' -> 'n2' -> 'n1')")


def test_shape_mismatch(capsys, tmp_path):
    refused(capsys, save(tmp_path, gemm_model(np.ones((3, 4), np.float32))), UNSAT, "gemm")


def test_truncated_raw_data(capsys, tmp_path):
    m = gemm_model()
    m.graph.initializer[0].raw_data = m.graph.initializer[0].raw_data[:-7]
    refused(capsys, save(tmp_path, m), UNSAT, "raw_data has 53 bytes")


def test_truncated_model_file(capsys, tmp_path):
    data = NET.read_bytes()
    refused(capsys, save(tmp_path, data[: len(data) - 100]), UNSAT, str(tmp_path / "net.onnx"))


def test_if_subgraph(capsys, tmp_path):
    branch = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["t"])],
        "b",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 5])],
    )
    cond = numpy_helper.from_array(np.array(True), "cond")
    m = model(
        [
            helper.make_node(
                "If", ["cond"], ["y"], then_branch=branch, else_branch=branch, name="if"
            )
        ],
        [cond],
    )
    refused(capsys, save(tmp_path, m), UNSAT, "If")


def test_concat_without_axis_and_missing_input(capsys, tmp_path):
    m = model([helper.make_node("Concat", ["x", "x"], ["y"], name="cat")])
    refused(capsys, save(tmp_path, m), UNSAT, "cat")
    m = model([helper.make_node("Pad", ["x", ""], ["y"], name="pad")])
    refused(capsys, save(tmp_path, m), UNSAT, "pad")


def test_control_characters_in_names(capsys, tmp_path):
    m = model([helper.make_node("Relu", ["x"], ["y"], name="bad\nname")])
    line = refused(capsys, save(tmp_path, m), UNSAT, "control characters")
    assert "\n" not in line


# --------------------------------------------------------------------------- values and ops
@pytest.mark.parametrize("value,kind", ((math.nan, "NaN"), (math.inf, "infinite")))
def test_non_finite_weights_name_the_initializer(capsys, tmp_path, value, kind):
    w = np.full((3, 5), 0.1, np.float32)
    w[1, 2] = value
    line = refused(capsys, save(tmp_path, gemm_model(w, "fc1.weight")), UNSAT, "'fc1.weight'")
    assert kind in line and "disagrees" not in line


def test_unsupported_and_custom_ops(capsys, tmp_path):
    m = model([helper.make_node("NonMaxSuppression", ["x"], ["y"], name="nms")])
    refused(capsys, save(tmp_path, m), UNSAT, "unsupported operator")
    m = model([helper.make_node("Relu", ["x"], ["y"], name="mine", domain="com.example")])
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    refused(capsys, save(tmp_path, m), UNSAT, "unsupported operator")


def test_opset_99_and_int64_input(capsys, tmp_path):
    m = model([helper.make_node("Relu", ["x"], ["y"])], opset=99)
    refused(capsys, save(tmp_path, m), UNSAT, "opset 99 is not supported")
    x = helper.make_tensor_value_info("x", TensorProto.INT64, [1, 5])
    refused(
        capsys,
        save(tmp_path, model([helper.make_node("Relu", ["x"], ["y"])], inputs=[x])),
        UNSAT,
        "must be float32 or float64",
    )


# ----------------------------------------------------------------------- properties: structure
DECL = "".join(f"(declare-const X_{i} Real)\n" for i in range(5))
DECL += "".join(f"(declare-const Y_{j} Real)\n" for j in range(3))
BOX = "".join(f"(assert (>= X_{i} -0.5))\n(assert (<= X_{i} 0.5))\n" for i in range(5))
UNSAFE = "(assert (<= Y_0 Y_1))\n"


def test_deep_nesting(capsys, tmp_path):
    deep = "(and " * 100_000 + "(<= Y_0 1)" + ")" * 100_000
    refused(capsys, NET, prop_file(tmp_path, DECL + BOX + f"(assert {deep})"), "nested more than")


def test_50_mb_property(capsys, tmp_path):
    big = DECL + BOX + UNSAFE + ";" + "x" * (50 << 20) + "\n"
    refused(capsys, NET, prop_file(tmp_path, big), "over the limit")


@pytest.mark.parametrize(
    "text,needle",
    (
        (DECL + BOX + "(assert (<= Y_7 0))\n", "undeclared variable 'Y_7'"),
        (DECL.replace("X_1 ", "X_9 ") + BOX.replace("X_1 ", "X_9 ") + UNSAFE, "X_1 is missing"),
        (DECL + "(declare-const X_5 Real)\n" + BOX + UNSAFE, "declares 6 input"),
        (
            DECL.replace("(declare-const X_4 Real)\n", "")
            + BOX.split("(assert (>= X_4")[0]
            + UNSAFE,
            "declares 4 input",
        ),
        (DECL + BOX.replace("(assert (>= X_3 -0.5))\n", "") + UNSAFE, "X_3 has no lower bound"),
        (DECL + BOX + "(assert (>= X_2 0.7))\n" + UNSAFE, "empty input box"),
    ),
)
def test_bad_property_structure(capsys, tmp_path, text, needle):
    refused(capsys, NET, prop_file(tmp_path, text), needle)


def test_disjunctive_input_boxes(capsys, tmp_path):
    sat_rows = SAT.read_text().splitlines()[-1]
    unsat_rows = UNSAT.read_text().splitlines()[-1]
    box = " ".join(f"(>= X_{i} -0.5) (<= X_{i} 0.5)" for i in range(5))
    far = " ".join(f"(>= X_{i} 10) (<= X_{i} 10.5)" for i in range(5))
    both = DECL + f"(assert (or (and {box}) (and {far})))\n"
    assert verdict(capsys, NET, prop_file(tmp_path, both + sat_rows + "\n")) == "sat"
    only = DECL + f"(assert (or (and {box}) (and {box})))\n"
    assert verdict(capsys, NET, prop_file(tmp_path, only + unsat_rows + "\n")) == "unsat"


# ------------------------------------------------------------------- properties: literals, text
@pytest.mark.parametrize(
    "literal,needle",
    (
        ("NaN", "'NaN' is not a finite number"),
        ("inf", "'inf' is not a finite number"),
        ("-inf", "not a finite number"),
        ("1e400", "out of float64 range"),
        ("#x1F", "hexadecimal"),
    ),
)
def test_bad_literals(capsys, tmp_path, literal, needle):
    text = DECL + BOX.replace("0.5))\n(assert (>= X_1", f"{literal}))\n(assert (>= X_1", 1) + UNSAFE
    refused(capsys, NET, prop_file(tmp_path, text), needle)


@pytest.mark.parametrize(
    "transform",
    (
        lambda t: t.replace("0.939398", "9.39398e-1"),  # scientific notation
        lambda t: "; a comment\n" + t.replace("\n", " ; trailing\n"),  # comments
        lambda t: t.replace("\n", "\r\n"),  # CRLF
        lambda t: "\ufeff" + t,  # byte-order mark
    ),
)
def test_text_variants_that_must_work(capsys, tmp_path, transform):
    for src, expected in ((SAT, "sat"), (UNSAT, "unsat")):
        text = transform(src.read_text().replace("0.839398", "8.39398e-1"))
        assert verdict(capsys, NET, prop_file(tmp_path, text)) == expected


def test_latin1_comment_must_work(capsys, tmp_path):
    data = b"; caf\xe9 cr\xe8me\n" + UNSAT.read_bytes()
    assert verdict(capsys, NET, prop_file(tmp_path, data)) == "unsat"


# ---------------------------------------------------------- properties: declarations, formulas
@pytest.mark.parametrize(
    "text,needle",
    (
        (DECL.replace("X_0 Real", "X_0 Int") + BOX + UNSAFE, "unsupported sort 'Int'"),
        (DECL.replace("Y_2 Real", "Y_2 Bool") + BOX + UNSAFE, "unsupported sort 'Bool'"),
        (DECL, "no assertions"),
        (DECL + BOX + "(assert (<= Y_0 Y_1)\n", "unbalanced parenthesis"),
        (DECL + BOX + "(assert (<= Y_0 Y_1)))\n", "unbalanced parenthesis"),
        (DECL + "(declare-const X_0 Real)\n" + BOX + UNSAFE, "declared twice"),
        (DECL + BOX + "(assert (<= X_0 Y_1))\n", "must not mix"),
        (DECL + BOX + "(assert (<= (* Y_0 Y_1) 1))\n", "nonlinear"),
    ),
)
def test_bad_declarations_and_formulas(capsys, tmp_path, text, needle):
    refused(capsys, NET, prop_file(tmp_path, text), needle)


@pytest.mark.parametrize("n", (19, 40))
def test_exponential_disjunct_expansion_fails_fast(capsys, tmp_path, n):
    ors = "".join("(assert (or (<= Y_0 0) (<= Y_1 0)))\n" for _ in range(n))
    start = time.monotonic()
    refused(capsys, NET, prop_file(tmp_path, DECL + BOX + ors), "disjuncts")
    nested = "(and " * n + "".join("(or (<= Y_0 0) (<= Y_1 0)))" for _ in range(n))
    refused(capsys, NET, prop_file(tmp_path, DECL + BOX + f"(assert {nested})\n"), "disjuncts")
    assert time.monotonic() - start < 5.0


def test_expansion_fails_in_milliseconds():
    from completeverify.vnnlib import parse_vnnlib

    ors = "".join("(assert (or (<= Y_0 0) (<= Y_1 0)))\n" for _ in range(19))
    start = time.perf_counter()
    with pytest.raises(cv.PropertyError, match="524288 disjuncts"):
        parse_vnnlib(DECL + BOX + ors)
    assert time.perf_counter() - start < 0.5


# --------------------------------------------------------------------------------- options
@pytest.mark.parametrize(
    "value,needle",
    (
        ("nan", "must be positive"),
        ("-1", "must be positive"),
        ("0", "must be positive"),
        ("soon", "not a number"),
    ),
)
def test_bad_timeouts(capsys, value, needle):
    code, _out, err = cli(capsys, NET, UNSAT, "--timeout", value)
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err


def test_infinite_timeout_gives_a_verdict(capsys):
    code, out, err = cli(capsys, NET, UNSAT, "--timeout", "inf")
    assert code == 0 and out.strip() == "unsat", err


def test_result_file_in_a_missing_folder(capsys, tmp_path):
    refused(capsys, NET, UNSAT, "does not exist", "--result-file", tmp_path / "no" / "res.txt")


def test_internal_failure_after_reading_is_exit_1_naming_the_instance(capsys, monkeypatch):
    import completeverify.pipeline as pipeline

    def broken(*args, **kwargs):
        """An invariant failure deep in the pipeline."""
        raise RuntimeError("invariant\nbroken")

    monkeypatch.setattr(pipeline, "verify_graph", broken)
    code, _out, err = cli(capsys, NET, UNSAT)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1
    assert "internal error" in lines[0] and "please report" in lines[0]
    assert str(NET) in lines[0] and str(UNSAT) in lines[0]


def test_unknown_or_mistyped_attributes_are_named(capsys, tmp_path):
    """Found by the CLI fuzzer: an attribute the converter ignored broke the replay later."""
    m = gemm_model()
    m.graph.node[0].attribute.append(helper.make_attribute("tiansB", 1))
    refused(capsys, save(tmp_path, m), UNSAT, "unknown attribute 'tiansB'")
    m = gemm_model()
    m.graph.node[0].attribute.append(helper.make_attribute("alpha", 2))
    refused(capsys, save(tmp_path, m), UNSAT, "attribute 'alpha' must be FLOAT, not INT")

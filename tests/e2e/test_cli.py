"""The command line: verdict lines, JSON, result files, and bad input as one line with exit 2."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from paths import REPO

ROOT = REPO
NET = ROOT / "examples" / "mlp.onnx"
SAT = ROOT / "examples" / "mlp_sat.vnnlib"
UNSAT = ROOT / "examples" / "mlp_unsat.vnnlib"


def run(*args, timeout=120):
    """Run the CLI in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "completeverify", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_verdict_lines_and_result_file(tmp_path):
    out = tmp_path / "res.txt"
    p = run("verify", NET, UNSAT, "--timeout", 60, "--result-file", out)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == "unsat"
    assert out.read_text() == "unsat\n"
    p = run("verify", NET, SAT, "--timeout", 60, "--result-file", out)
    assert p.stdout.splitlines()[0] == "sat"
    text = out.read_text()
    assert text.startswith("sat\n((X_0 ") and text.rstrip().endswith(")")
    values = dict(line.strip("() \n").split() for line in text.splitlines()[1:])
    x = np.array([float(values[f"X_{i}"]) for i in range(5)], dtype=np.float32).reshape(1, 5)
    from onnx.reference import ReferenceEvaluator

    y = ReferenceEvaluator(onnx.load(NET)).run(None, {"x": x})[0].reshape(-1)
    assert np.allclose(y, [float(values[f"Y_{j}"]) for j in range(3)], rtol=1e-6, atol=1e-6)


def test_json_and_gzip(tmp_path):
    net_gz = tmp_path / "net.onnx.gz"
    prop_gz = tmp_path / "prop.vnnlib.gz"
    net_gz.write_bytes(gzip.compress(NET.read_bytes()))
    prop_gz.write_bytes(gzip.compress(SAT.read_bytes()))
    p = run("verify", net_gz, prop_gz, "--json", "--timeout", 60)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert obj["status"] == "sat" and len(obj["counterexample"]["input"]) == 5
    assert obj["seconds"] >= 0 and "attack" in obj["stats"]


def _bad_models(tmp_path: Path) -> dict[str, Path]:
    """Each kind of bad network file."""
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01this is not a protobuf\xff" * 10)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])
    nodes = [
        helper.make_node("Softmax", ["x"], ["s"], name="soft"),
        helper.make_node("Exp", ["s"], ["y"], name="ex"),
    ]
    unsupported = tmp_path / "unsupported.onnx"
    onnx.save(
        helper.make_model(
            helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 13)]
        ),
        unsupported,
    )
    return {
        "garbage": garbage,
        "empty": empty,
        "unsupported": unsupported,
        "missing": tmp_path / "nope.onnx",
    }


@pytest.mark.parametrize("kind", ["garbage", "empty", "unsupported", "missing"])
def test_bad_network_is_one_line_exit_2(kind, tmp_path):
    res = tmp_path / "res.txt"
    p = run("verify", _bad_models(tmp_path)[kind], UNSAT, "--result-file", res)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), p.stderr
    assert "Traceback" not in p.stderr and not res.exists()
    if kind == "unsupported":
        assert (
            "Softmax" in lines[0] and "soft" in lines[0] and "Exp" in lines[0] and "ex" in lines[0]
        )


@pytest.mark.parametrize(
    "text,needle",
    [
        ("(declare-const X_0 Real)\n(assert (<= X_0 1)", "1:"),  # unbalanced
        (
            "".join(
                f"(declare-const X_{i} Real)\n(assert (<= X_{i} 1))\n"
                f"(assert (>= X_{i} {2 if i == 3 else 0}))\n"
                for i in range(5)
            )
            + "".join(f"(declare-const Y_{j} Real)\n" for j in range(3))
            + "(assert (<= Y_0 0))\n",
            "empty",
        ),
    ],
)
def test_bad_property_is_one_line_exit_2(text, needle, tmp_path):
    prop = tmp_path / "bad.vnnlib"
    prop.write_text(text)
    p = run("verify", NET, prop)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], p.stderr


def test_shape_mismatch_and_bad_options(tmp_path):
    prop = tmp_path / "two.vnnlib"
    shutil.copy(ROOT / "examples" / "mlp_unsat.vnnlib", prop)
    text = (
        prop.read_text()
        .replace("(declare-const X_4 Real)\n", "")
        .replace("(assert (>= X_4 -0.5))\n(assert (<= X_4 0.5))\n", "")
    )
    prop.write_text(text)
    p = run("verify", NET, prop)
    assert p.returncode == 2 and "declares 4 input" in p.stderr and "5 inputs" in p.stderr
    p = run("verify", NET, UNSAT, "--timeout", "-3")
    assert (
        p.returncode == 2
        and p.stderr.startswith("error:")
        and len(p.stderr.strip().splitlines()) == 1
    )
    p = run("verify", NET, UNSAT, "--solver", "gurobi")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    p = run("verify", NET, missing := tmp_path / "missing.vnnlib")
    assert p.returncode == 2 and str(missing.name) in p.stderr
    p = run("verify", NET, UNSAT, "--result-file", tmp_path / "no" / "such" / "dir" / "r.txt")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1


def test_branch_and_bound_knobs():
    """--mode relu-split with --race-milp and --batch-size gives the same verdicts; bad values exit
    2."""
    p = run(
        "verify",
        NET,
        UNSAT,
        "--timeout",
        60,
        "--mode",
        "relu-split",
        "--race-milp",
        "--batch-size",
        4,
    )
    assert p.returncode == 0 and p.stdout.splitlines()[0] == "unsat", p.stderr
    p = run(
        "verify", NET, SAT, "--timeout", 60, "--mode", "relu-split", "--race-milp", "--no-attack"
    )
    assert p.returncode == 0 and p.stdout.splitlines()[0] == "sat", p.stderr
    p = run("verify", NET, UNSAT, "--batch-size", 0)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1

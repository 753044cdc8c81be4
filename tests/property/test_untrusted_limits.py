"""The resource cases of issue 10 in one fresh process: each is refused with exit 2, and the
process's peak memory (torch and onnx included) stays under 1 GiB."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import contextlib, gzip, io, json, resource, sys, tempfile, time
    from pathlib import Path
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    from completeverify.cli import main
    import completeverify.api, completeverify.pipeline  # imports are not part of the timings

    root = Path(sys.argv[1])
    net, prop = root / "examples" / "mlp.onnx", root / "examples" / "mlp_unsat.vnnlib"
    tmp = Path(tempfile.mkdtemp())

    def model(nodes, inits=(), dims=(1, 5)):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
        m = helper.make_model(helper.make_graph(nodes, "g", [x], [y], list(inits)),
                              opset_imports=[helper.make_opsetid("", 13)])
        return m.SerializeToString()

    decl = "".join(f"(declare-const X_{i} Real)\\n" for i in range(5))
    decl += "".join(f"(declare-const Y_{j} Real)\\n" for j in range(3))
    box = "".join(f"(assert (>= X_{i} 0))\\n(assert (<= X_{i} 1))\\n" for i in range(5))
    cases = {
        "gzip bomb": ("net.onnx.gz", gzip.compress(b"\\0" * (64 << 20)), None),
        "input [511, 759657]": ("net.onnx", model([helper.make_node("Relu", ["x"], ["y"])],
                                                  dims=(511, 759657)), None),
        "ConstantOfShape 1e12": ("net.onnx", model(
            [helper.make_node("ConstantOfShape", ["s"], ["c"]),
             helper.make_node("Add", ["x", "c"], ["y"])],
            [numpy_helper.from_array(np.array([10**6, 10**6], np.int64), "s")]), None),
        "2^19 disjuncts": (None, None, decl + box + "(assert (or (<= Y_0 0) (<= Y_1 0)))\\n" * 19),
        "nesting 100k": (None, None, decl + box + "(assert " + "(and " * 100000 + "(<= Y_0 1)"
                         + ")" * 100001 + "\\n"),
    }
    report = {}
    for name, (fname, data, text) in cases.items():
        n, p = net, prop
        if data is not None:
            n = tmp / fname
            n.write_bytes(data)
        if text is not None:
            p = tmp / "p.vnnlib"
            p.write_text(text)
        err = io.StringIO()
        start = time.monotonic()
        with contextlib.redirect_stderr(err):
            code = main(["verify", str(n), str(p), "--timeout", "30"])
        report[name] = [code, time.monotonic() - start, err.getvalue().strip()]
    # this process's own peak: Linux's ru_maxrss also keeps the RSS of the process that
    # spawned it (the pytest process) across exec, VmHWM is the new address space's alone
    try:
        hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
        report["peak_mib"] = int(hwm.split()[1]) / 1024
    except (OSError, IndexError):
        report["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(report))
""")


def test_resource_cases_in_one_process_under_1_gib():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    peak = report.pop("peak_mib")
    for name, (code, seconds, err) in report.items():
        assert code == 2 and err.startswith("error: ") and "\n" not in err, (name, err)
        assert seconds < 10, (name, seconds)
    assert peak < 1024, f"peak memory {peak:.0f} MiB"

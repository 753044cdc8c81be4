"""The contract every fuzz harness checks, shared by the atheris and hypothesis drivers.

One input passes when the call returns or raises a CompleteVerifyError, within
``MAX_SECONDS`` of CPU time (wall-clock hangs are libFuzzer's ``-timeout``) and without the
process's peak memory passing ``MAX_RSS_MB``.
Anything else raises ``ContractBroken`` (atheris then saves the input as a crash).
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from completeverify.config import Limits
from completeverify.errors import CompleteVerifyError

MAX_SECONDS = 5.0
MAX_RSS_MB = int(os.environ.get("CV_FUZZ_RSS_MB", "1024"))  # peak growth over the baseline
# small limits keep each input cheap; the limits themselves are what is being tested
LIMITS = Limits(
    max_file_bytes=8 << 20,
    max_decompressed_bytes=32 << 20,
    max_tensor_elements=1 << 20,
    max_activation_elements=1 << 20,
    max_parameters=1 << 22,
    max_nodes=2_000,
    max_property_bytes=1 << 20,
    max_disjuncts=10_000,
    max_nesting_depth=2_000,
)
HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
SPLIT = b"\n#--property--#\n"  # separates the model and the property in a CLI input


class ContractBroken(AssertionError):
    """An input made a reader or the CLI break its contract."""


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


_BASELINE: list[float] = []


def check(call: Callable[[], object], what: str) -> None:
    """Run ``call``; ContractBroken unless it returns or raises CompleteVerifyError in time."""
    if not _BASELINE:
        _BASELINE.append(peak_rss_mb())
    start = time.process_time()  # CPU seconds: a loaded machine does not fail inputs
    try:
        call()
    except CompleteVerifyError as exc:
        if "\n" in str(exc):
            raise ContractBroken(f"{what}: multi-line error message: {exc!r}") from exc
    except Exception as exc:  # the finding: anything but the project's own errors
        raise ContractBroken(f"{what}: {exc.__class__.__name__}: {exc}") from exc
    seconds = time.process_time() - start
    if seconds > MAX_SECONDS:
        raise ContractBroken(f"{what}: took {seconds:.1f} CPU s (limit {MAX_SECONDS} s)")
    if peak_rss_mb() - _BASELINE[0] > MAX_RSS_MB:
        raise ContractBroken(f"{what}: peak memory grew to {peak_rss_mb():.0f} MiB")


def one_vnnlib(data: bytes) -> None:
    """The VNN-LIB reader on one input (gzip detected as in a file)."""
    from completeverify.errors import PropertyError
    from completeverify.safe_read import GZIP_MAGIC, gunzip_limited
    from completeverify.vnnlib import parse_vnnlib

    def run() -> None:
        """Decode like load_vnnlib, then parse."""
        raw = data
        if raw[:2] == GZIP_MAGIC:
            raw = gunzip_limited(
                raw,
                lambda m: PropertyError(m, "<fuzz>"),
                max_decompressed_bytes=LIMITS.max_property_bytes,
                max_compression_ratio=LIMITS.max_compression_ratio,
            )
        parse_vnnlib(
            raw.decode("utf-8", errors="replace"),
            "<fuzz>",
            max_disjuncts=LIMITS.max_disjuncts,
            max_depth=LIMITS.max_nesting_depth,
        )

    check(run, "load_vnnlib")


def one_onnx(data: bytes) -> None:
    """The ONNX import on one input given as bytes."""
    from completeverify.onnx_import import load_onnx

    check(lambda: load_onnx(data, limits=LIMITS), "load_onnx")


def one_cli(data: bytes) -> None:
    """The whole ``verify`` command on one (model, property) pair, in-process.

    Exit 0 (a verdict) or 2 with one ``error:`` line pass; exit 1 or a traceback is a finding.
    """
    from completeverify.cli import main

    model, _, prop = data.partition(SPLIT)
    with tempfile.TemporaryDirectory(prefix="cvfuzz-") as folder:
        net, spec = Path(folder, "net.onnx"), Path(folder, "prop.vnnlib")
        net.write_bytes(model)
        spec.write_bytes(prop)
        out, err = io.StringIO(), io.StringIO()

        def run() -> None:
            """One verify run with its output captured."""
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(["verify", str(net), str(spec), "--timeout", "3"])
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 1
            lines = err.getvalue().strip().splitlines()
            if code == 2 and (len(lines) != 1 or not lines[0].startswith("error:")):
                raise ContractBroken(f"exit 2 without exactly one error line: {lines!r}")
            if code not in (0, 2):
                raise ContractBroken(f"exit {code}: {err.getvalue().strip()[:500]}")

        check(run, "cli verify")


OPS = (
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Neg",
    "MatMul",
    "Gemm",
    "Relu",
    "Sigmoid",
    "Tanh",
    "Flatten",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Transpose",
    "Slice",
    "Gather",
    "Concat",
    "Pad",
    "Identity",
    "Dropout",
    "Cast",
    "Conv",
    "BatchNormalization",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Clip",
    "Constant",
    "ConstantOfShape",
    "Range",
    "Equal",
    "Where",
    "Expand",
    "ReduceProd",
    "ReduceSum",
    "Sqrt",
    "Pow",
    "Min",
    "Max",
    "Shape",
    "Size",
    "If",
)


class _Bytes:
    """Reads small integers from fuzz input bytes (0 once they run out)."""

    def __init__(self, data: bytes) -> None:
        """Start at the first byte."""
        self.data, self.pos = data, 0

    def take(self, n: int) -> int:
        """An integer in [0, n)."""
        if n <= 1 or self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1] % n

    def signed(self) -> int:
        """A small signed integer, sometimes huge."""
        value = self.take(256) - 128
        return value * 10**9 if self.take(8) == 0 else value


def mutate_model(data: bytes) -> bytes:
    """A seed model with structured mutations chosen by ``data`` (shapes, ops, wiring,
    attributes, tensor data, opset), serialised again: reaches the converters, which
    random bytes rarely do."""
    import onnx

    r = _Bytes(data)
    models = seeds("onnx")
    m = onnx.ModelProto()
    m.ParseFromString(_plain(models[r.take(len(models))]))
    g = m.graph
    for _ in range(1 + r.take(6)):
        what = r.take(9)
        if what == 0 and g.node:  # change an operator
            g.node[r.take(len(g.node))].op_type = OPS[r.take(len(OPS))]
        elif what == 1 and g.node:  # rewire an input
            node = g.node[r.take(len(g.node))]
            names = [i.name for i in g.input] + [t.name for t in g.initializer]
            names += [o for n in g.node for o in n.output] + ["", "missing"]
            if node.input:
                node.input[r.take(len(node.input))] = names[r.take(len(names))]
            else:
                node.input.append(names[r.take(len(names))])
        elif what == 2 and g.initializer:  # change a declared dimension
            t = g.initializer[r.take(len(g.initializer))]
            if t.dims:
                t.dims[r.take(len(t.dims))] = r.signed()
        elif what == 3 and g.initializer:  # cut or corrupt tensor data
            t = g.initializer[r.take(len(g.initializer))]
            if t.raw_data:
                t.raw_data = t.raw_data[: r.take(len(t.raw_data) + 1)]
        elif what == 4 and g.node:  # an integer attribute
            node = g.node[r.take(len(g.node))]
            name = (
                "axis",
                "transB",
                "transA",
                "group",
                "keepdims",
                "perm",
                "pads",
                "strides",
                "kernel_shape",
                "to",
            )[r.take(10)]
            if name in ("perm", "pads", "strides", "kernel_shape"):
                node.attribute.append(
                    onnx.helper.make_attribute(
                        name,
                        [r.signed() for _ in range(r.take(5))],
                        attr_type=onnx.AttributeProto.INTS,
                    )
                )
            else:
                node.attribute.append(onnx.helper.make_attribute(name, r.signed()))
        elif what == 5:  # the input's declared shape
            dims = g.input[0].type.tensor_type.shape.dim if g.input else []
            if dims:
                dims[r.take(len(dims))].dim_value = r.signed()
        elif what == 6 and g.node:  # drop or duplicate a node
            k = r.take(len(g.node))
            if r.take(2):
                del g.node[k]
            else:
                g.node.insert(r.take(len(g.node) + 1), g.node[k])
        elif what == 7 and m.opset_import:  # the opset
            m.opset_import[0].version = (7, 9, 11, 13, 17, 18, 21, 22, 99, 0)[r.take(10)]
        elif what == 8 and g.node:  # a new node on a random tensor
            names = [i.name for i in g.input] + [o for n in g.node for o in n.output]
            node = onnx.helper.make_node(
                OPS[r.take(len(OPS))], [names[r.take(len(names))]], [f"t{r.take(256)}"]
            )
            g.node.insert(r.take(len(g.node) + 1), node)
    return m.SerializeToString()


def _plain(data: bytes) -> bytes:
    """A seed model's bytes, gunzipped if needed."""
    import gzip

    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def one_onnx_struct(data: bytes) -> None:
    """The ONNX import on a structurally mutated seed model."""
    from completeverify.onnx_import import load_onnx

    model = mutate_model(data)
    check(lambda: load_onnx(model, limits=LIMITS), "load_onnx (structured)")


HARNESSES = {"vnnlib": one_vnnlib, "onnx": one_onnx, "onnx_struct": one_onnx_struct, "cli": one_cli}


def seeds(name: str) -> list[bytes]:
    """The committed seed inputs of one harness."""
    folder = CORPUS / name
    return [p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()]

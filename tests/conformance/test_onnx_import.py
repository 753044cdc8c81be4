"""Conformance of the ONNX importer against onnx's reference evaluator and onnxruntime.

Every model is imported twice (with and without graph simplification) and run on
seeded random inputs; both graphs must match both references within 1e-4.
Models are built with onnx.helper (one op family at a time, at several opsets)
or exported from small torch modules with the TorchScript exporter.
"""

from __future__ import annotations

import gzip
import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort  # a core dependency: never skipped when missing
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from paths import SHARED_BENCHMARKS

import completeverify as cv
from completeverify.config import VerifyConfig
from completeverify.errors import ModelError, UnsupportedOperatorError
from completeverify.graph import Conv, Gather, Graph, Input, Linear, Node, Reshape, Scale
from completeverify.graph_opt import simplify
from completeverify.onnx_import import load_onnx
from completeverify.onnx_reference import reference_evaluator
from completeverify.verdict import Replayer

TOL = 1e-4
BOTH = ("reference", "onnxruntime")
ORT_ONLY = ("onnxruntime",)
OPSETS = (7, 9, 11, 13, 17, 21)
BENCHMARKS = SHARED_BENCHMARKS
FLOAT = TensorProto.FLOAT


# --------------------------------------------------------------------------- helpers


def const(rng: np.random.Generator, *shape: int, positive: bool = False) -> np.ndarray:
    """A seeded float32 array (strictly positive when asked)."""
    a = rng.uniform(0.5, 1.5, shape) if positive else rng.standard_normal(shape)
    return a.astype(np.float32)


def bn_stats(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """BatchNormalization's scale s, bias b, mean m and variance v for 3 channels."""
    return {
        "s": const(rng, 3),
        "b": const(rng, 3),
        "m": const(rng, 3),
        "v": const(rng, 3, positive=True),
    }


def make_model(nodes, in_shape, out_name="y", inits=(), opset=13, in_name="x", elem=FLOAT):
    """A one-input one-output model with the given nodes and initializers (name -> array)."""
    graph = helper.make_graph(
        nodes,
        "t",
        [helper.make_tensor_value_info(in_name, elem, list(in_shape))],
        [helper.make_tensor_value_info(out_name, elem, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(inits).items()],
    )
    model = helper.make_model_gen_version(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model


def real_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    """The graph input that is not an initializer (old exporters list initializers too)."""
    inits = {i.name for i in model.graph.initializer}
    return next(vi for vi in model.graph.input if vi.name not in inits)


def feed_shape(model: onnx.ModelProto) -> tuple[int, ...]:
    """The input shape with dynamic dimensions read as 1."""
    dims = real_input(model).type.tensor_type.shape.dim
    return tuple(d.dim_value if d.dim_value > 0 else 1 for d in dims)


def references(
    model: onnx.ModelProto, x: np.ndarray, refs: tuple[str, ...] = ("reference", "onnxruntime")
) -> dict[str, np.ndarray]:
    """Outputs of onnx's reference evaluator and/or onnxruntime on one sample x."""
    name = real_input(model).name
    out = {}
    if "reference" in refs:
        out["reference"] = np.asarray(reference_evaluator(model).run(None, {name: x})[0])
    if "onnxruntime" in refs:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(
            model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
        )
        out["onnxruntime"] = np.asarray(sess.run(None, {name: x})[0])
    return out


def check(
    model: onnx.ModelProto,
    n: int = 3,
    seed: int = 0,
    low: float = -1.0,
    high: float = 1.0,
    refs: tuple[str, ...] = ("reference", "onnxruntime"),
    oracle: onnx.ModelProto | None = None,
) -> Graph:
    """Import with and without simplification and compare to the references on n points.

    ``refs`` drops a reference where it is known to be wrong; ``oracle`` runs the
    references on another model (e.g. the same model before an edit they reject).
    """
    rng = np.random.default_rng(seed)
    shape = feed_shape(model)
    dtype = (
        np.float64
        if real_input(model).type.tensor_type.elem_type == TensorProto.DOUBLE
        else np.float32
    )
    graphs = [load_onnx(model), load_onnx(model, simplify_graph=False)]
    for g in graphs:
        assert g.input_shape == shape
    for _ in range(n):
        x = rng.uniform(low, high, shape).astype(dtype)
        expected = references(oracle or model, x, refs)
        assert expected
        for g in graphs:
            got = g.forward(torch.tensor(x[None], dtype=torch.float64))[0].numpy()
            for name, ref in expected.items():
                assert got.size == ref.size, (name, got.shape, ref.shape)
                err = np.abs(got.reshape(-1) - ref.reshape(-1).astype(np.float64)).max()
                assert err < TOL, f"{name}: max error {err}"
    return graphs[0]


def export(module: torch.nn.Module, shape, opset: int, **kwargs) -> onnx.ModelProto:
    """Export a torch module with the TorchScript exporter and check it against torch too."""
    torch.manual_seed(0)
    module = module.eval()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
        for name, buf in module.named_buffers():
            if "running_var" in name:
                buf.copy_(torch.rand_like(buf) + 0.5)
            elif "running_mean" in name:
                buf.copy_(torch.randn_like(buf))
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (torch.rand(*shape),), f, opset_version=opset, dynamo=False, **kwargs
        )
    model = onnx.load_from_string(f.getvalue())
    x = torch.rand(*shape)
    g = load_onnx(model)
    with torch.no_grad():
        want = module(x).double()
    got = g.forward(x.double()[None] if g.input_shape == tuple(shape[1:]) else x.double())
    assert torch.allclose(got.reshape(-1), want.reshape(-1), atol=TOL)
    return model


# --------------------------------------------------------------------------- torch exports


class MLPNorm(torch.nn.Module):
    """Per-feature (x - mean) / std then a ReLU MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.1, -0.2, 0.3, 0.0, 0.5]))
        self.register_buffer("std", torch.tensor([0.5, 2.0, 1.5, 1.0, 0.25]))
        self.net = torch.nn.Sequential(
            torch.nn.Linear(5, 8),
            torch.nn.ReLU(),
            torch.nn.Linear(8, 8),
            torch.nn.ReLU(),
            torch.nn.Linear(8, 3),
        )

    def forward(self, x):
        return self.net((x - self.mean) / self.std)


class CNN(torch.nn.Module):
    """Channel normalisation, strided/padded/grouped/dilated convs, BN, pools, Flatten."""

    def __init__(self, include_pad: bool, ceil: bool) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.4, 0.5]).reshape(1, 2, 1, 1))
        self.register_buffer("std", torch.tensor([0.2, 0.3]).reshape(1, 2, 1, 1))
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(2, 4, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.BatchNorm2d(4),
            torch.nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2, stride=2, ceil_mode=ceil),
            torch.nn.AvgPool2d(
                2, stride=1, padding=1, count_include_pad=include_pad, ceil_mode=ceil
            ),
            torch.nn.Flatten(),
            torch.nn.LazyLinear(3),
        )

    def forward(self, x):
        return self.body((x - self.mean) / self.std)


class Residual(torch.nn.Module):
    """y = fc2(relu(fc1(x))) + x, then a head."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.head = (
            torch.nn.Linear(6, 6),
            torch.nn.Linear(6, 6),
            torch.nn.Linear(6, 2),
        )

    def forward(self, x):
        return self.head(torch.relu(self.fc2(torch.relu(self.fc1(x))) + x))


class Branches(torch.nn.Module):
    """Two conv branches concatenated on the channel axis."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Conv2d(1, 3, 1)
        self.head = torch.nn.Linear(5 * 5 * 5, 2)

    def forward(self, x):
        y = torch.cat([torch.relu(self.a(x)), self.b(x)], dim=1)
        return self.head(y.flatten(1))


class TransposeReshape(torch.nn.Module):
    """A transpose of the last two axes, a reshape, then a layer."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(12, 3)

    def forward(self, x):
        return self.fc(torch.relu(x.transpose(1, 2).reshape(1, 12)))


class Padded(torch.nn.Module):
    """Asymmetric constant padding before a convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 2)

    def forward(self, x):
        return self.conv(torch.nn.functional.pad(x, (1, 0, 2, 1), value=0.5))


class Conv1d(torch.nn.Module):
    """A 1-D CNN with stride, padding and dilation."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv1d(2, 3, 3, stride=2, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv1d(3, 2, 2, dilation=2),
            torch.nn.Flatten(),
            torch.nn.LazyLinear(2),
        )

    def forward(self, x):
        return self.body(x)


TORCH_CASES = {
    "mlp_norm": (MLPNorm, (1, 5)),
    "cnn_pad0": (lambda: CNN(False, False), (1, 2, 9, 9)),
    "cnn_pad1_ceil": (lambda: CNN(True, True), (1, 2, 9, 9)),
    "cnn_pad0_ceil": (lambda: CNN(False, True), (1, 2, 11, 11)),
    "residual": (Residual, (1, 6)),
    "branches": (Branches, (1, 1, 5, 5)),
    "transpose_reshape": (TransposeReshape, (1, 3, 4)),
    "pad": (Padded, (1, 1, 4, 4)),
    "conv1d": (Conv1d, (1, 2, 9)),
}


@pytest.mark.parametrize("opset", (9, 11, 13, 17))
@pytest.mark.parametrize("case", sorted(TORCH_CASES))
def test_torch_export(case, opset):
    make, shape = TORCH_CASES[case]
    module = make()
    module(torch.rand(*shape))  # materialise lazy layers
    # export() already compared with torch; BatchNormalization < 14 runs in the replay's
    # corrected reference evaluator (completeverify/onnx_reference.py)
    check(export(module, shape, opset), refs=BOTH)


def test_torch_export_opset7_initializers_as_inputs():
    """Old exporters list initializers as graph inputs and keep BatchNormalization."""
    module = CNN(False, False)
    module(torch.rand(1, 2, 9, 9))
    model = export(module, (1, 2, 9, 9), 7, keep_initializers_as_inputs=True)
    assert len(model.graph.input) > 1
    check(model, refs=BOTH)


def test_torch_export_dynamic_batch():
    model = export(MLPNorm(), (1, 5), 13, input_names=["x"], dynamic_axes={"x": {0: "N"}})
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert check(model).input_shape == (1, 5)


# --------------------------------------------------------------------------- one op at a time


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("trans_b", (0, 1))
def test_gemm(opset, trans_b):
    rng = np.random.default_rng(opset)
    w = const(rng, 3, 4) if trans_b else const(rng, 4, 3)
    inits = {"W": w, "C": const(rng, 3)}
    node = helper.make_node("Gemm", ["x", "W", "C"], ["y"], transB=trans_b, alpha=0.5, beta=2.0)
    check(make_model([node], (1, 4), inits=inits, opset=opset))
    if opset >= 11:  # C optional
        node = helper.make_node("Gemm", ["x", "W"], ["y"], transB=trans_b)
        check(make_model([node], (1, 4), inits={"W": w}, opset=opset))


@pytest.mark.parametrize("opset", OPSETS)
def test_matmul_shapes(opset):
    rng = np.random.default_rng(1)
    inits = {"R": const(rng, 4, 3), "L": const(rng, 2, 5), "v": const(rng, 3)}
    right = helper.make_node("MatMul", ["x", "R"], ["a"])  # (2,5,4) @ (4,3) -> (2,5,3)
    left = helper.make_node("MatMul", ["L", "a"], ["b"])  # (2,5) @ (2,5,3) -> (2,2,3)
    vec = helper.make_node("MatMul", ["b", "v"], ["y"])  # (2,2,3) @ (3,) -> (2,2)
    check(make_model([right, left, vec], (2, 5, 4), inits=inits, opset=opset))


@pytest.mark.parametrize("opset", OPSETS)
def test_matmul_constant_vector_on_the_left(opset):
    rng = np.random.default_rng(2)
    node = helper.make_node("MatMul", ["v", "x"], ["y"])  # (4,) @ (2, 4, 3) -> (2, 3)
    assert check(
        make_model([node], (2, 4, 3), inits={"v": const(rng, 4)}, opset=opset)
    ).output_shape == (2, 3)


@pytest.mark.parametrize("opset", OPSETS)
def test_gemm_trans_a(opset):
    rng = np.random.default_rng(2)
    node = helper.make_node("Gemm", ["x", "W", "C"], ["y"], transA=1)  # x (4, 2): A = x^T (2, 4)
    check(
        make_model(
            [node], (4, 2), inits={"W": const(rng, 4, 3), "C": const(rng, 1, 3)}, opset=opset
        )
    )


@pytest.mark.parametrize("opset", OPSETS)
def test_sigmoid_tanh(opset):
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Tanh", ["s"], ["y"])]
    check(make_model(nodes, (1, 6), opset=opset), low=-4, high=4)


def test_dropout_mask_is_all_true():
    nodes = [
        helper.make_node("Dropout", ["x"], ["d", "mask"]),
        helper.make_node("Cast", ["mask"], ["mf"], to=FLOAT),
        helper.make_node("Mul", ["d", "mf"], ["y"]),
    ]
    check(make_model(nodes, (1, 4), opset=13))


@pytest.mark.parametrize("opset", OPSETS)
def test_matmul_vector_input(opset):
    rng = np.random.default_rng(2)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["V", "r"], ["y"]),
    ]
    check(
        make_model(nodes, (4,), inits={"W": const(rng, 4, 6), "V": const(rng, 2, 6)}, opset=opset)
    )


@pytest.mark.parametrize(
    "opset, op, const_first",
    [  # constant / variable is not piecewise linear: no Div with the constant first
        (o, op, c)
        for o in OPSETS
        for op in ("Add", "Sub", "Mul", "Div")
        for c in (False, True)
        if not (op == "Div" and c)
    ],
)
def test_elementwise_by_constant(opset, op, const_first):
    rng = np.random.default_rng(3)
    for cshape in ((), (3, 1), (1, 3, 4), (2, 1, 3, 1)):  # scalar, broadcasting, widening the rank
        c = const(rng, *cshape, positive=op == "Div")
        ins = ["c", "x"] if const_first else ["x", "c"]
        check(
            make_model([helper.make_node(op, ins, ["y"])], (1, 3, 4), inits={"c": c}, opset=opset),
            n=2,
        )


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("op", ("Add", "Sub"))
def test_binary_of_two_variables(opset, op):
    rng = np.random.default_rng(4)
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"]),
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node(op, ["h", "r"], ["s"]),
        helper.make_node(op, ["s", "h1"], ["y"]),
        helper.make_node("MatMul", ["x", "V"], ["h1"]),
    ]
    nodes = nodes[:3] + nodes[4:] + nodes[3:4]  # keep topological order
    check(
        make_model(nodes, (2, 3), inits={"W": const(rng, 3, 3), "V": const(rng, 3, 1)}, opset=opset)
    )


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("layout", ("nchw", "chw", "flat"))
def test_input_normalisation(opset, layout):
    """VNN-COMP style (x - mean) / std per channel before the first layer."""
    rng = np.random.default_rng(5)
    mean = np.array([0.49, 0.48, 0.45], np.float32)
    std = np.array([0.25, 0.24, 0.26], np.float32)
    cshape = {"nchw": (1, 3, 1, 1), "chw": (3, 1, 1), "flat": (3, 1, 1)}[layout]
    inits = {
        "mean": mean.reshape(cshape),
        "std": std.reshape(cshape),
        "W": const(rng, 2, 3, 3, 3),
        "G": const(rng, 2 * 3 * 3, 4),
    }
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["s"]),
        helper.make_node("Div", ["s", "std"], ["n"]),
        helper.make_node("Conv", ["n", "W"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("MatMul", ["f", "G"], ["y"]),
    ]
    g = check(make_model(nodes, (1, 3, 5, 5), inits=inits, opset=opset), low=0.0, high=1.0)
    # the normalisation must not be lost: shifting one channel changes the output
    x = torch.rand(1, 1, 3, 5, 5, dtype=torch.float64)
    assert not torch.allclose(g.forward(x), g.forward(x + 0.1))


@pytest.mark.parametrize("opset", OPSETS)
def test_relu_flatten_reshape(opset):
    shape = np.array([1, -1, 0], np.int64) if opset >= 9 else None
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f0"], axis=0),
        helper.make_node("Flatten", ["f0"], ["f"], axis=-1 if opset >= 11 else 1),
    ]
    inits = {}
    if shape is not None:
        inits["shape"] = np.array([1, 2, -1], np.int64)
        nodes += [
            helper.make_node("Reshape", ["f", "shape"], ["q"]),
            helper.make_node("Reshape", ["q", "shape0"], ["y"]),
        ]
        inits["shape0"] = np.array([0, -1, 0], np.int64)
    else:
        nodes[-1].output[0] = "y"
    g = check(make_model(nodes, (1, 2, 3, 2), inits=inits, opset=opset))
    assert g.output_shape == ((1, 2, 6) if shape is not None else (1, 12))


@pytest.mark.parametrize("opset", OPSETS)
def test_squeeze_unsqueeze(opset):
    if opset < 13:
        nodes = [
            helper.make_node("Unsqueeze", ["x"], ["u"], axes=[0, 3]),
            helper.make_node("Squeeze", ["u"], ["s"], axes=[0]),
            helper.make_node("Squeeze", ["s"], ["y"]),
        ]
        inits = {}
    else:
        nodes = [
            helper.make_node("Unsqueeze", ["x", "ax"], ["u"]),
            helper.make_node("Squeeze", ["u", "ax0"], ["s"]),
            helper.make_node("Squeeze", ["s"], ["y"]),
        ]
        inits = {"ax": np.array([0, -1], np.int64), "ax0": np.array([0], np.int64)}
    g = check(make_model(nodes, (3, 1, 2), inits=inits, opset=opset))
    assert g.output_shape == (3, 2)


@pytest.mark.parametrize("opset", OPSETS)
def test_transpose(opset):
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("Transpose", ["t"], ["y"]),
    ]
    assert check(make_model(nodes, (1, 2, 3, 4), opset=opset)).output_shape == (2, 4, 3, 1)


@pytest.mark.parametrize("opset", OPSETS)
def test_concat_and_constant(opset):
    value = helper.make_tensor("v", FLOAT, (1, 2, 3), np.arange(6, dtype=np.float32) - 2.5)
    nodes = [
        helper.make_node("Constant", [], ["k"], value=value),
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Concat", ["x", "r"], ["c"], axis=1),
        helper.make_node("Concat", ["c", "k", "x"], ["d"], axis=-2 if opset >= 11 else 1),
        helper.make_node("Concat", ["d", "d"], ["y"], axis=2),
    ]
    assert check(make_model(nodes, (1, 2, 3), opset=opset)).output_shape == (1, 8, 6)


@pytest.mark.parametrize("opset", OPSETS)
def test_identity_dropout(opset):
    nodes = [helper.make_node("Identity", ["x"], ["i"])]
    if opset < 12:
        nodes.append(helper.make_node("Dropout", ["i"], ["y", "mask"], ratio=0.3))
        inits = {}
    else:
        nodes.append(helper.make_node("Dropout", ["i", "ratio", "mode"], ["y", "mask"]))
        inits = {"ratio": np.array(0.3, np.float32), "mode": np.array(False)}
    check(make_model(nodes, (1, 5), inits=inits, opset=opset))


def test_dropout_training_mode_is_refused():
    nodes = [helper.make_node("Dropout", ["x", "ratio", "mode"], ["y"], name="drop")]
    inits = {"ratio": np.array(0.3, np.float32), "mode": np.array(True)}
    with pytest.raises(ModelError, match="drop"):
        load_onnx(make_model(nodes, (1, 5), inits=inits, opset=13))


def test_identity_output_of_input():
    check(make_model([helper.make_node("Identity", ["x"], ["y"])], (1, 3)))


SLICES = [  # starts, ends, axes, steps on a (1, 4, 6) input
    ([0, 1], [1, 3], [0, 1], [1, 1]),
    ([1], [-1], [2], [2]),
    ([-1], [-100], [2], [-1]),
    ([5, 10], [-7, -100], [2, 1], [-2, -1]),
    ([2], [9_223_372_036_854_775_807], [-1], [1]),
    ([-100], [100], [1], [1]),
]


@pytest.mark.parametrize(
    "opset, case",
    [  # steps and negative axes exist from opset 10
        (o, k)
        for o in OPSETS
        for k, (_, _, axes, steps) in enumerate(SLICES)
        if o >= 10 or (all(s == 1 for s in steps) and all(a >= 0 for a in axes))
    ],
)
def test_slice(opset, case):
    starts, ends, axes, steps = SLICES[case]
    if opset < 10:
        nodes = [helper.make_node("Slice", ["x"], ["y"], starts=starts, ends=ends, axes=axes)]
        inits = {}
    else:
        nodes = [helper.make_node("Slice", ["x", "s", "e", "a", "t"], ["y"])]
        inits = {k: np.array(v, np.int64) for k, v in zip("seat", (starts, ends, axes, steps))}
    check(make_model(nodes, (1, 4, 6), inits=inits, opset=opset))


@pytest.mark.parametrize("opset", OPSETS)
def test_gather_cast_neg(opset):
    nodes = [
        helper.make_node("Gather", ["x", "idx"], ["g"], axis=1),
        helper.make_node("Cast", ["g"], ["c"], to=TensorProto.FLOAT),
        helper.make_node("Neg", ["c"], ["y"]),
    ]
    check(
        make_model(
            nodes, (1, 5, 2), inits={"idx": np.array([[4, 0], [-1, 2]], np.int64)}, opset=opset
        )
    )


PADS = [[0, 1, 2, 0, 0, 1, 0, 1], [0, 0, 1, 1, 0, 0, 1, 1], [0, 0, -1, 2, 0, 0, 1, -2]]


@pytest.mark.parametrize("mode", ("constant", "edge", "reflect"))
@pytest.mark.parametrize(
    "opset, case",
    [  # negative pads are checked from opset 11
        (o, k) for o in OPSETS for k, pads in enumerate(PADS) if o >= 11 or min(pads) >= 0
    ],
)
def test_pad(opset, mode, case):
    pads = PADS[case]
    if opset < 11:
        node = helper.make_node("Pad", ["x"], ["y"], pads=pads, mode=mode, value=0.5)
        inits = {}
    else:
        node = helper.make_node("Pad", ["x", "p", "v"], ["y"], mode=mode)
        inits = {"p": np.array(pads, np.int64), "v": np.array(0.5, np.float32)}
    # the reference evaluator rejects negative pads (cropping); onnxruntime implements them
    check(
        make_model([node], (1, 2, 4, 5), inits=inits, opset=opset),
        refs=ORT_ONLY if min(pads) < 0 else BOTH,
    )


@pytest.mark.parametrize("opset", (18, 21))
def test_pad_axes(opset):
    node = helper.make_node("Pad", ["x", "p", "", "a"], ["y"])
    inits = {"p": np.array([1, 0, 2, 1], np.int64), "a": np.array([-1, 1], np.int64)}
    check(make_model([node], (1, 2, 3, 4), inits=inits, opset=opset))


CLIP_BOUNDS = (
    (-0.5, 0.5),
    (None, 0.3),
    (-0.2, None),
    (None, None),
    (0.4, -0.1),
    (-3.4028234663852886e38, 0.3),
    (-0.2, np.inf),
)


@pytest.mark.parametrize(
    "opset, bounds",
    [  # min > max is rejected by onnxruntime before opset 11
        (o, b)
        for o in OPSETS
        for b in CLIP_BOUNDS
        if o >= 11 or b[0] is None or b[1] is None or b[0] <= b[1]
    ],
)
def test_clip(opset, bounds):
    lo, hi = bounds
    if opset < 11:
        attrs = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
        node = helper.make_node("Clip", ["x"], ["y"], **attrs)
        inits = {}
    else:
        names = ["x", "lo" if lo is not None else "", "hi" if hi is not None else ""]
        node = helper.make_node("Clip", names, ["y"])
        inits = {k: np.array(v, np.float32) for k, v in (("lo", lo), ("hi", hi)) if v is not None}
    check(make_model([node], (1, 7), inits=inits, opset=opset))


@pytest.mark.parametrize("opset", OPSETS)
def test_batchnorm(opset):
    rng = np.random.default_rng(6)
    inits = bn_stats(rng)
    nodes = [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3)]
    # before opset 14 onnx's own reference evaluator runs BatchNormalization in training mode
    # (or fails); the replay's evaluator replaces it (completeverify/onnx_reference.py)
    check(make_model(nodes, (1, 3, 2, 2), inits=inits, opset=opset), refs=BOTH)
    check(make_model(nodes, (1, 3), inits=inits, opset=opset), refs=BOTH)


@pytest.mark.parametrize("opset", (7, 9))
def test_batchnorm_with_statistics_outputs_is_refused(opset):
    """Before opset 14, listing the running statistics as outputs means training mode:
    onnxruntime then normalises with the batch statistics, not the stored ones."""
    rng = np.random.default_rng(6)
    inits = bn_stats(rng)
    bn = helper.make_node(
        "BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv", "sm", "sv"], name="bn"
    )
    with pytest.raises(ModelError, match="bn.*training"):
        load_onnx(make_model([bn], (1, 3, 2, 2), inits=inits, opset=opset))


def test_batchnorm_training_mode_is_refused():
    rng = np.random.default_rng(6)
    inits = bn_stats(rng)
    nodes = [
        helper.make_node(
            "BatchNormalization",
            ["x", "s", "b", "m", "v"],
            ["y", "rm", "rv"],
            training_mode=1,
            name="bn",
        )
    ]
    with pytest.raises(ModelError, match="bn"):
        load_onnx(make_model(nodes, (1, 3, 2, 2), inits=inits, opset=15))


CONVS = [  # attributes for a (1, 4, 7, 8) input and weight (out, 4/group, kh, kw)
    dict(kernel=(3, 3)),
    dict(kernel=(3, 2), strides=[2, 3], pads=[1, 0, 2, 1]),
    dict(kernel=(3, 3), dilations=[2, 1], group=2),
    dict(kernel=(2, 3), strides=[2, 2], auto_pad="SAME_UPPER"),
    dict(kernel=(2, 2), strides=[2, 1], auto_pad="SAME_LOWER", group=4),
    dict(kernel=(3, 3), auto_pad="VALID"),
]


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("case", range(len(CONVS)))
def test_conv(opset, case):
    rng = np.random.default_rng(case)
    attrs = dict(CONVS[case])
    kh, kw = attrs.pop("kernel")
    group = attrs.get("group", 1)
    inits = {"W": const(rng, 4, 4 // group, kh, kw), "B": const(rng, 4)}
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["y"], **attrs)]
    check(make_model(nodes, (1, 4, 7, 8), inits=inits, opset=opset))


@pytest.mark.parametrize("opset", OPSETS)
def test_conv1d(opset):
    rng = np.random.default_rng(7)
    nodes = [helper.make_node("Conv", ["x", "W"], ["y"], strides=[2], pads=[1, 2], dilations=[2])]
    check(make_model(nodes, (1, 3, 11), inits={"W": const(rng, 2, 3, 3)}, opset=opset))


POOLS = [  # attributes for a (1, 2, 7, 6) input
    dict(kernel_shape=[2, 2]),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 0, 1]),
    dict(kernel_shape=[2, 2], strides=[2, 2], auto_pad="SAME_UPPER"),
    dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
    dict(kernel_shape=[2, 3], strides=[3, 3], pads=[0, 1, 1, 0], ceil_mode=1),
    dict(
        kernel_shape=[3, 3], strides=[3, 3], pads=[0, 0, 2, 2], ceil_mode=1
    ),  # last window dropped
]


def _pool_case_ok(attrs: dict, opset: int) -> bool:
    """Whether MaxPool / AveragePool accept these attributes at this opset."""
    return not (attrs.get("ceil_mode") and opset < 10) and not ("dilations" in attrs and opset < 19)


def _pool_cases() -> list[tuple[int, int]]:
    """(opset, case) for every POOLS case the op accepts at that opset."""
    return [(o, k) for o in OPSETS for k, attrs in enumerate(POOLS) if _pool_case_ok(attrs, o)]


@pytest.mark.parametrize("opset, case", _pool_cases())
def test_maxpool(opset, case):
    attrs = POOLS[case]
    check(
        make_model([helper.make_node("MaxPool", ["x"], ["y"], **attrs)], (1, 2, 7, 6), opset=opset)
    )


@pytest.mark.parametrize("opset", (11, 13))
def test_maxpool_dilated(opset):
    node = helper.make_node(
        "MaxPool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 1], pads=[1, 0, 1, 0]
    )
    check(make_model([node], (1, 2, 7, 6), opset=opset))


@pytest.mark.parametrize("opset, case", _pool_cases())
@pytest.mark.parametrize("include_pad", (0, 1))
def test_averagepool(opset, case, include_pad):
    attrs = POOLS[case]
    # onnx's reference evaluator mis-divides windows that overhang in ceil mode with padding
    # (it disagrees with onnxruntime and torch); the torch-exported CNNs cover this case too
    refs = ORT_ONLY if attrs.get("ceil_mode") and any(attrs.get("pads", [])) else BOTH
    node = helper.make_node("AveragePool", ["x"], ["y"], count_include_pad=include_pad, **attrs)
    check(make_model([node], (1, 2, 7, 6), opset=opset), refs=refs)


@pytest.mark.parametrize("opset", OPSETS)
def test_global_average_pool_and_1d_pools(opset):
    nodes = [
        helper.make_node("MaxPool", ["x"], ["m"], kernel_shape=[2], strides=[2]),
        helper.make_node("AveragePool", ["m"], ["a"], kernel_shape=[2], pads=[1, 0]),
        helper.make_node("GlobalAveragePool", ["a"], ["y"]),
    ]
    check(make_model(nodes, (1, 3, 9), opset=opset))


def test_float64_model():
    rng = np.random.default_rng(8)
    nodes = [helper.make_node("Gemm", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["y"])]
    model = make_model(
        nodes, (1, 3), inits={"W": rng.standard_normal((3, 2))}, elem=TensorProto.DOUBLE
    )
    assert check(model).input_dtype == "float64"


# --------------------------------------------------------------------------- errors


def test_unsupported_ops_listed_together():
    nodes = [
        helper.make_node("Exp", ["x"], ["e"], name="exp_node"),
        helper.make_node("Softmax", ["e"], ["s"], name="softmax_node"),
        helper.make_node("Relu", ["s"], ["y"], name="fine"),
    ]
    model = make_model(nodes, (1, 4))
    lstm = helper.make_node("LSTM", ["x3", "Wl", "Rl"], ["l"], hidden_size=2, name="lstm_node")
    model.graph.node.insert(0, lstm)
    with pytest.raises(UnsupportedOperatorError) as info:
        load_onnx(model)
    msg = str(info.value)
    for op, name in (("Exp", "exp_node"), ("Softmax", "softmax_node"), ("LSTM", "lstm_node")):
        assert op in msg and name in msg
        assert (op, name) in info.value.ops
    assert "fine" not in msg


def test_constant_only_op_on_variable_is_reported_upfront():
    """Ops we only fold (Sqrt, Max, ...) are unsupported on variables, all listed at once."""
    nodes = [
        helper.make_node("Sqrt", ["x"], ["s"], name="sqrt_var"),
        helper.make_node("Sqrt", ["c"], ["cs"], name="sqrt_const"),
        helper.make_node("Add", ["s", "cs"], ["a"]),
        helper.make_node("Softmax", ["a"], ["y"], name="sm"),
    ]
    with pytest.raises(UnsupportedOperatorError) as info:
        load_onnx(make_model(nodes, (1, 3), inits={"c": np.ones(3, np.float32)}))
    assert set(info.value.ops) == {("Sqrt", "sqrt_var"), ("Softmax", "sm")}


def test_unnamed_nodes_get_stable_names_and_model_is_not_mutated():
    model = make_model(
        [helper.make_node("Exp", ["x"], ["e"]), helper.make_node("Exp", ["e"], ["y"])], (1, 2)
    )
    before = model.SerializeToString()
    with pytest.raises(UnsupportedOperatorError, match="Exp_0.*Exp_1"):
        load_onnx(model)
    assert model.SerializeToString() == before


def test_constant_folding_of_weights():
    """Weights computed from initializers (Transpose, Mul, Shape-driven Reshape) are folded."""
    rng = np.random.default_rng(9)
    nodes = [
        helper.make_node("Transpose", ["W"], ["Wt"]),
        helper.make_node("Mul", ["Wt", "two"], ["W2"]),
        helper.make_node("Shape", ["x"], ["shp"]),
        helper.make_node("Reshape", ["x", "shp"], ["xr"]),
        helper.make_node("MatMul", ["xr", "W2"], ["y"]),
    ]
    inits = {"W": const(rng, 2, 3), "two": np.array(2.0, np.float32)}
    g = check(make_model(nodes, (1, 3), inits=inits))
    assert sum(isinstance(n.op, Linear) for n in g.nodes) == 1


@pytest.mark.parametrize("op", ("Mul", "MatMul", "Div"))
def test_product_of_variables_names_node(op):
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node(
            op, ["x", "r"] if op != "MatMul" else ["x", "rt"], ["y"], name="bad_product"
        ),
    ]
    if op == "MatMul":
        nodes.insert(1, helper.make_node("Transpose", ["r"], ["rt"]))
    with pytest.raises(ModelError, match=rf"bad_product.*{op}|{op}.*bad_product"):
        load_onnx(make_model(nodes, (2, 2)))


def test_division_of_constant_by_variable_names_node():
    nodes = [helper.make_node("Div", ["c", "x"], ["y"], name="recip")]
    with pytest.raises(ModelError, match="recip"):
        load_onnx(make_model(nodes, (1, 2), inits={"c": np.ones(2, np.float32)}))


def _small_model() -> onnx.ModelProto:
    rng = np.random.default_rng(10)
    return make_model(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], (1, 3), inits={"W": const(rng, 3, 2)}
    )


def test_file_errors(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.random.default_rng(11).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    for path in (junk, empty, tmp_path / "missing.onnx", tmp_path):
        with pytest.raises(ModelError, match=str(path.name)):
            load_onnx(path)
    with pytest.raises(ModelError):
        load_onnx(b"\x1f\x8b not really gzip")


def test_gzipped_model(tmp_path):
    model = _small_model()
    path = tmp_path / "net.onnx.gz"
    path.write_bytes(gzip.compress(model.SerializeToString()))
    x = torch.rand(1, 1, 3, dtype=torch.float64)
    assert torch.allclose(load_onnx(path).forward(x), load_onnx(model).forward(x))
    plain = tmp_path / "net.onnx"
    plain.write_bytes(model.SerializeToString())
    assert load_onnx(str(plain)).source == str(plain)


def test_two_inputs_refused():
    model = _small_model()
    model.graph.input.append(helper.make_tensor_value_info("x2", FLOAT, [1, 3]))
    with pytest.raises(ModelError, match="one network input"):
        load_onnx(model)


def test_two_outputs_refused():
    model = _small_model()
    model.graph.output.append(helper.make_tensor_value_info("x", FLOAT, [1, 3]))
    with pytest.raises(ModelError, match="one network output"):
        load_onnx(model)


@pytest.mark.parametrize("opset", (6, 22))
def test_opset_out_of_range(opset):
    model = _small_model()
    model.opset_import[0].version = opset
    with pytest.raises(ModelError, match=f"opset {opset}"):
        load_onnx(model)


def test_foreign_domain_is_unsupported():
    model = _small_model()
    model.graph.node.append(
        helper.make_node("Scaler", ["y"], ["z"], domain="ai.onnx.ml", name="ml")
    )
    with pytest.raises(UnsupportedOperatorError, match="ml"):
        load_onnx(model)


def test_initializer_listed_as_input():
    model = _small_model()
    model.graph.input.append(helper.make_tensor_value_info("W", FLOAT, [3, 2]))
    check(model)


@pytest.mark.parametrize("batch", ("N", 0, -1))
def test_dynamic_batch_read_as_one(batch):
    model = _small_model()
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    if batch == "N":
        dim.dim_param = "N"
    elif batch == 0:
        dim.dim_value = 0
    else:
        dim.Clear()
    assert check(model, oracle=_small_model()).input_shape == (1, 3)


def test_symbolic_inner_dimension_refused():
    model = _small_model()
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "K"
    with pytest.raises(ModelError, match="dimension"):
        load_onnx(model)


def test_integer_input_refused():
    model = make_model([helper.make_node("Identity", ["x"], ["y"])], (1, 2), elem=TensorProto.INT64)
    with pytest.raises(ModelError, match="float"):
        load_onnx(model)


def test_declared_output_shape_mismatch_refused():
    model = _small_model()
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", FLOAT, [1, 5]))
    with pytest.raises(ModelError, match="shape"):
        load_onnx(model)


def test_output_independent_of_input_refused():
    model = make_model(
        [
            helper.make_node(
                "Constant", [], ["y"], value=numpy_helper.from_array(np.ones(2, np.float32))
            )
        ],
        (1, 2),
    )
    with pytest.raises(ModelError, match="does not depend"):
        load_onnx(model)


# --------------------------------------------------------------------------- graph_opt


def _chain_graph(rng, sizes: list[int]) -> Graph:
    """Input -> Scale -> Linear ... -> Gather (a permutation) -> Linear, all affine."""
    nodes = [Node("x", Input(), (), (sizes[0],))]
    nodes.append(
        Node(
            "norm",
            Scale(rng.uniform(0.5, 2, sizes[0]), rng.standard_normal(sizes[0])),
            (0,),
            (sizes[0],),
        )
    )
    for a, b in zip(sizes, sizes[1:]):
        nodes.append(
            Node(
                f"fc{len(nodes)}",
                Linear(rng.standard_normal((b, a)), rng.standard_normal(b)),
                (len(nodes) - 1,),
                (b,),
            )
        )
    nodes.append(Node("perm", Gather(rng.permutation(sizes[-1])), (len(nodes) - 1,), (sizes[-1],)))
    nodes.append(Node("r", Reshape(), (len(nodes) - 1,), (1, sizes[-1])))
    nodes.append(
        Node(
            "out",
            Scale(np.full((1, sizes[-1]), 3.0), np.zeros((1, sizes[-1]))),
            (len(nodes) - 1,),
            (1, sizes[-1]),
        )
    )
    return Graph(tuple(nodes))


def test_fusion_is_exact():
    rng = np.random.default_rng(12)
    g = _chain_graph(rng, [6, 4, 5, 3])
    s = simplify(g)
    assert len(s.nodes) == 2 and isinstance(s.nodes[1].op, Linear)
    x = torch.randn(16, 6, dtype=torch.float64)
    assert torch.allclose(g.forward(x), s.forward(x), atol=1e-10)


def test_fusion_keeps_bottlenecks():
    rng = np.random.default_rng(13)
    g = _chain_graph(rng, [30, 2, 30])
    s = simplify(g)
    layers = [n.op for n in s.nodes if isinstance(n.op, Linear)]
    assert [w.weight.shape for w in layers] == [(2, 30), (30, 2)]
    x = torch.randn(8, 30, dtype=torch.float64)
    assert torch.allclose(g.forward(x), s.forward(x), atol=1e-10)


def test_fused_layers_never_grow():
    """No fused Linear is larger than the largest Linear/Gather it replaced (slices stay
    Gathers)."""
    rng = np.random.default_rng(14)
    nodes = [
        helper.make_node("Slice", ["x", "s", "e", "a"], ["sl"]),
        helper.make_node("MatMul", ["sl", "W"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "V"], ["o"]),
        helper.make_node("Pad", ["o", "p"], ["y"]),
    ]
    inits = {
        "s": np.array([0], np.int64),
        "e": np.array([3], np.int64),
        "a": np.array([1], np.int64),
        "W": const(rng, 3, 4),
        "V": const(rng, 4, 2),
        "p": np.array([0, 3, 0, 5], np.int64),
    }
    model = make_model(nodes, (1, 400), inits=inits)
    g = check(model)
    raw = load_onnx(model, simplify_graph=False)
    biggest = max(n.op.weight.size for n in raw.nodes if isinstance(n.op, Linear))
    assert all(n.op.weight.size <= biggest for n in g.nodes if isinstance(n.op, Linear))


def test_batchnorm_after_conv_is_fused_exactly():
    rng = np.random.default_rng(15)
    inits = {
        "W": const(rng, 3, 2, 3, 3),
        "s": const(rng, 3),
        "b": const(rng, 3),
        "m": const(rng, 3),
        "v": const(rng, 3, positive=True),
    }
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["y"]),
    ]
    g = check(make_model(nodes, (1, 2, 5, 5), inits=inits, opset=15))
    assert [type(n.op) for n in g.nodes[1:]] == [Conv]


def test_normalisation_before_padded_conv_is_not_fused():
    """Folding x*a+b into a zero-padded conv would change the border: it must stay a Scale."""
    rng = np.random.default_rng(16)
    inits = {"W": const(rng, 3, 2, 3, 3), "m": np.array([0.5, 0.2], np.float32).reshape(1, 2, 1, 1)}
    nodes = [
        helper.make_node("Sub", ["x", "m"], ["s"]),
        helper.make_node("Conv", ["s", "W"], ["y"], pads=[1, 1, 1, 1]),
    ]
    g = check(make_model(nodes, (1, 2, 4, 4), inits=inits))
    assert any(isinstance(n.op, Scale) for n in g.nodes)


# --------------------------------------------------------------------------- real benchmarks


def _benchmark_networks() -> list[Path]:
    return sorted(BENCHMARKS.glob("*/onnx/*.onnx")) + sorted(BENCHMARKS.glob("*/onnx/*.onnx.gz"))


@pytest.mark.skipif(not BENCHMARKS.is_dir(), reason="shared benchmarks folder absent")
def test_benchmark_networks_match_onnxruntime():
    paths = _benchmark_networks()
    assert paths
    rng = np.random.default_rng(17)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    for path in paths:
        model = (
            onnx.load(str(path))
            if path.suffix == ".onnx"
            else onnx.load_from_string(gzip.decompress(path.read_bytes()))
        )
        sess = ort.InferenceSession(
            model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
        )
        shape = feed_shape(model)
        x = rng.uniform(0.0, 1.0, (4,) + shape).astype(np.float32)
        ref = np.stack([sess.run(None, {real_input(model).name: xi})[0].reshape(-1) for xi in x])
        for g in (load_onnx(path), load_onnx(path, simplify_graph=False)):
            got = g.forward(torch.tensor(x, dtype=torch.float64)).reshape(4, -1).numpy()
            err = np.abs(got - ref).max()
            assert err < TOL * max(1.0, np.abs(ref).max()), f"{path.name}: max error {err}"


@pytest.mark.parametrize("opset", (7, 9, 13, 15))
@pytest.mark.parametrize("in_shape", ((1, 3), (1, 3, 2, 2)))
def test_reference_replay_runs_batchnorm_in_inference_mode(opset, in_shape):
    """onnx's reference evaluator runs BatchNormalization before opset 14 with the batch's own
    statistics (or fails at opsets 7-8); the replay must compute what onnxruntime computes, and
    a verification that replays in the reference must not refuse the model."""
    rng = np.random.default_rng(17)
    inits = bn_stats(rng)
    bn = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3)
    model = make_model([bn], in_shape, inits=inits, opset=opset)
    ref, ort_ = Replayer(model, "reference"), Replayer(model, "onnxruntime")
    assert (ref.backend, ort_.backend) == ("reference", "onnxruntime")
    for _ in range(3):
        x = rng.uniform(-2, 2, in_shape).astype(np.float32)
        np.testing.assert_allclose(ref.run(x), ort_.run(x), rtol=1e-6, atol=1e-6)
    n = int(np.prod(in_shape))
    lines = [f"(declare-const X_{i} Real)" for i in range(n)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n)]
    lines += [f"(assert (>= X_{i} -1.0))\n(assert (<= X_{i} 1.0))" for i in range(n)]
    lines.append("(assert (<= Y_0 -1000.0))")
    config = VerifyConfig(timeout=20, replay="reference")
    assert cv.verify(load_onnx(model), "\n".join(lines), config=config).status == "unsat"

"""BoundedNetwork: sound bounds against onnxruntime samples, linear bounds that reproduce lb,
intermediate bounds under the ONNX node names, named splits, batches and reuse."""

from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper

import completeverify as cv

from nets import mlp_onnx, random_mlp

TOL = 1e-5  # float32 network outputs vs float64 bounds


def _run_with_intermediates(model: onnx.ModelProto, names: list[str], x: np.ndarray) -> dict:
    """onnxruntime outputs of the named nodes' first output tensors (and 'y'), for samples x."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    by_name = {n.name: n.output[0] for n in model.graph.node}
    existing = {o.name for o in model.graph.output}
    for name in names:
        if by_name[name] not in existing:
            model.graph.output.append(helper.make_empty_tensor_value_info(by_name[name]))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = sess.get_outputs()
    inp = sess.get_inputs()[0].name
    rows = [sess.run(None, {inp: xi.astype(np.float32)}) for xi in x]
    got = {o.name: np.stack([r[k] for r in rows])[:, 0] for k, o in enumerate(outs)}
    return {"y": got[model.graph.output[0].name], **{n: got[by_name[n]] for n in names}}


def _mlp(seed: int = 0, sizes=(4, 8, 8, 3)) -> onnx.ModelProto:
    return mlp_onnx(random_mlp(np.random.default_rng(seed), list(sizes)), input_shape=(1, sizes[0]))


def _samples(rng, lo, hi, n=300):
    """Uniform samples and the box's corners-ish extremes, shape (n, *lo.shape)."""
    u = rng.uniform(size=(n, *lo.shape))
    u[: n // 4] = np.round(u[: n // 4])  # vertices
    return lo + u * (hi - lo)


@pytest.mark.parametrize("method", ["ibp", "crown", "alpha-crown"])
def test_bounds_contain_samples_and_names_are_onnx_nodes(method):
    model = _mlp(1)
    net = cv.BoundedNetwork(model)
    rng = np.random.default_rng(2)
    lo = rng.uniform(-1, 0, size=(1, 4))
    hi = lo + rng.uniform(0.1, 1.0, size=(1, 4))
    C = rng.normal(size=(5, 3))
    res = net.compute_bounds(lo, hi, method=method, C=C)
    assert res.lb.shape == res.ub.shape == (5,) and res.method == method
    relu_inputs = {n.input[0] for n in model.graph.node if n.op_type == "Relu"}
    expected = {n.name for n in model.graph.node if n.output[0] in relu_inputs}
    assert set(res.intermediate) == expected == {"gemm0", "gemm1"}
    x = _samples(rng, lo, hi)
    vals = _run_with_intermediates(model, sorted(expected), x)
    cy = vals["y"] @ C.T
    assert (cy >= res.lb - TOL).all() and (cy <= res.ub + TOL).all()
    for name, (plo, phi) in res.intermediate.items():
        assert plo.shape == phi.shape == (1, 8)
        assert (vals[name] >= plo - TOL).all() and (vals[name] <= phi + TOL).all()


def test_linear_bounds_reproduce_lb_and_hold_pointwise():
    model = _mlp(3)
    net = cv.BoundedNetwork(model)
    rng = np.random.default_rng(4)
    lo, hi = -0.4 * np.ones((1, 4)), 0.4 * np.ones((1, 4))
    crown = net.compute_bounds(lo, hi, method="crown", return_A=True)
    ibp = net.compute_bounds(lo, hi, method="ibp", return_A=True)
    assert ibp.A is None
    lA, lbias = crown.A
    assert lA.shape == crown.uA.shape == (3, 1, 4) and lbias.shape == crown.ubias.shape == (3,)
    flat, flo, fhi = lA.reshape(3, -1), lo.reshape(-1), hi.reshape(-1)
    conc_lo = np.minimum(flat * flo, flat * fhi).sum(1) + lbias
    ua = crown.uA.reshape(3, -1)
    conc_hi = np.maximum(ua * flo, ua * fhi).sum(1) + crown.ubias
    # lb is the better of the linear bound and the output's interval bound (on the tightened
    # intermediate bounds): the linear bound concretises to lb where it won, never above it
    assert np.isclose(conc_lo, crown.lb, rtol=0, atol=1e-8).any()
    assert np.isclose(conc_hi, crown.ub, rtol=0, atol=1e-8).any()
    assert (conc_lo <= crown.lb + 1e-8).all() and (conc_hi >= crown.ub - 1e-8).all()
    x = _samples(rng, lo, hi)
    y = _run_with_intermediates(model, [], x)["y"]
    lin = x.reshape(len(x), -1)
    assert (y >= lin @ flat.T + lbias - TOL).all() and (y <= lin @ ua.T + crown.ubias + TOL).all()
    alpha = net.compute_bounds(lo, hi, method="alpha-crown", return_A=True)
    assert (alpha.lb >= crown.lb - 1e-9).all()


def test_batches_flat_boxes_and_reuse():
    net = cv.BoundedNetwork(_mlp(5))
    lo = np.array([[-1.0, -1, -1, -1], [0, 0, 0, 0], [0.5, -0.2, 0.1, 0.3]])
    hi = lo + 0.3
    batch = net.compute_bounds(lo.reshape(3, 1, 4), hi.reshape(3, 1, 4), return_A=True)
    assert batch.lb.shape == (3, 3) and batch.lA.shape == (3, 3, 1, 4)
    assert batch.intermediate["gemm0"][0].shape == (3, 1, 8)
    for b in range(3):
        one = net.compute_bounds(lo[b], hi[b], return_A=True)  # flat (n_in,) box
        np.testing.assert_allclose(one.lb, batch.lb[b], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(one.lA, batch.lA[b], rtol=1e-9, atol=1e-12)
    assert net.engine() is net.engine(cv.bounds.BoundConfig())  # one engine per config, reused
    one_call = cv.compute_bounds(net.graph, lo, hi, config=cv.bounds.BoundConfig(alpha_iters=3))
    np.testing.assert_allclose(one_call[0], batch.lb, rtol=1e-9, atol=1e-12)


def test_named_splits_hold_on_their_part_of_the_box():
    model = _mlp(7)
    net = cv.BoundedNetwork(model)
    rng = np.random.default_rng(8)
    lo, hi = -np.ones((1, 4)), np.ones((1, 4))
    base = net.compute_bounds(lo, hi, method="crown")
    pre_lo, pre_hi = base.intermediate["gemm0"]
    k = int(np.argmax((pre_lo < 0) & (pre_hi > 0)))
    assert pre_lo[0, k] < 0 < pre_hi[0, k]
    x = _samples(rng, lo, hi, 2000)
    vals = _run_with_intermediates(model, ["gemm0"], x)
    for sign in (1, -1):
        signs = np.zeros(8, dtype=int)
        signs[k] = sign
        res = net.compute_bounds(lo, hi, method="alpha-crown", splits={"relu0": signs})
        keep = vals["gemm0"][:, k] * sign >= 0
        y = vals["y"][keep]
        assert keep.any() and (y >= res.lb - TOL).all() and (y <= res.ub + TOL).all()
    with pytest.raises(cv.InputError, match="'gemm0' is not a ReLU node"):
        net.compute_bounds(lo, hi, splits={"gemm0": np.zeros(8)})
    with pytest.raises(cv.InputError, match="8 entries"):
        net.compute_bounds(lo, hi, splits={"relu0": [1, 2]})


def test_bad_arguments_are_input_errors():
    net = cv.BoundedNetwork(_mlp(9))
    with pytest.raises(cv.InputError, match="unknown bound method"):
        net.compute_bounds(np.zeros(4), np.ones(4), method="deeppoly")
    with pytest.raises(cv.InputError, match="fits neither"):
        net.compute_bounds(np.zeros(5), np.ones(5))
    with pytest.raises(cv.InputError, match="C must be"):
        net.compute_bounds(np.zeros(4), np.ones(4), C=np.ones((2, 4)))


class _ResNet(torch.nn.Module):
    """A small CNN with BatchNorm and one residual block."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 3, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(3)
        self.conv2 = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.fc = torch.nn.Linear(3 * 5 * 5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        h = torch.relu(h + self.conv2(h))
        return self.fc(h.flatten(1))


def _resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    net = _ResNet()
    with torch.no_grad():
        net.bn1.running_mean.uniform_(-0.2, 0.2)
        net.bn1.running_var.uniform_(0.5, 1.5)
    return net.eval()


def test_cnn_with_residual_block_from_onnx_export():
    module = _resnet()
    buf = io.BytesIO()
    torch.onnx.export(
        module, (torch.zeros(1, 1, 5, 5),), buf, dynamo=False, input_names=["x"], output_names=["y"]
    )
    model = onnx.load_from_string(buf.getvalue())
    net = cv.BoundedNetwork(model)
    rng = np.random.default_rng(10)
    lo = rng.uniform(-1, 1, size=(1, 1, 5, 5))
    hi = lo + 0.1
    res = net.compute_bounds(lo, hi, method="crown")
    onnx_names = {n.name for n in model.graph.node}
    assert res.intermediate and set(res.intermediate) <= onnx_names
    x = _samples(rng, lo, hi, 200)
    vals = _run_with_intermediates(model, sorted(res.intermediate), x)
    assert (vals["y"] >= res.lb - TOL).all() and (vals["y"] <= res.ub + TOL).all()
    for name, (plo, phi) in res.intermediate.items():
        assert (vals[name] >= plo - TOL).all() and (vals[name] <= phi + TOL).all(), name


def test_torch_module_gives_the_bounds_of_its_onnx_export():
    module = _resnet()
    net = cv.BoundedNetwork(module, torch.zeros(1, 1, 5, 5))
    buf = io.BytesIO()
    torch.onnx.export(module, (torch.zeros(1, 1, 5, 5),), buf, dynamo=False)
    ref = cv.BoundedNetwork(buf.getvalue())
    lo = np.full((1, 1, 5, 5), -0.1)
    a, b = net.compute_bounds(lo, -lo), ref.compute_bounds(lo, -lo)
    np.testing.assert_allclose(a.lb, b.lb, rtol=1e-6, atol=1e-6)
    assert a.intermediate and set(a.intermediate) <= set(net.node_names)


def test_replay_uses_onnxruntime_by_default():
    """onnxruntime is a core dependency: counterexamples replay in the judges' runtime."""
    from completeverify.verdict import Replayer

    assert Replayer(_mlp(11)).backend == "onnxruntime"
    assert Replayer(_mlp(11), "reference").backend == "reference"

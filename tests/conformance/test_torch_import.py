"""Torch modules in: load_torch keeps layer names and matches the module's ONNX export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import completeverify as cv
from completeverify.bounds import compute_bounds
from completeverify.onnx_import import load_onnx
from completeverify.torch_import import export_onnx, load_torch


class Block(nn.Module):
    """A residual block with BatchNorm."""

    def __init__(self, c: int) -> None:
        """conv -> bn, plus the identity."""
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """relu(bn(conv(x)) + x)."""
        return torch.relu(self.bn(self.conv(x)) + x)


class ResNet(nn.Module):
    """conv -> residual block -> linear."""

    def __init__(self) -> None:
        """Tiny layers."""
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, stride=2, padding=1)
        self.layer1 = Block(3)
        self.fc = nn.Linear(3 * 4 * 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits."""
        x = self.layer1(torch.relu(self.conv(x)))
        return self.fc(x.view(x.size(0), -1))


def _randomize_bn(m: nn.Module) -> nn.Module:
    """Non-trivial running statistics, then eval mode."""
    g = torch.Generator().manual_seed(1)
    for b in m.modules():
        if isinstance(b, (nn.BatchNorm1d, nn.BatchNorm2d)):
            b.running_mean.copy_(torch.rand(b.num_features, generator=g) - 0.5)
            b.running_var.copy_(torch.rand(b.num_features, generator=g) + 0.5)
            b.weight.data.copy_(torch.rand(b.num_features, generator=g) + 0.5)
    return m.eval()


def _models() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    """The three shapes of the issue: a Sequential MLP, a CNN with BatchNorm, a residual net."""
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    cnn = nn.Sequential(
        nn.Conv2d(1, 2, 3),
        nn.BatchNorm2d(2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(2 * 4 * 4, 6),
        nn.BatchNorm1d(6),
        nn.ReLU(),
        nn.Linear(6, 3),
    )
    return {
        "mlp": (mlp.eval(), (1, 6)),
        "cnn": (_randomize_bn(cnn), (1, 1, 6, 6)),
        "res": (_randomize_bn(ResNet()), (1, 1, 8, 8)),
    }


def test_layer_names_are_kept() -> None:
    """Graph node names are the module's layer names."""
    models = _models()
    names = [n.name for n in cv.load_torch(*models["mlp"]).nodes]
    assert names[1:] == ["0", "1", "2", "3", "4"]
    res = models["res"][0].train()
    names = [n.name for n in load_torch(res, (1, 1, 8, 8)).nodes]
    assert {"conv", "layer1.conv", "layer1.bn", "fc"} <= set(names)
    assert res.training and res.layer1.bn.training  # the user's mode is restored
    assert int(res.layer1.bn.num_batches_tracked) == 0  # and no statistic was updated


@pytest.mark.parametrize("kind", ["mlp", "cnn", "res"])
def test_same_bounds_as_onnx_export(kind: str) -> None:
    """IBP and CROWN bounds of the traced graph equal those of the ONNX export's import."""
    model, shape = _models()[kind]
    g = load_torch(model, shape)
    go = load_onnx(export_onnx(model, shape))
    rng = np.random.default_rng(0)
    x = rng.random(shape)
    with torch.no_grad():
        ref = model(torch.as_tensor(x, dtype=torch.float32)).double().numpy().reshape(-1)
    assert np.allclose(g(torch.as_tensor(x)).detach().numpy().reshape(-1), ref, atol=1e-5)
    for method in ("ibp", "crown"):
        lb, ub = compute_bounds(g, x - 0.05, x + 0.05, method=method)
        lbo, ubo = compute_bounds(go, x - 0.05, x + 0.05, method=method)
        assert np.allclose(lb, lbo, rtol=1e-5, atol=1e-5) and np.allclose(
            ub, ubo, rtol=1e-5, atol=1e-5
        )
        assert np.all(lb <= ref + 1e-6) and np.all(ref <= ub + 1e-6)
    lb2, _ = cv.compute_bounds(model, x - 0.05, x + 0.05)  # a module straight in
    assert np.allclose(lb2, compute_bounds(g, x - 0.05, x + 0.05)[0])


def _robust_prop(x: np.ndarray, y: int, n_out: int, eps: float) -> str:
    """VNN-LIB: some other logit reaches logit y over the L-inf ball around x."""
    flat = x.reshape(-1)
    lines = [f"(declare-const X_{i} Real)" for i in range(flat.size)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    for i, v in enumerate(flat):
        lines += [
            f"(assert (>= X_{i} {float(v - eps)!r}))",
            f"(assert (<= X_{i} {float(v + eps)!r}))",
        ]
    ors = " ".join(f"(and (>= Y_{j} Y_{y}))" for j in range(n_out) if j != y)
    return "\n".join(lines) + f"\n(assert (or {ors}))\n"


@pytest.mark.parametrize("kind", ["mlp", "cnn", "res"])
def test_same_verdicts_as_onnx_export(kind: str) -> None:
    """verify gives the same verdict on the module and on its ONNX export (both radii)."""
    model, shape = _models()[kind]
    x = np.random.default_rng(1).random(shape)
    with torch.no_grad():
        y = int(model(torch.as_tensor(x, dtype=torch.float32)).argmax())
    onnx_bytes = export_onnx(model, shape)
    for eps in (1e-3, 0.5):
        prop = _robust_prop(x, y, 4 if kind == "res" else 3, eps)
        r_mod = cv.verify(model, prop, timeout=20, example_input=shape)
        r_onnx = cv.verify(onnx_bytes, prop, timeout=20)
        assert r_mod.status == r_onnx.status
        assert r_mod.status in (cv.Status.SAT, cv.Status.UNSAT)
    assert (
        cv.verify(
            model,
            _robust_prop(x, y, 4 if kind == "res" else 3, 1e-3),
            timeout=20,
            example_input=shape,
        ).status
        == cv.Status.UNSAT
    )


def test_errors_name_the_layer() -> None:
    """Unsupported layers and bad shapes raise CompleteVerifyError naming the layer."""
    net = nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 2))
    with pytest.raises(cv.UnsupportedOperatorError, match="GELU.*'1'"):
        load_torch(net, (1, 4))
    with pytest.raises(cv.ModelError, match="example input"):
        load_torch(net, None)
    with pytest.raises(cv.ModelError, match="fails on an input"):
        load_torch(net, (1, 5))

    class Broadcast(nn.Module):
        """fc(x) + x with a (B, 1) fc output: broadcasting is refused."""

        def __init__(self) -> None:
            """One layer."""
            super().__init__()
            self.fc = nn.Linear(4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """Broadcast sum."""
            return self.fc(x) + x

    with pytest.raises(cv.ModelError, match="layer 'add'.*same shape"):
        load_torch(Broadcast(), (1, 4))
    conv = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Linear(2, 2))
    with pytest.raises(cv.ModelError, match="layer '1'"):
        load_torch(conv, (1, 1, 4, 4))


class _Transposed(nn.Module):
    """fc(x.mT.mT): a tensor attribute (getattr) feeding a layer."""

    def __init__(self) -> None:
        """One layer."""
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The transposes cancel, but the importer has no getattr."""
        return self.fc(x.mT.mT)


class _OnBuffer(nn.Module):
    """fc(buffer) + x: a layer applied to a constant of the module."""

    def __init__(self) -> None:
        """One layer and one buffer."""
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.register_buffer("c", torch.ones(1, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """A constant branch added to the input."""
        return self.fc(self.c) + x


def test_tensor_attributes_and_constant_inputs_are_named_errors(capfd) -> None:
    """x.T / x.mT had been skipped, so the next layer lost its input (an IndexError, or a
    graph with a dangling node); a layer applied to a buffer was an IndexError; a BatchNorm
    without running statistics failed inside torch's shape propagation, which printed its own
    traceback. Each is now one CompleteVerifyError naming what to change."""
    with pytest.raises(cv.UnsupportedOperatorError, match=r"tensor attribute \.mT"):
        load_torch(_Transposed(), (1, 3))
    with pytest.raises(cv.ModelError, match="layer 'fc'.*constant of the module"):
        load_torch(_OnBuffer(), (1, 3))
    bn = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3, track_running_stats=False))
    with pytest.raises(cv.ModelError, match="layer '1'.*running statistics"):
        load_torch(bn, (1, 3))
    with pytest.raises(cv.ModelError, match=r"fails on an input.*\(RuntimeError: mat1"):
        load_torch(nn.Sequential(nn.Linear(4, 2)), (1, 5))
    assert "Traceback" not in capfd.readouterr().err

"""--device / VerifyConfig.device: validation, and identical results when the device-specific
code path (torch's default-device mode, per-device parameter caches, host copies) is forced on
the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from paths import REPO

import completeverify as cv
from completeverify.bounds import BoundEngine
from completeverify.config import AttackConfig, VerifyConfig
from completeverify.device import device_scope

from nets import mlp_onnx, random_mlp, smooth_net, smooth_onnx, vnnlib_text

ROOT = REPO


def _instances():
    """(name, net, property, config) covering MILP, ReLU splitting, input splitting, Sigmoid."""
    rng = np.random.default_rng(3)
    relu = random_mlp(rng, [8, 12, 12, 3])  # the modes are forced below
    lower, upper = -np.ones(8) * 0.4, np.ones(8) * 0.4
    net = cv.load_onnx(mlp_onnx(relu, input_shape=(1, 8)))
    x = torch.as_tensor((lower + upper)[None] / 2).reshape(1, 8)
    y0 = net.forward(x).detach().numpy().reshape(-1)
    C = np.array([[1.0, -1.0, 0.0]])
    no_pgd = AttackConfig(enabled=False)
    out = [
        (
            "example-unsat",
            ROOT / "examples" / "mlp.onnx",
            ROOT / "examples" / "mlp_unsat.vnnlib",
            VerifyConfig(timeout=30),
        ),
        (
            "example-sat",
            ROOT / "examples" / "mlp.onnx",
            ROOT / "examples" / "mlp_sat.vnnlib",
            VerifyConfig(timeout=30),
        ),
    ]
    for mode in ("relu-split", "input-split", "milp"):
        for t in (float(C[0] @ y0) - 0.6, float(C[0] @ y0) + 0.05):
            prop = vnnlib_text(lower, upper, [(C, np.array([t]))])
            out.append(
                (f"{mode}-{t:.2f}", net, prop, VerifyConfig(timeout=30, mode=mode, attack=no_pgd))
            )
    sig = smooth_net(np.random.default_rng(0), [2, 8, 2], "sigmoid")
    out.append(
        (
            "sigmoid",
            cv.load_onnx(smooth_onnx(sig, "sigmoid")),
            vnnlib_text([-2, -2], [2, 2], [(np.array([[1.0, -1.0]]), np.array([-2.9]))]),
            VerifyConfig(timeout=30, attack=no_pgd),
        )
    )
    return out


def _summary(r):
    """What must not change with the device path: verdict, counterexample, domain count."""
    cex = None if r.counterexample is None else np.asarray(r.counterexample.input).tobytes()
    return r.status, cex, r.stats.get("domains")


@pytest.mark.parametrize(
    "which",
    [
        0,
        1,
        pytest.param(2, marks=pytest.mark.slow),
        pytest.param(3, marks=pytest.mark.slow),
        4,
        5,
        6,
        8,
    ],
)
def test_forced_device_path_gives_identical_results(which):
    for name, net, prop, cfg in _instances()[which : which + 1]:
        plain = _summary(cv.verify(net, prop, config=cfg))
        with device_scope("cpu", force=True):
            forced = _summary(cv.verify(net, prop, config=cfg))
        assert forced == plain, name


def test_forced_device_path_gives_bitwise_identical_bounds():
    rng = np.random.default_rng(5)
    net = cv.load_onnx(mlp_onnx(random_mlp(rng, [4, 10, 10, 3]), input_shape=(1, 4)))
    lo = (
        torch.full((3, 4), -0.5, dtype=torch.float64)
        + 0.1 * torch.arange(3.0, dtype=torch.float64)[:, None]
    )
    hi = lo + 0.7
    C = torch.tensor([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]], dtype=torch.float64)
    for method in ("ibp", "crown", "alpha-crown"):
        ref = BoundEngine(net).compute(lo, hi, C, method=method).lb
        with device_scope("cpu", force=True):
            got = BoundEngine(net).compute(lo, hi, C, method=method).lb
        assert torch.equal(ref, got), method


def test_forced_scope_is_active_and_parameters_are_cached_per_device():
    from torch.overrides import _get_current_function_mode_stack
    from torch.utils._device import DeviceContext

    net = cv.load_onnx(ROOT / "examples" / "mlp.onnx")
    with device_scope("cpu", force=True):
        assert any(isinstance(m, DeviceContext) for m in _get_current_function_mode_stack())
    with device_scope("cpu"):
        assert not any(isinstance(m, DeviceContext) for m in _get_current_function_mode_stack())
    with torch.device("meta"):
        meta = net.params(torch.float64)
    cpu = net.params(torch.float64)
    assert any(v.device.type == "meta" for p in meta for v in p.values())
    assert all(v.device.type == "cpu" for p in cpu for v in p.values())


def test_device_option_is_validated():
    with pytest.raises(cv.CompleteVerifyError, match="unknown device"):
        VerifyConfig(device="tpu")
    VerifyConfig(device="cuda:1")  # a valid name; availability is checked when verifying
    if not torch.cuda.is_available():
        with pytest.raises(cv.CompleteVerifyError, match="no CUDA device"):
            cv.verify(
                ROOT / "examples" / "mlp.onnx",
                ROOT / "examples" / "mlp_unsat.vnnlib",
                device="cuda",
            )


def test_cli_device_option(capsys):
    from completeverify.cli import main

    net, prop = str(ROOT / "examples" / "mlp.onnx"), str(ROOT / "examples" / "mlp_unsat.vnnlib")
    assert main(["verify", net, prop, "--device", "cpu", "--timeout", "30"]) == 0
    assert capsys.readouterr().out.strip() == "unsat"
    assert main(["verify", net, prop, "--device", "tpu"]) == 2
    err = capsys.readouterr().err
    assert "unknown device" in err and "Traceback" not in err

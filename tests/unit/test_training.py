"""Certified training: the engine's differentiable mode, robust losses, schedules, train CLI."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

import completeverify as cv
from completeverify.bounds import BoundConfig, BoundEngine
from completeverify.torch_import import trace_torch
from completeverify.training import BoundedModule, Schedule, load_dataset, robust_loss
from completeverify.training.losses import certified, margin_lower, pgd_attack, unstable_relus


class Res(nn.Module):
    """conv -> bn -> relu, a residual block, linear (float64)."""

    def __init__(self) -> None:
        """Tiny layers."""
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 3 * 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, 3)."""
        h = torch.relu(self.bn(self.conv(x)))
        h = torch.relu(self.conv2(h) + h)
        return self.fc(h.flatten(1))


def _res() -> nn.Module:
    """A seeded Res in eval mode with non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    m = Res().double()
    m.bn.running_mean.uniform_(-0.3, 0.3)
    m.bn.running_var.uniform_(0.5, 1.5)
    return m.eval()


def _mlp() -> nn.Module:
    """A seeded tiny float64 MLP."""
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)
    ).double()


@pytest.mark.parametrize("method", ["ibp", "crown"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_training_mode_agrees_with_sound_mode(method: str, dtype: torch.dtype) -> None:
    """Same engine, same numbers up to float tolerance; sound bounds are never tighter."""
    model = _res()
    tr = trace_torch(model, (1, 1, 6, 6))
    x = torch.rand(5, 36, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    cmat = torch.eye(3, dtype=torch.float64)
    sound = BoundEngine(tr.graph).compute(x - 0.05, x + 0.05, cmat, method=method, need_ub=True)
    eng = BoundEngine(tr.graph, BoundConfig(sound=False, dtype=dtype), tr.live_params(dtype))
    fast = eng.compute(
        (x - 0.05).to(dtype), (x + 0.05).to(dtype), cmat.to(dtype), method=method, need_ub=True
    )
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    assert fast.lb.dtype == dtype and fast.lb.requires_grad
    assert torch.allclose(fast.lb.double(), sound.lb, atol=tol)
    assert torch.allclose(fast.ub.double(), sound.ub, atol=tol)
    if dtype == torch.float64:
        assert bool((sound.lb <= fast.lb).all()) and bool((sound.ub >= fast.ub).all())


@pytest.mark.parametrize("method", ["ibp", "crown-ibp"])
def test_training_bounds_contain_sampled_outputs(method: str) -> None:
    """Margin lower bounds of the training mode are below every sampled margin."""
    model = _res()
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(4, 1, 6, 6, dtype=torch.float64, generator=gen)
    y = torch.tensor([0, 1, 2, 0])
    eps = 0.08
    lb = margin_lower(model, x, y, eps, method, beta=0.5, dtype=torch.float64)
    for _ in range(200):
        xs = (x + eps * (2 * torch.rand(x.shape, dtype=torch.float64, generator=gen) - 1)).clamp(
            0, 1
        )
        with torch.no_grad():
            out = model(xs)
        margins = out.gather(1, y[:, None]) - out
        assert bool((lb <= margins + 1e-9).all())


@pytest.mark.parametrize("method", ["ibp", "crown-ibp"])
def test_gradients_match_finite_differences(method: str) -> None:
    """d loss / d weight is non-zero and matches central differences (float64, tiny net)."""
    model = _mlp()
    x = torch.rand(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    y = torch.tensor([0, 1, 2])
    bm = BoundedModule(model, (4,))

    def loss() -> torch.Tensor:
        """The robust loss at the current weights."""
        return robust_loss(bm, x, y, 0.1, method=method, beta=0.7, dtype=torch.float64)

    model.zero_grad()
    loss().backward()
    for p in (model[0].weight, model[2].bias, model[4].weight):
        assert p.grad is not None and float(p.grad.abs().sum()) > 0
        for idx in [(0,), (1,)] if p.dim() == 1 else [(0, 1), (2, 3)]:
            h = 1e-6
            with torch.no_grad():
                p[idx] += h
                up = float(loss())
                p[idx] -= 2 * h
                down = float(loss())
                p[idx] += h
            assert abs((up - down) / (2 * h) - float(p.grad[idx])) < 1e-5


def test_losses_order_and_verified_error() -> None:
    """IBP loss >= PGD loss, clean loss; CROWN-IBP (beta=1) <= IBP; verified error consistent."""
    model = _res().float()
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(8, 1, 6, 6, generator=gen)
    y = torch.randint(0, 3, (8,), generator=gen)
    clean = float(nn.functional.cross_entropy(model(x), y).detach())
    ibp = float(robust_loss(model, x, y, 0.05, method="ibp"))
    crown = float(robust_loss(model, x, y, 0.05, method="crown-ibp", beta=1.0))
    pgd = float(robust_loss(model, x, y, 0.05, method="pgd"))
    assert ibp >= pgd - 1e-5 and ibp >= clean - 1e-5 and crown <= ibp + 1e-5
    adv = pgd_attack(model, x, y, 0.05)
    assert float((adv - x).abs().max()) <= 0.05 + 1e-6 and float(adv.min()) >= 0
    errs = {
        m: cv.verified_error(model, x, y, 0.05, method=m) for m in ("ibp", "crown-ibp", "crown")
    }
    assert 0 <= errs["crown"] <= errs["crown-ibp"] <= errs["ibp"] <= 1
    with torch.no_grad():
        clean_err = float((model(x).argmax(1) != y).float().mean())
    assert cv.verified_error(model, x, y, 0.0) == pytest.approx(clean_err)
    assert errs["ibp"] >= clean_err
    assert int(unstable_relus(model, x, 0.0).sum()) == 0
    assert bool((certified(model, x, y, 0.05, method="crown").long() <= 1).all())
    with pytest.raises(cv.InputError):
        robust_loss(model, x, y, 0.05, norm="l2")
    with pytest.raises(cv.InputError):
        robust_loss(model, x, y, 0.05, method="sabr")


@pytest.mark.parametrize("method", ["ibp", "crown-ibp", "pgd"])
def test_a_few_steps_decrease_the_loss(method: str) -> None:
    """Ten Adam steps on one fixed batch lower its robust loss."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    gen = torch.Generator().manual_seed(6)
    x = torch.rand(32, 1, 4, 4, generator=gen)
    y = x.reshape(32, -1)[:, :3].argmax(1)
    bm = BoundedModule(model, (1, 4, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(10):
        loss = robust_loss(bm if method != "pgd" else model, x, y, 0.02, method=method, beta=0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]


def test_schedule_ramps() -> None:
    """eps ramps 0 -> target after the warm-up; kappa 1 -> end; beta 1 -> 0."""
    s = Schedule.of(100, 0.2, warmup_frac=0.1, ramp_frac=0.5, kappa_end=0.5)
    assert s.eps_at(0) == 0 and s.eps_at(9) == 0 and s.kappa_at(5) == 1 and s.beta_at(5) == 1
    eps = [s.eps_at(t) for t in range(100)]
    assert all(a <= b for a, b in itertools.pairwise(eps)) and eps[-1] == pytest.approx(0.2)
    assert s.eps_at(59) == pytest.approx(0.2) and s.kappa_at(99) == 0.5 and s.beta_at(99) == 0
    with pytest.raises(cv.InputError):
        Schedule(10, 8, 5, 0.1)


def test_datasets(tmp_path) -> None:
    """digits: stratified, fixed split in [0, 1]; .npz: read or refused with a clear message."""
    pytest.importorskip("sklearn")
    d = load_dataset("digits", seed=0)
    assert d.x_train.shape[1:] == (1, 8, 8) and len(d.y_train) + len(d.y_test) == 1797
    assert 0 <= d.x_train.min() and d.x_train.max() <= 1 and d.n_classes == 10
    assert np.array_equal(d.y_test, load_dataset("digits", seed=0).y_test)
    counts = np.bincount(d.y_test)
    assert counts.max() - counts.min() <= 2
    np.savez(tmp_path / "bad.npz", x=np.full((4, 2), 3.0), y=np.zeros(4, dtype=np.int64))
    with pytest.raises(cv.InputError, match=r"\[0, 1\]"):
        load_dataset(str(tmp_path / "bad.npz"))
    with pytest.raises(cv.InputError, match="digits"):
        load_dataset(str(tmp_path / "missing.npz"))


def test_train_cli_exports_onnx_that_verify_reads(tmp_path, capsys) -> None:
    """`completeverify train` on an .npz writes ONNX; verify and load_onnx read it unchanged."""
    from completeverify.cli import main

    rng = np.random.default_rng(0)
    x = rng.random((80, 6)).astype(np.float32)
    y = (x[:, 0] > x[:, 1]).astype(np.int64)
    np.savez(tmp_path / "toy.npz", x=x, y=y)
    out = tmp_path / "m.onnx"
    rc = main(
        [
            "train",
            str(tmp_path / "toy.npz"),
            "--arch",
            "mlp",
            "--method",
            "crown-ibp",
            "--eps",
            "0.05",
            "--epochs",
            "3",
            "--out",
            str(out),
            "--no-progress",
            "--json",
        ]
    )
    assert rc == 0 and out.is_file()
    assert "crown" in capsys.readouterr().out
    g = cv.load_onnx(str(out))
    assert g.n_inputs == 6 and g.n_outputs == 2
    lo, hi = np.clip(x[0] - 0.01, 0, 1), np.clip(x[0] + 0.01, 0, 1)
    text = "".join(f"(declare-const X_{i} Real)\n" for i in range(6))
    text += "(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
    text += "".join(
        f"(assert (>= X_{i} {float(lo[i])!r}))\n(assert (<= X_{i} {float(hi[i])!r}))\n"
        for i in range(6)
    )
    text += "(assert (>= Y_0 Y_1))\n"
    assert cv.verify(str(out), text, timeout=20).status in (cv.Status.SAT, cv.Status.UNSAT)
    assert main(["train", "nope", "--out", str(out)]) == 2


def test_sound_engine_refuses_params_of_another_type() -> None:
    """A params override in float32 cannot reach the sound float64 mode."""
    tr = trace_torch(_mlp().float(), (1, 4))
    with pytest.raises(cv.ModelError, match="float64"):
        BoundEngine(tr.graph, BoundConfig(), tr.live_params(torch.float32))

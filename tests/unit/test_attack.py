"""PGD and Adam falsification (completeverify.attack): candidates only, checked here against a
plain numpy forward pass of the same network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import completeverify as cv
from completeverify.attack import adam_batch, row_hinge_loss, spec_loss
from completeverify.config import Deadline

from nets import forward_np, mlp_onnx, random_mlp


def _thin_band(seed: int, r: float):
    """A 5-input MLP and one polytope: |y1 - y1*| <= r, |y2 - y2*| <= r, y0 >= y0*, with y* the
    output at a random point x* of the box (so x* is a counterexample and the unsafe set is a
    thin band around the surface through it)."""
    rng = np.random.default_rng(seed)
    layers = random_mlp(rng, [5, 16, 16, 3])
    lower, upper = -np.ones(5), np.ones(5)
    x_star = rng.uniform(lower, upper)
    y = forward_np(layers, x_star)
    # rows of C y <= d
    C = np.array(
        [[0, 1.0, 0], [0, -1.0, 0], [0, 0, 1.0], [0, 0, -1.0], [-1.0, 0, 0]], dtype=np.float64
    )
    d = np.array([y[1] + r, r - y[1], y[2] + r, r - y[2], -y[0]])
    return layers, lower, upper, C, d


def test_row_hinge_loss_is_zero_exactly_where_the_point_is_unsafe():
    rng = np.random.default_rng(0)
    y = torch.as_tensor(rng.normal(size=(500, 3)))
    Cs = [torch.as_tensor(rng.normal(size=(k, 3))) for k in (1, 3, 4)]
    ds = [torch.as_tensor(rng.normal(size=k)) for k in (1, 3, 4)]
    hinge, spec = row_hinge_loss(y, Cs, ds), spec_loss(y, Cs, ds)
    assert bool((hinge >= 0).all())
    assert torch.equal(hinge == 0, spec <= 0)
    assert 0 < int((spec <= 0).sum()) < 500  # both kinds of point occur


@pytest.mark.parametrize("seed", range(3))
def test_adam_finds_a_point_in_a_thin_band(seed):
    layers, lower, upper, C, d = _thin_band(seed, 1e-3)
    net = cv.load_onnx(mlp_onnx(layers, input_shape=(1, 5)))
    lo = torch.as_tensor(lower, dtype=torch.float64)
    hi = torch.as_tensor(upper, dtype=torch.float64)
    Cs, ds = [torch.as_tensor(C)], [torch.as_tensor(d)]
    gen = torch.Generator().manual_seed(seed)
    x0 = lo + (hi - lo) * torch.rand(256, 5, dtype=torch.float64, generator=gen)
    x, loss = adam_batch(net, x0, lo, hi, Cs, ds, 200, 0.05, Deadline(60))
    best = int(torch.argmin(loss))
    assert float(loss[best]) < 0
    point = x[best].numpy()
    assert np.all(point >= lower) and np.all(point <= upper)
    # the point is unsafe by an independent forward pass, and the loss reported is its own
    y = forward_np(layers, point)
    assert np.all(C @ y - d <= 0)
    assert float(loss[best]) == pytest.approx(float(np.max(C @ y - d)), abs=1e-9)

"""Property-based tests of the bound engine (hypothesis): on random small ReLU networks and boxes,
every method's bounds contain the outputs at sampled points (numpy oracle), and tighter methods
are never looser."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import completeverify as cv

from nets import forward_np, mlp_onnx, random_mlp

TOL = 1e-4  # float32 weights read through ONNX vs the float64 oracle


@st.composite
def networks_and_boxes(draw):
    """(layers, lower, upper, C) for a random MLP with 1-3 hidden layers."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n_in = draw(st.integers(1, 5))
    hidden = draw(st.lists(st.integers(1, 8), min_size=1, max_size=3))
    n_out = draw(st.integers(1, 4))
    layers = random_mlp(rng, [n_in, *hidden, n_out])
    centre = rng.uniform(-1, 1, n_in)
    radius = draw(st.sampled_from([0.0, 1e-3, 0.1, 1.0])) * rng.uniform(0.2, 1.0, n_in)
    C = rng.normal(size=(draw(st.integers(1, 3)), n_out))
    return layers, centre - radius, centre + radius, C


@settings(max_examples=10, deadline=None)
@given(networks_and_boxes())
def test_bounds_contain_sampled_outputs(case):
    layers, lo, hi, C = case
    net = cv.BoundedNetwork(mlp_onnx(layers, input_shape=(1, len(lo))))
    rng = np.random.default_rng(0)
    x = lo + rng.uniform(size=(200, len(lo))) * (hi - lo)
    x[:4] = np.where(rng.uniform(size=(4, len(lo))) < 0.5, lo, hi)  # some vertices
    cy = np.stack([forward_np(layers, xi) for xi in x]) @ C.T
    results = {
        m: net.compute_bounds(lo, hi, method=m, C=C) for m in ("ibp", "crown", "alpha-crown")
    }
    for res in results.values():
        assert (res.lb <= res.ub + 1e-9).all()
        assert (cy >= res.lb - TOL).all() and (cy <= res.ub + TOL).all()
    assert (results["crown"].lb >= results["ibp"].lb - 1e-9).all()
    assert (results["alpha-crown"].lb >= results["crown"].lb - 1e-9).all()

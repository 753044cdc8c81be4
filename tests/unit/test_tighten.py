"""LP/MILP-refined intermediate bounds: never looser, sound on samples, exact (MILP) on tiny
nets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from completeverify.bounds import BoundEngine
from completeverify.config import Deadline
from completeverify.graph import Relu
from completeverify.milp import tighten as tighten_mod
from completeverify.milp.tighten import LayerStats, relu_layers, tighten_bounds
from completeverify.onnx_import import load_onnx

from nets import mlp_onnx, random_mlp


def _setup(seed: int, sizes: list[int], radius: float = 1.0):
    """(layers, graph, lower, upper, CROWN pre as flat numpy) for a random MLP."""
    rng = np.random.default_rng(seed)
    layers = random_mlp(rng, sizes)
    graph = load_onnx(mlp_onnx(layers, input_shape=(1, sizes[0])))
    centre = rng.uniform(-0.5, 0.5, sizes[0])
    lower, upper = centre - radius, centre + radius
    res = BoundEngine(graph).compute(
        torch.tensor(lower)[None], torch.tensor(upper)[None], C=torch.eye(sizes[-1]), method="crown"
    )
    pre = {k: (v[0][0].numpy().copy(), v[1][0].numpy().copy()) for k, v in res.pre.items()}
    return layers, graph, lower, upper, pre


def _pre_values(layers, x: np.ndarray) -> list[np.ndarray]:
    """Pre-activations (N, h) of every hidden layer for a batch of inputs x (N, n_in)."""
    out, h = [], x
    for w, b in layers[:-1]:
        z = h @ w.T + b
        out.append(z)
        h = np.maximum(z, 0.0)
    return out


def _samples(rng: np.random.Generator, lower: np.ndarray, upper: np.ndarray, n: int) -> np.ndarray:
    """n uniform points of the box plus all its corners."""
    pts = rng.uniform(lower, upper, size=(n, lower.size))
    corners = np.array(list(itertools.product(*zip(lower, upper))))
    return np.vstack([pts, corners])


def _exact_range(layers, lower, upper, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact min and max of each pre-activation of hidden layer `layer` (0-based), by enumeration.

    One LP per activation pattern of the earlier layers, solved with highspy directly.
    """
    import highspy

    n = lower.size
    inf = highspy.kHighsInf
    widths = [w.shape[0] for w, _ in layers[:layer]]
    h_out = layers[layer][0].shape[0]
    mins, maxs = np.full(h_out, np.inf), np.full(h_out, -np.inf)
    for pattern in itertools.product([0, 1], repeat=sum(widths)):
        A, a = np.eye(n), np.zeros(n)
        rows = []
        pos = 0
        for w, b in layers[:layer]:
            pa, pb = w @ A, w @ a + b
            s = np.array(pattern[pos : pos + w.shape[0]], dtype=float)
            pos += w.shape[0]
            for i in range(w.shape[0]):
                rows.append((pa[i], -pb[i], inf) if s[i] else (pa[i], -inf, -pb[i]))
            A, a = pa * s[:, None], pb * s
        w, b = layers[layer]
        za, zb = w @ A, w @ a + b
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        for i in range(n):
            h.addVar(float(lower[i]), float(upper[i]))
        for coef, lo, hi in rows:
            h.addRow(lo, hi, n, np.arange(n, dtype=np.int32), coef)
        for k in range(h_out):
            for sign in (1.0, -1.0):
                h.changeColsCost(n, np.arange(n, dtype=np.int32), sign * za[k])
                h.run()
                if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                    break
                val = sign * h.getInfo().objective_function_value + zb[k]
                if sign > 0:
                    mins[k] = min(mins[k], val)
                else:
                    maxs[k] = max(maxs[k], val)
    return mins, maxs


def _check_sound(layers, graph, lower, upper, pre, new, n_samples=4000, seed=0):
    """new is never looser than pre, and every sampled pre-activation lies inside new."""
    keys = relu_layers(graph)
    assert set(new) == set(pre)
    for k in pre:
        assert np.all(new[k][0] >= pre[k][0]) and np.all(new[k][1] <= pre[k][1])
    vals = _pre_values(layers, _samples(np.random.default_rng(seed), lower, upper, n_samples))
    for j, z in zip(keys, vals):
        lo, hi = new[j]
        assert np.all(z >= lo - 1e-9), (j, float(np.max(lo - z)))
        assert np.all(z <= hi + 1e-9), (j, float(np.max(z - hi)))


@pytest.mark.parametrize("relax", ["lp", "milp"])
@pytest.mark.parametrize("seed", [0, 1])
def test_never_looser_and_sound_on_samples(relax: str, seed: int) -> None:
    """Tightened bounds of three layers contain every sampled pre-activation and the box corners."""
    sizes = [4, 10, 10, 8, 2] if relax == "lp" else [3, 6, 6, 5, 2]
    layers, graph, lower, upper, pre = _setup(seed, sizes)
    stats: list[LayerStats] = []
    new = tighten_bounds(graph, lower, upper, pre, layers=3, relax=relax, stats=stats)
    _check_sound(layers, graph, lower, upper, pre, new, seed=seed)
    assert len(stats) == 3 and all(s.complete for s in stats)
    assert all(s.unstable_after <= s.unstable_before for s in stats)
    # the input dict is left untouched
    again = _setup(seed, sizes)[4]
    for k in pre:
        assert np.array_equal(pre[k][0], again[k][0]) and np.array_equal(pre[k][1], again[k][1])


def test_milp_matches_enumeration_on_tiny_net() -> None:
    """MILP bounds are sound and, where the neuron stays unstable, equal the exact range to
    ~1e-6."""
    layers, graph, lower, upper, pre = _setup(3, [2, 4, 4, 3, 1], radius=1.5)
    new = tighten_bounds(graph, lower, upper, pre, layers=3, relax="milp", time_per_neuron=10.0)
    lp = tighten_bounds(graph, lower, upper, pre, layers=3, relax="lp")
    compared = 0
    for layer, j in enumerate(relu_layers(graph)):
        tmin, tmax = _exact_range(layers, lower, upper, layer)
        lo, hi = new[j]
        assert np.all(lo <= tmin + 1e-9) and np.all(hi >= tmax - 1e-9)
        assert np.all(lp[j][0] <= tmin + 1e-9) and np.all(lp[j][1] >= tmax - 1e-9)
        was_unstable = (pre[j][0] < 0) & (pre[j][1] > 0)
        still = was_unstable & (tmin < -1e-4) & (tmax > 1e-4)
        tol = 3e-6 * (1 + np.abs(tmin))
        assert np.all(np.abs(lo[still] - tmin[still]) <= tol[still]), (layer, lo - tmin)
        assert np.all(np.abs(hi[still] - tmax[still]) <= tol[still]), (layer, hi - tmax)
        # proven-stable neurons really are stable
        assert np.all(tmin[lo >= 0] >= 0) and np.all(tmax[hi <= 0] <= 0)
        compared += int(np.sum(still))
    assert compared >= 4


def test_first_layer_lp_is_exact() -> None:
    """On the first layer the LP is the exact interval of an affine map (up to the float
    margins)."""
    layers, graph, lower, upper, pre = _setup(5, [3, 6, 4, 1])
    new = tighten_bounds(graph, lower, upper, pre, layers=1, relax="lp")
    j = relu_layers(graph)[0]
    w, b = layers[0]
    mid, rad = (lower + upper) / 2, (upper - lower) / 2
    tlo, thi = w @ mid + b - np.abs(w) @ rad, w @ mid + b + np.abs(w) @ rad
    unstable = (pre[j][0] < 0) & (pre[j][1] > 0)
    assert unstable.any()
    assert np.all(new[j][0] <= tlo + 1e-12) and np.all(new[j][1] >= thi - 1e-12)
    assert np.allclose(new[j][0][unstable], tlo[unstable], atol=1e-7)


def test_strictly_tighter_than_crown_and_milp_tighter_than_lp() -> None:
    """On a seeded net where CROWN is loose, the LP improves some neuron; the MILP is at least as
    tight."""
    layers, graph, lower, upper, pre = _setup(11, [4, 12, 12, 12, 2])
    lp = tighten_bounds(graph, lower, upper, pre, layers=3, relax="lp")
    gain = max(float(np.max(lp[j][0] - pre[j][0])) for j in relu_layers(graph))
    assert gain > 1e-2
    stats: list[LayerStats] = []
    milp = tighten_bounds(graph, lower, upper, pre, layers=2, relax="milp", stats=stats)
    for j in relu_layers(graph)[:2]:
        assert np.all(milp[j][0] >= lp[j][0] - 1e-9)
        solved_up = milp[j][0] < 0  # once proven active, the max side is skipped
        assert np.all(milp[j][1][solved_up] <= lp[j][1][solved_up] + 1e-9)
    assert stats[1].unstable_after < stats[1].unstable_before or stats[1].improved > 0
    _check_sound(layers, graph, lower, upper, pre, milp)


def test_garbage_duals_never_unsound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounds come from the duals by weak duality, so even random duals (or a wrong solver) stay
    sound."""
    layers, graph, lower, upper, pre = _setup(2, [4, 10, 10, 8, 2])
    rng = np.random.default_rng(7)

    def bad_duals(self, col, sign, time_limit):  # noqa: ANN001, ANN202 - test double
        return rng.normal(size=self.program.num_rows()) * rng.choice([1e-3, 1.0, 10.0])

    monkeypatch.setattr(tighten_mod._LpSession, "_duals", bad_duals)
    new = tighten_bounds(graph, lower, upper, pre, layers=3, relax="lp")
    _check_sound(layers, graph, lower, upper, pre, new)


def test_perturbed_duals_cost_tightness_not_soundness(monkeypatch: pytest.MonkeyPatch) -> None:
    """Duals off by 0.1% (a loose dual tolerance): the bounds only get looser, never unsound."""
    layers, graph, lower, upper, pre = _setup(4, [3, 8, 6, 1])
    j1 = relu_layers(graph)[1]
    good = tighten_bounds(graph, lower, upper, pre, layers=2, relax="lp")
    real = tighten_mod._LpSession._duals

    def sloppy(self, col, sign, time_limit):  # noqa: ANN001, ANN202 - test double
        y = real(self, col, sign, time_limit)
        return None if y is None else y * (1 + 1e-3)  # what a loose dual tolerance can give

    monkeypatch.setattr(tighten_mod._LpSession, "_duals", sloppy)
    new = tighten_bounds(graph, lower, upper, pre, layers=2, relax="lp")
    _check_sound(layers, graph, lower, upper, pre, new)
    # the sloppy duals cost tightness (never soundness): no bound gets tighter than the exact LP's
    assert np.all(new[j1][0] <= good[j1][0] + 1e-9) and np.all(new[j1][1] >= good[j1][1] - 1e-9)


def test_reuse_matches_rebuild() -> None:
    """One warm-started HiGHS model per layer gives the same bounds as a fresh solve per neuron."""
    _, graph, lower, upper, pre = _setup(6, [4, 10, 10, 8, 2])
    a = tighten_bounds(graph, lower, upper, pre, layers=3, relax="lp", reuse=True)
    b = tighten_bounds(graph, lower, upper, pre, layers=3, relax="lp", reuse=False)
    for k in pre:
        assert np.allclose(a[k][0], b[k][0], atol=1e-7) and np.allclose(a[k][1], b[k][1], atol=1e-7)


def test_splits_restrict_the_domain_soundly() -> None:
    """With split constraints the bounds hold on the split domain and split neurons are not
    solved."""
    layers, graph, lower, upper, pre = _setup(8, [3, 8, 8, 4, 1])
    j0, j1 = relu_layers(graph)[:2]
    relu0 = next(
        i for i, n in enumerate(graph.nodes) if isinstance(n.op, Relu) and n.inputs[0] == j0
    )
    relu1 = next(
        i for i, n in enumerate(graph.nodes) if isinstance(n.op, Relu) and n.inputs[0] == j1
    )
    unst0 = np.nonzero((pre[j0][0] < 0) & (pre[j0][1] > 0))[0]
    unst1 = np.nonzero((pre[j1][0] < 0) & (pre[j1][1] > 0))[0]
    assert unst0.size >= 2 and unst1.size >= 1
    s0 = np.zeros(8, dtype=np.int64)
    s0[unst0[0]], s0[unst0[1]] = 1, -1
    s1 = np.zeros(8, dtype=np.int64)
    s1[unst1[0]] = 1
    new = tighten_bounds(
        graph, lower, upper, pre, layers=2, relax="milp", splits={relu0: s0, relu1: s1}
    )
    assert new[j1][0][unst1[0]] == pre[j1][0][unst1[0]]  # split-fixed: left alone
    x = _samples(np.random.default_rng(1), lower, upper, 20000)
    z0, z1 = _pre_values(layers, x)[:2]
    keep = (z0[:, unst0[0]] >= 0) & (z0[:, unst0[1]] <= 0)
    assert keep.sum() > 100
    for j, z in ((j0, z0), (j1, z1)):
        assert np.all(z[keep] >= new[j][0] - 1e-9) and np.all(z[keep] <= new[j][1] + 1e-9)
        assert np.all(new[j][0] >= pre[j][0]) and np.all(new[j][1] <= pre[j][1])


def test_expired_deadline_and_zero_layers_change_nothing() -> None:
    """No time or no layers: a copy of the input bounds comes back."""
    _, graph, lower, upper, pre = _setup(0, [4, 10, 10, 2])
    for kwargs in ({"deadline": Deadline(0.0)}, {"layers": 0}):
        stats: list[LayerStats] = []
        new = tighten_bounds(
            graph, lower, upper, pre, layers=kwargs.pop("layers", 2), stats=stats, **kwargs
        )
        for k in pre:
            assert np.array_equal(new[k][0], pre[k][0]) and np.array_equal(new[k][1], pre[k][1])
            assert new[k][0] is not pre[k][0]
        assert all(not s.complete for s in stats)


def test_torch_pre_accepted_and_bad_relax_rejected() -> None:
    """pre straight from BoundEngine ((1, size) tensors) works; an unknown relax is an error."""
    _, graph, lower, upper, _ = _setup(0, [4, 10, 10, 2])
    res = BoundEngine(graph).compute(
        torch.tensor(lower)[None], torch.tensor(upper)[None], C=torch.eye(2), method="crown"
    )
    new = tighten_bounds(graph, lower, upper, res.pre, layers=2)
    for k, (lo, hi) in res.pre.items():
        assert new[k][0].shape == (graph.nodes[k].size,)
        assert np.all(new[k][0] >= lo[0].numpy()) and np.all(new[k][1] <= hi[0].numpy())
    with pytest.raises(ValueError):
        tighten_bounds(graph, lower, upper, res.pre, relax="exact")

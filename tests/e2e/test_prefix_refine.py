"""Prefix refinement of the root bounds of ReLU splitting (bab/prefix_refine.py).

Every neuron it declares stable must be stable on the whole box (checked by the exact oracle on
the prefix network), it never loosens a bound, and searches that use it agree with the oracle.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time

import numpy as np
import pytest
import torch

import completeverify as cv
from completeverify import second_core
from completeverify.bab import relu_split as rs
from completeverify.bab.prefix_refine import PrefixReplayer, stabilise_root, target_nodes
from completeverify.bab.types import BabVerdict
from completeverify.bounds import BoundEngine
from completeverify.config import BabConfig, Deadline, VerifyConfig
from completeverify.context import VerifyContext
from completeverify.errors import InputError
from completeverify.second_core import in_two_processes

from nets import exact_min, forward_np, mlp_onnx, random_mlp, search_context

SIZES = [3, 4, 5, 4, 2]  # three hidden layers: the second and third are refined


def _run(layers, lower, upper, C, d, bab: BabConfig = BabConfig()) -> VerifyContext:
    net = cv.load_onnx(mlp_onnx(layers, input_shape=(1, len(lower))))
    return search_context(net, lower, upper, [(C, d)], bab)


def _instance(seed: int):
    rng = np.random.default_rng(500 + seed)
    layers = random_mlp(rng, SIZES)
    lower = rng.uniform(-2.0, 0.0, size=SIZES[0])
    upper = lower + rng.uniform(1.0, 2.0, size=SIZES[0])
    return layers, lower, upper


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("tighten", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_stabilised_neurons_are_stable_and_no_bound_loosens(seed, tighten, workers):
    layers, lower, upper = _instance(seed)
    C, d = np.array([[1.0, -1.0]]), np.zeros(1)
    bab = BabConfig(prefix_tighten_s=0.3, prefix_workers=workers)
    run = _run(layers, lower, upper, C, d, bab)
    lo = torch.as_tensor(lower)[None]
    hi = torch.as_tensor(upper)[None]
    res = BoundEngine(run.graph).compute(lo, hi, torch.as_tensor(C), method="crown")
    pre = {j: (a[0], b[0]) for j, (a, b) in res.pre.items()}
    case = run.prop.cases[0]
    stop = time.monotonic() + 20
    new, stats = stabilise_root(run, case, lo, hi, pre, stop, rs.relu_split, tighten)
    assert [j for j, _, _ in stats.layers] == target_nodes(run.graph, 8) == [3, 5]
    xs = lower + np.random.default_rng(seed).random((4000, len(lower))) * (upper - lower)
    values = run.graph.forward_all(torch.as_tensor(xs))
    claims = 0
    for j, (old_lo, old_hi) in pre.items():
        new_lo, new_hi = new[j]
        assert torch.all(new_lo >= old_lo) and torch.all(new_hi <= old_hi)
        assert torch.all(values[j] >= new_lo - 1e-9) and torch.all(values[j] <= new_hi + 1e-9)
        layer = (j + 1) // 2  # node 2L-1 is the pre-activation of Linear layer L (1-based)
        for k in range(new_lo.numel()):
            # every bound that moved (stabilised, tightened by a threshold search or by the
            # re-tightening of later nodes) against the exact extreme of that neuron
            for sign, claim, moved in (
                (1.0, float(new_lo[k]), bool(new_lo[k] > old_lo[k])),
                (-1.0, -float(new_hi[k]), bool(new_hi[k] < old_hi[k])),
            ):
                if not moved:
                    continue
                claims += 1
                w, b = layers[layer - 1]
                prefix = [*layers[: layer - 1], (w[k : k + 1], b[k : k + 1])]
                lowest = exact_min(prefix, lower, upper, [(np.array([[sign]]), np.zeros(1))])
                assert lowest >= claim - 1e-9, (j, k, sign, lowest, claim)
    assert stats.sides_proven <= stats.sides_tried
    assert stats.unstable_after <= stats.unstable_before
    assert claims >= stats.sides_proven + stats.sides_tightened  # each of them was checked


def test_some_instance_gets_a_neuron_stabilised_by_a_prefix_search():
    """Without this the test above could pass with nothing ever stabilised or tightened."""
    proven = tightened = 0
    for seed in range(4):
        layers, lower, upper = _instance(seed)
        bab = BabConfig(prefix_tighten_s=0.3)
        run = _run(layers, lower, upper, np.array([[1.0, -1.0]]), np.zeros(1), bab)
        lo, hi = torch.as_tensor(lower)[None], torch.as_tensor(upper)[None]
        res = BoundEngine(run.graph).compute(lo, hi, torch.eye(2, dtype=torch.float64))
        pre = {j: (a[0], b[0]) for j, (a, b) in res.pre.items()}
        for tighten in (False, True):
            _, st = stabilise_root(
                run, run.prop.cases[0], lo, hi, pre, time.monotonic() + 20, rs.relu_split, tighten
            )
            proven += st.sides_proven
            tightened += st.sides_tightened if tighten else 0
    assert proven > 0 and tightened > 0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("gap", [-0.02, 0.02])
def test_search_with_prefix_refinement_agrees_with_oracle(seed, gap):
    """The search pauses at once (prefix_after_s 0), refines the root and searches on; the
    verdict is the oracle's either way (and the refinement did run on these instances)."""
    layers, lower, upper = _instance(seed)
    C = np.array([[1.0, -1.0]])
    m = exact_min(layers, lower, upper, [(C, np.zeros(1))])
    d = np.array([m + gap])
    run = _run(layers, lower, upper, C, d, BabConfig(prefix_after_s=0.0, race_milp=False))
    out = rs.relu_split(run, 0, 0, None, run.deadline)
    assert out.domains <= 1 or "prefix_signs_sides" in run.stats, out.note  # the root alone decides
    if gap > 0:  # the unsafe set {C y <= min + gap} is reached
        assert out.verdict == BabVerdict.FALSIFIED, out.note
        y = np.asarray(out.counterexample.output, dtype=np.float64).reshape(-1)
        x = np.asarray(out.counterexample.input, dtype=np.float64).reshape(-1)
        assert np.all(C @ y <= d) and np.allclose(forward_np(layers, x), y, atol=1e-4)
    else:
        assert out.verdict == BabVerdict.PROVEN, out.note


def test_search_with_the_threshold_round_agrees_with_oracle():
    """prefix_tighten_s > 0 on the two instances of the six the root does not decide: the
    verdicts stay the oracle's (whether the search lasts long enough for the second round is a
    matter of timing; stabilise_root(tighten=True) and DomainQueue.intersect_pre, what it runs,
    are checked exactly above and in tests/unit/test_domain_queue.py)."""
    for seed in (4, 5):
        for gap in (-0.02, 0.02):
            layers, lower, upper = _instance(seed)
            C = np.array([[1.0, -1.0]])
            m = exact_min(layers, lower, upper, [(C, np.zeros(1))])
            bab = BabConfig(prefix_after_s=0.0, prefix_tighten_s=0.3, race_milp=False)
            run = _run(layers, lower, upper, C, np.array([m + gap]), bab)
            out = rs.relu_split(run, 0, 0, None, run.deadline)
            want = BabVerdict.FALSIFIED if gap > 0 else BabVerdict.PROVEN
            assert out.verdict == want, out.note


def test_prefix_replayer_is_the_prefix_forward_pass():
    layers, lower, upper = _instance(0)
    graph = cv.load_onnx(mlp_onnx(layers, input_shape=(1, 3)))
    prefix = graph.with_nodes(graph.nodes[:4])  # up to the second hidden layer's pre-activation
    x = (lower + upper) / 2
    h = np.maximum(layers[0][0] @ x + layers[0][1], 0)
    want = layers[1][0] @ h + layers[1][1]
    assert np.allclose(PrefixReplayer(prefix).run(x).reshape(-1), want, atol=1e-9)


@pytest.mark.parametrize(
    "bad",
    [
        {"prefix_layers": -1},
        {"prefix_share": 1.5},
        {"prefix_side_s": 0.0},
        {"prefix_after_s": -1.0},
        {"prefix_tighten_s": -0.5},
        {"prefix_workers": 3},
    ],
)
def test_bad_prefix_settings_are_input_errors(bad):
    with pytest.raises(InputError, match="prefix"):
        VerifyConfig(bab=BabConfig(**bad))


def test_a_timed_out_search_reports_a_lower_bound_that_holds():
    """The bound a TIMEOUT carries (what the threshold searches use) is below the exact margin
    min C y - d < 0: searches cut off at once on properties a little outside the reach."""
    bounds = []
    for seed in range(6):
        rng = np.random.default_rng(700 + seed)
        layers = random_mlp(rng, [3, 5, 4, 2])  # a cheap oracle (512 patterns)
        lower = rng.uniform(-2.0, 0.0, size=3)
        upper = lower + rng.uniform(1.0, 2.0, size=3)
        C = np.array([[1.0, -1.0]])
        m = exact_min(layers, lower, upper, [(C, np.zeros(1))])
        d = m + 0.05
        run = _run(layers, lower, upper, C, np.array([d]), BabConfig(prefix_layers=0))
        out = rs.relu_split(run, 0, 0, None, Deadline(1e-3))
        if out.verdict == BabVerdict.TIMEOUT and out.lower_bound is not None:
            assert -math.inf < out.lower_bound <= m - d + 1e-9
            bounds.append(out.lower_bound)
    assert bounds  # some search did time out with a bound


def _double(items: list) -> list:
    return [2 * x for x in items]


def _hang_in_worker(items: list) -> list:
    if os.getpid() != PARENT:  # the forked worker never answers
        time.sleep(60)
    return [2 * x for x in items]


def _fail_in_worker(items: list) -> list:
    if os.getpid() != PARENT:
        raise RuntimeError("worker failure")
    return [2 * x for x in items]


PARENT = os.getpid()


def _in_pool_worker(_) -> list:
    return sorted(in_two_processes(_double, list(range(5)), time.monotonic() + 5))


def _children() -> set[int]:
    """Live child processes of this one (Linux /proc)."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                out.add(int(entry))
    return out


def test_two_processes_split_the_work_and_leave_no_process_behind(monkeypatch):
    """Half the sides in a forked worker: every item is worked once; a worker that hangs is
    cut off at the stop (+2 s) and one that fails contributes nothing; none is left running.
    A process on one core runs everything itself."""
    monkeypatch.setattr(second_core, "cores", lambda: 2)
    before = _children()
    items = list(range(9))
    assert sorted(in_two_processes(_double, items, time.monotonic() + 5)) == _double(items)
    t0 = time.monotonic()
    assert in_two_processes(_hang_in_worker, items, time.monotonic() + 0.5) == _double(items[::2])
    assert time.monotonic() - t0 < 5
    assert in_two_processes(_fail_in_worker, items, time.monotonic() + 5) == _double(items[::2])
    assert _children() <= before
    # a pool's worker is daemonic and may not fork: everything runs in it (certify --workers)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.map(_in_pool_worker, [0]) == [_double(list(range(5)))]
    monkeypatch.setattr(second_core, "cores", lambda: 1)
    assert in_two_processes(_hang_in_worker, items, time.monotonic() + 0.5) == _double(items)

"""ReLU-splitting branch and bound against an independent brute-force oracle
(tests/nets.exact_min)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
import torch

import completeverify as cv
from completeverify.bab import relu_split as rs
from completeverify.bab.types import BabVerdict
from completeverify.bounds import compute_bounds
from completeverify.config import BabConfig, Deadline
from completeverify.context import VerifyContext

from nets import exact_min, forward_np, mlp_onnx, random_mlp, search_context

SIZES = [2, 6, 6, 2]
WIDTH = 4.0  # wide boxes leave many ReLUs unstable, so the bounds alone rarely decide
GAPS = [-0.05, -0.02, -0.01, 0.01, 0.02, 0.05]


@functools.lru_cache(maxsize=None)
def instance(seed: int, n_rows: int = 1):
    """A random MLP, its box, the spec rows C and the exact minimum of max_k (C y)_k over the
    box."""
    rng = np.random.default_rng(1000 + seed)
    layers = random_mlp(rng, SIZES)
    lower = rng.uniform(-WIDTH, 0, size=SIZES[0]).round(3)
    upper = (lower + rng.uniform(WIDTH / 3, WIDTH, size=SIZES[0])).round(3)
    C = np.array([[1.0, -1.0], [0.5, 1.0]][:n_rows])
    m = exact_min(layers, lower, upper, [(C, np.zeros(n_rows))])
    return layers, lower, upper, C, m


def build_run(
    layers,
    lower,
    upper,
    C,
    d,
    bab: BabConfig = BabConfig(),
    timeout: float = 30.0,
    attack: bool = False,
    race: bool = False,
) -> VerifyContext:
    """A VerifyContext for one case with one polytope {C y <= d}, built by hand.

    The MILP race is off unless asked for: these tests check the search itself, which a racing
    MILP could otherwise decide for it (tests/e2e/test_race.py covers the race).
    """
    net = cv.load_onnx(mlp_onnx(layers, input_shape=(1, len(lower))))
    bab = dataclasses.replace(bab, race_milp=race)
    return search_context(net, lower, upper, [(C, d)], bab, timeout, attack)


def solve(
    seed: int, gap: float, n_rows: int = 1, bab: BabConfig = BabConfig(), attack: bool = False
):
    """relu_split on the instance whose threshold sits ``gap`` above the exact minimum."""
    layers, lower, upper, C, m = instance(seed, n_rows)
    d = np.full(C.shape[0], m + gap)
    run = build_run(layers, lower, upper, C, d, bab, attack=attack)
    return rs.relu_split(run, 0, 0, None, run.deadline), (layers, lower, upper, C, d, m)


def assert_agrees(out, inst) -> None:
    """PROVEN iff the exact minimum of max_k (C y - d)_k is > 0; a FALSIFIED carries a true
    counterexample."""
    layers, lower, upper, C, d, m = inst
    unsafe_exists = m - d[0] <= 0
    if unsafe_exists:
        assert out.verdict == BabVerdict.FALSIFIED, (out.verdict, out.note)
        cex = out.counterexample
        x = np.asarray(cex.input, dtype=np.float64).reshape(-1)
        assert np.all(x >= lower) and np.all(x <= upper)
        y = np.asarray(cex.output, dtype=np.float64).reshape(-1)
        assert np.all(C @ y <= d)
        assert np.allclose(forward_np(layers, x), y, atol=1e-4)
    else:
        assert out.verdict == BabVerdict.PROVEN, (out.verdict, out.note)


def root_lb(seed: int, gap: float) -> float:
    """alpha-CROWN's root lower bound of max_k (C y - d)_k (what the bound stage alone sees)."""
    layers, lower, upper, C, m = instance(seed)
    net = cv.load_onnx(mlp_onnx(layers, input_shape=(1, len(lower))))
    lb, _ = compute_bounds(net, lower, upper, "alpha-crown", C)
    return float(np.max(lb - (m + gap)))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("gap", GAPS)
def test_agrees_with_oracle(seed, gap):
    out, inst = solve(seed, gap)
    assert_agrees(out, inst)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("gap", [-0.02, 0.02])
def test_two_row_polytope_agrees(seed, gap):
    out, inst = solve(seed, gap, n_rows=2)
    assert_agrees(out, inst)


def test_instances_need_branching():
    """The suite is not decided by bounds alone: the unsat side needs splits on most seeds."""
    undecided = [s for s in range(6) if root_lb(s, -0.02) <= 0]
    assert len(undecided) >= 3
    domains = [solve(s, -0.02)[0].domains for s in undecided]
    assert max(domains) > 3


@pytest.mark.parametrize(
    "bab",
    [
        BabConfig(
            batch_size=2, max_domains=8, milp_handoff_domains=0
        ),  # depth-first past 8 domains
        BabConfig(batch_size=4, milp_handoff_domains=2),  # early MILP hand-off
        BabConfig(stall_rounds=1, milp_handoff_domains=0),  # stall hand-off
        BabConfig(branching="width", batch_size=3),
        BabConfig(branching="babsr", batch_size=3),
        BabConfig(intermediate_refine=False, bound_iters=0, pgd_every=1),
        BabConfig(
            root_pre_iters=0, reuse_pre=False
        ),  # CROWN root bounds, full refinement in every domain
        BabConfig(root_pre_iters=50, batch_size=1),
    ],
    ids=["dfs", "handoff", "stall", "width", "babsr", "cheap", "plain-root", "tight-root"],
)
@pytest.mark.parametrize("gap", [-0.02, 0.02])
def test_search_variants_agree(bab, gap):
    for seed in range(3):
        out, inst = solve(seed, gap, bab=bab)
        assert_agrees(out, inst)


def test_depth_first_switch_and_hard_limit(caplog):
    """Past max_domains the queue goes depth-first; with no memory at all it stops (OPEN), never
    grows on."""
    caplog.set_level("DEBUG", logger="completeverify.bab.domains")  # the queue logs its switch
    # BaBSR: FSB proves this instance before the queue reaches 8 domains
    bab = BabConfig(branching="babsr", batch_size=2, max_domains=8, milp_handoff_domains=0)
    out, inst = solve(2, -0.02, bab=bab)
    assert_agrees(out, inst)
    assert any("depth-first" in r.getMessage() for r in caplog.records)
    out, inst = solve(
        2,
        -0.02,
        bab=BabConfig(batch_size=1, max_domains=1, max_memory_mb=0, milp_handoff_domains=0),
    )
    assert out.verdict in (BabVerdict.OPEN, BabVerdict.PROVEN)
    assert out.domains < 60


def test_one_relu_knife_edge_is_falsified():
    """y = 2 relu(x) - x = |x| on [-1, 1]; unsafe iff y <= 0, i.e. only at x = 0: the leaf LP finds
    it."""
    w1 = np.array([[1.0], [1.0]])
    b1 = np.array([0.0, 2.0])  # the second ReLU is stable (x + 2 > 0): one unstable ReLU
    w2 = np.array([[2.0, -1.0]])
    b2 = np.array([2.0])
    layers = [(w1, b1), (w2, b2)]
    lower, upper = np.array([-1.0]), np.array([1.0])
    C, d = np.array([[1.0]]), np.array([0.0])
    run = build_run(layers, lower, upper, C, d)
    lb, _ = compute_bounds(run.graph, lower, upper, "alpha-crown", C)
    assert lb[0] <= 0  # the bounds cannot prove it (it is false) ...
    out = rs.relu_split(run, 0, 0, None, run.deadline)
    assert out.verdict == BabVerdict.FALSIFIED, out.note
    assert abs(float(np.asarray(out.counterexample.input).reshape(-1)[0])) < 1e-6
    # ... and the same network with a threshold just below 0 is proven
    run = build_run(layers, lower, upper, C, np.array([-1e-3]))
    assert rs.relu_split(run, 0, 0, None, run.deadline).verdict == BabVerdict.PROVEN


def test_deadline_gives_timeout():
    layers, lower, upper, C, m = instance(0)
    run = build_run(layers, lower, upper, C, np.array([m - 0.01]))
    out = rs.relu_split(run, 0, 0, None, Deadline(0.0))
    assert out.verdict in (BabVerdict.TIMEOUT, BabVerdict.PROVEN)


def disagreements_on_sat_instances() -> int:
    """How many of 18 sat instances (6 seeds x 3 gaps) the search gets wrong."""
    caught = 0
    for seed in range(6):
        for gap in (0.01, 0.02, 0.05):
            out, inst = solve(seed, gap)
            try:
                assert_agrees(out, inst)
            except AssertionError:
                caught += 1
    return caught


def test_injected_wrong_split_sign_is_caught(monkeypatch):
    """With the second child's split sign wrong (+1 twice), some sat instance comes out PROVEN."""
    monkeypatch.setattr(rs, "SPLIT_SIGNS", (1, 1))
    assert disagreements_on_sat_instances() >= 1


def test_injected_relaxation_without_bias_is_caught(monkeypatch):
    """A ReLU relaxation that drops its upper line's intercept overstates the bounds: some sat
    instance is PROVEN."""
    from completeverify.bounds import relax

    original = relax.ReluRelax.backward

    def no_bias(self, a, alpha=None, beta_term=None):
        a_in, bias = original(self, a, alpha, beta_term)
        return a_in, torch.zeros_like(bias)

    monkeypatch.setattr(relax.ReluRelax, "backward", no_bias)
    assert disagreements_on_sat_instances() >= 1


@functools.lru_cache(maxsize=None)
def row_minima(seed: int) -> tuple[float, float]:
    """Exact minimum over the box of each of the two spec rows of instance(seed, 2) on its own."""
    layers, lower, upper, C, _ = instance(seed, 2)
    return tuple(exact_min(layers, lower, upper, [(C[k : k + 1], np.zeros(1))]) for k in range(2))


def solve_joint(seed: int, gaps: tuple[float, ...], bab: BabConfig = BabConfig()):
    """relu_split_joint on a case with one single-row polytope per gap (row k threshold = its
    minimum + gap)."""
    layers, lower, upper, C, _ = instance(seed, 2)
    mins = row_minima(seed)
    polys = [(C[k % 2 : k % 2 + 1], np.array([mins[k % 2] + g])) for k, g in enumerate(gaps)]
    net = cv.load_onnx(mlp_onnx(layers, input_shape=(1, len(lower))))
    run = search_context(net, lower, upper, polys, dataclasses.replace(bab, race_milp=False))
    out = rs.relu_split_joint(run, 0, list(range(len(polys))), None, run.deadline)
    return out, (layers, lower, upper, polys)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "gaps",
    [(-0.02, -0.02), (-0.02, 0.02), (0.02, -0.02), (-0.05, -0.01, 0.01), (-0.01, -0.05, -0.02)],
)
@pytest.mark.parametrize(
    "bab", [BabConfig(), BabConfig(batch_size=2, root_pre_iters=0)], ids=["default", "small"]
)
def test_joint_search_agrees_with_oracle(seed, gaps, bab):
    """Several polytopes searched together: PROVEN iff none is reachable; a counterexample lies in a
    reachable one."""
    out, (layers, lower, upper, polys) = solve_joint(seed, gaps, bab)
    if all(g < 0 for g in gaps):
        assert out.verdict == BabVerdict.PROVEN, (out.verdict, out.note)
        return
    assert out.verdict == BabVerdict.FALSIFIED, (out.verdict, out.note)
    x = np.asarray(out.counterexample.input, dtype=np.float64).reshape(-1)
    assert np.all(x >= lower) and np.all(x <= upper)
    y = forward_np(layers, x)
    k = out.counterexample.polytope
    assert gaps[k] >= 0 and np.all(polys[k][0] @ y <= polys[k][1] + 1e-6), (k, gaps)


def test_joint_search_closes_polytopes_per_domain(caplog):
    """An easy and a hard unreachable polytope together: the joint search proves both (and logs them
    together)."""
    caplog.set_level("INFO", logger=rs.__name__)
    out, _ = solve_joint(0, (-0.5, -0.01))
    assert out.verdict == BabVerdict.PROVEN
    assert any("polytopes [0, 1]" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("on_course", [True, False])
def test_queue_handoff_waits_for_a_bound_on_course(monkeypatch, on_course):
    """A queue past milp_handoff_domains goes to the MILP only when the global lower bound's
    trend does not reach 0 in time (bab/progress.py); either way the verdicts agree with the
    oracle, and a search on course decides by itself."""
    from completeverify.bab import progress

    monkeypatch.setattr(progress.BoundTrend, "reaches_zero", lambda *a: on_course)
    bab = BabConfig(batch_size=2, milp_handoff_domains=2, stall_rounds=0)
    notes = []
    for seed in range(6):
        for gap in (-0.02, 0.02):
            out, inst = solve(seed, gap, bab=bab)
            assert_agrees(out, inst)
            notes.append(out.note)
    handed = sum("milp after" in n for n in notes)
    assert handed == 0 if on_course else handed >= 2


FSB = BabConfig(branching="fsb", fsb_candidates=4)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("gap", [-0.02, 0.01, 0.02])
def test_fsb_agrees_with_oracle(seed, gap):
    """Filtered smart branching changes which domains exist, never the verdict."""
    out, inst = solve(seed, gap, bab=FSB)
    assert_agrees(out, inst)


def test_fsb_splits_only_free_unstable_neurons(monkeypatch):
    """Every neuron FSB picks is unstable in its domain and not split there yet (None only where
    BaBSR finds no such neuron either); with k = 1 it picks exactly BaBSR's neuron."""
    from completeverify.bab.branching import choose

    seen = []
    original = rs.fsb_choose

    def spy(engine, fb, score, k):
        picks = original(engine, fb, score, k)
        seen.append((k, fb, picks, choose(score)))
        return picks

    monkeypatch.setattr(rs, "fsb_choose", spy)
    for k in (1, 4):
        out, inst = solve(2, -0.02, bab=dataclasses.replace(FSB, fsb_candidates=k))
        assert_agrees(out, inst)
    assert sum(len(p) for _, _, p, _ in seen) > 20
    nodes = cv.load_onnx(mlp_onnx(instance(2)[0], input_shape=(1, SIZES[0]))).nodes
    for k, fb, picks, babsr in seen:
        assert len(picks) == len(babsr)
        assert k > 1 or picks == babsr
        for b, pick in enumerate(picks):
            if pick is None:
                assert babsr[b] is None
                continue
            r, n = pick
            lo, hi = fb.pre[nodes[r].inputs[0]]
            assert float(lo[b, n]) < 0 < float(hi[b, n])
            assert r not in fb.splits or int(fb.splits[r][b, n]) == 0
    assert any(p != c for k, _, p, c in seen if k > 1)  # k = 4 does change some choices


def test_fsb_needs_fewer_domains_than_babsr_here():
    """On this unsat instance bounding the candidates' children picks better splits than the
    BaBSR estimate (measured: BaBSR 67 domains, FSB k=4 19); k = 1 is BaBSR itself."""
    babsr, inst = solve(2, -0.02, bab=BabConfig(branching="babsr"))
    fsb, _ = solve(2, -0.02, bab=FSB)
    one, _ = solve(2, -0.02, bab=dataclasses.replace(FSB, fsb_candidates=1))
    for out in (babsr, fsb, one):
        assert_agrees(out, inst)
    assert one.domains == babsr.domains
    assert fsb.domains < 0.5 * babsr.domains, (fsb.domains, babsr.domains)


def test_fsb_ranks_a_candidate_by_its_better_child(monkeypatch):
    """A split that closes one child (margin > 0) beats one that raises both a little; between
    equal better children the higher sum wins; a candidate that is not free never wins."""
    from completeverify.bab import fsb

    margins = torch.tensor(
        [
            [[-1.0, -1.0], [0.5, -2.0], [-0.1, -0.1]],  # candidate 1 closes a child
            [[0.2, -1.0], [0.2, -0.5], [-3.0, -3.0]],  # tie at 0.2: candidate 1 by its sum
            [[9.0, 9.0], [-1.0, -1.0], [-2.0, -2.0]],  # candidate 0 is not free
        ],
        dtype=torch.float64,
    )
    valid = torch.tensor([[True] * 3, [True] * 3, [False, True, True]])
    node_pos = torch.zeros(3, 3, dtype=torch.long)
    neuron = torch.arange(3).repeat(3, 1)
    monkeypatch.setattr(fsb, "child_scores", lambda *a: (margins, node_pos, neuron, valid, [7]))
    picks = fsb.fsb_choose(None, None, {7: torch.zeros(3, 3)}, 3)
    assert picks == [(7, 1), (7, 1), (7, 1)]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("gaps", [(-0.3, -0.02, -0.02), (-0.3, -0.02, 0.02), (0.02, -0.3, -0.02)])
def test_joint_search_with_polytopes_of_different_sizes_agrees(seed, gaps, monkeypatch):
    """A two-row polytope and two one-row ones searched together: domains are bounded only for
    the rows of their open polytopes (bab/relu_split.open_rows), so batches mix domains of one to
    four rows; the verdict is the oracle's either way, and some batch skipped excluded rows."""
    from completeverify.bounds.mixed import MixedPrecision

    widths: list[int] = []
    compute = MixedPrecision.compute

    def spy(self, lower, upper, C, *args, **kwargs):
        widths.append(int(C.shape[-2]))
        return compute(self, lower, upper, C, *args, **kwargs)

    monkeypatch.setattr(MixedPrecision, "compute", spy)
    layers, lower, upper, C, m_both = instance(seed, 2)
    mins = row_minima(seed)
    polys = [
        (C, np.full(2, m_both + gaps[0])),  # reachable iff min max(C y) <= m_both + gap
        (C[:1], np.array([mins[0] + gaps[1]])),
        (C[1:], np.array([mins[1] + gaps[2]])),
    ]
    net = cv.load_onnx(mlp_onnx(layers, input_shape=(1, len(lower))))
    bab = BabConfig(race_milp=False, prefix_layers=0)
    run = search_context(net, lower, upper, polys, bab)
    out = rs.relu_split_joint(run, 0, [0, 1, 2], None, run.deadline)
    if all(g < 0 for g in gaps):
        assert out.verdict == BabVerdict.PROVEN, (out.verdict, out.note)
    else:
        assert out.verdict == BabVerdict.FALSIFIED, (out.verdict, out.note)
        x = np.asarray(out.counterexample.input, dtype=np.float64).reshape(-1)
        assert np.all(x >= lower) and np.all(x <= upper)
        k = out.counterexample.polytope
        y = forward_np(layers, x)
        assert gaps[k] >= 0 and np.all(polys[k][0] @ y <= polys[k][1] + 1e-6), (k, gaps)
    if seed == 0 and all(g < 0 for g in gaps):
        assert min(widths) < 4, widths  # the easy polytope closed first: fewer rows after

"""The ReLU-splitting domain queue (bab/domains.py): order, global bound, and tightening the
queued domains' intermediate bounds in place."""

from __future__ import annotations

import math

import pytest
import torch

from completeverify.bab.domains import Domain, DomainQueue, open_rows, row_groups, stack_splits

SLICES = (slice(0, 1), slice(1, 2))


def _domain(lb, depth, pre) -> Domain:
    return Domain(
        torch.tensor(lb, dtype=torch.float64),
        depth,
        {},
        pre,
        {},
        {},
        torch.ones(len(SLICES), dtype=torch.bool),
        SLICES,
    )


def _pre(lo, hi):
    return {3: (torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64))}


def test_best_first_pops_the_lowest_bound_and_global_lb_is_the_minimum():
    q = DomainQueue()
    for lb, depth in (([0.5, -1.0], 1), ([-0.2, 0.3], 2), ([-3.0, 2.0], 1)):
        q.push(_domain(lb, depth, _pre([-1.0], [1.0])))
    assert q.global_lb() == -3.0  # a domain's key: its worst polytope
    assert [d.key for d in q.pop_batch(2)] == [-3.0, -1.0]
    q.set_depth_first(True)
    assert q.global_lb() == -0.2 and len(q) == 1
    assert DomainQueue().global_lb() == math.inf


def test_intersect_pre_tightens_never_loosens_and_siblings_keep_sharing():
    shared = _pre([-2.0, -1.0, 0.5], [1.0, 3.0, 2.0])
    a, b = _domain([-1.0, -1.0], 2, shared), _domain([-1.0, -1.0], 2, shared)
    c = _domain([-0.5, -0.5], 3, _pre([-0.5, -4.0, 0.0], [0.2, 1.0, 1.0]))
    q = DomainQueue()
    for d in (a, b, c):
        q.push(d)
    root = {
        3: (torch.tensor([-1.0, -5.0, 0.0]), torch.tensor([0.5, 2.0, 5.0])),
        9: (torch.zeros(2), torch.ones(2)),
    }
    q.intersect_pre(root)
    assert a.pre is b.pre and a.pre is not shared  # one new dict for the siblings
    lo, hi = a.pre[3]
    assert lo.tolist() == [-1.0, -1.0, 0.5] and hi.tolist() == [0.5, 2.0, 2.0]
    assert lo.dtype == torch.float64
    lo, hi = c.pre[3]
    assert lo.tolist() == [-0.5, -4.0, 0.0] and hi.tolist() == [0.2, 1.0, 1.0]
    assert shared[3][0].tolist() == [-2.0, -1.0, 0.5]  # the old dict is not mutated
    assert set(a.pre) == {3}  # nodes the domains do not bound are not added


def test_cap_follows_the_memory_budget_and_never_drops_below_a_batch():
    q = DomainQueue()
    assert q.cap(8, 1000, 1) == 1000  # empty: max_domains
    d = _domain([0.0, 0.0], 1, _pre([0.0] * 4096, [1.0] * 4096))  # ~ 64 KiB of bounds
    q.push(d)
    per = d.nbytes() // 2
    assert q.cap(8, 10**9, 1) == max(8, 2**20 // per)
    assert q.cap(10**6, 10**9, 1) == 10**6


def test_numpy_bounds_round_trip_and_tighten_without_mutating():
    import numpy as np

    from completeverify.bounds.pre import pre_from_numpy, tightened

    pre = {2: (np.array([-1.0, -2.0]), np.array([1.0, 0.5]))}
    as_torch = pre_from_numpy(pre)
    assert as_torch[2][0].dtype == torch.float64 and as_torch[2][1].tolist() == [1.0, 0.5]
    assert pre_from_numpy(None) == {}
    by = {2: (torch.tensor([-0.5, -3.0]), torch.tensor([2.0, 0.25])), 7: as_torch[2]}
    out = tightened(pre, by)
    assert out[2][0].tolist() == [-0.5, -2.0] and out[2][1].tolist() == [1.0, 0.25]
    assert set(out) == {2} and pre[2][0].tolist() == [-1.0, -2.0]


@pytest.mark.parametrize(
    "counts",
    [[9] * 40, [1] * 200 + [2] * 50 + [9] * 6, [1, 2, 3, 4, 5, 6, 7, 8, 9] * 28, [3, 1, 3, 2, 1]],
)
def test_row_groups_cover_the_batch_once_and_never_cost_more(counts):
    """Each domain lands in exactly one group, groups are ranges of row counts, at most three,
    and the padded work (domains x most rows of the group) is never above one batch's."""
    groups = row_groups(counts)
    assert 1 <= len(groups) <= 3
    assert sorted(i for g in groups for i in g) == list(range(len(counts)))
    ranges = [(min(counts[i] for i in g), max(counts[i] for i in g)) for g in groups]
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))
    work = sum(len(g) * hi for g, (_, hi) in zip(groups, ranges))
    assert work <= len(counts) * max(counts)
    if len(set(counts)) == 1:
        assert len(groups) == 1


def test_row_groups_split_off_the_few_wide_domains():
    counts = [1] * 250 + [9] * 6
    groups = row_groups(counts)
    assert [len(g) for g in groups] == [250, 6]
    assert row_groups([]) == []


def test_open_rows_lists_each_domains_rows_padded_with_its_first():
    slices = (slice(0, 2), slice(2, 3), slice(3, 6))
    open_ = torch.tensor([[True, False, True], [False, True, False], [True, True, True]])
    rows = open_rows(open_, slices, 6)
    assert rows.tolist() == [[0, 1, 3, 4, 5, 0], [2, 2, 2, 2, 2, 2], [0, 1, 2, 3, 4, 5]]


def test_stack_splits_fills_missing_nodes_with_zeros():
    def dom(splits):
        return Domain(torch.zeros(1), 0, splits, {}, {}, {}, torch.ones(1, dtype=torch.bool), ())

    a = dom({1: torch.tensor([1, 0, -1], dtype=torch.int8)})
    b = dom({3: torch.tensor([0, 1], dtype=torch.int8)})
    out = stack_splits([a, b], [0, 3, 0, 2])
    assert list(out) == [1, 3]
    assert out[1].tolist() == [[1, 0, -1], [0, 0, 0]] and out[3].tolist() == [[0, 0], [0, 1]]


def test_unstable_count_counts_bounds_straddling_zero():
    from completeverify.bounds.pre import unstable_count

    pre = {
        1: (torch.tensor([-1.0, 0.0, -2.0, 1.0]), torch.tensor([1.0, 3.0, -0.5, 2.0])),
        3: (torch.tensor([-1.0, -1.0]), torch.tensor([0.5, 0.0])),
    }
    # only strictly l < 0 < u: zero-width sides at 0 are stable
    assert unstable_count(pre) == 2
    assert unstable_count(pre, [1]) == 1
    assert unstable_count(pre, [3, 5]) == 1

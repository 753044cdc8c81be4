"""The ReLU-splitting domain queue (bab/domains.py): order, global bound, and tightening the
queued domains' intermediate bounds in place."""

from __future__ import annotations

import math

import torch

from completeverify.bab.domains import Domain, DomainQueue

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

"""The sub-domains of ReLU-splitting branch and bound and the queue that orders them.

A sub-domain is the input box plus sign constraints on some ReLU pre-activations, with the
bounds and warm-start state its parent handed down (bab/relu_split.py creates and bounds them).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

Box = tuple[torch.Tensor, torch.Tensor]


def stack_state(
    doms: list[Domain], field: str, m: int, sizes: list[int]
) -> dict[int, torch.Tensor]:
    """Batch one warm-start dict ("alphas" or "betas") of the domains as float64 (B, m, size);
    domains without a node get zeros there.  sizes: every graph node's size."""
    keys = sorted({r for d in doms for r in getattr(d, field)})
    out = {}
    for r in keys:
        zero = torch.zeros(m, sizes[r], dtype=torch.float32)
        out[r] = torch.stack([getattr(d, field).get(r, zero) for d in doms]).to(torch.float64)
    return out


def stack_splits(doms: list[Domain], sizes: list[int]) -> dict[int, torch.Tensor]:
    """Batch the domains' split signs: relu node -> int8 (B, size), zeros where a domain has no
    split at that node.  sizes: every graph node's size."""
    out = {}
    for r in sorted({r for d in doms for r in d.splits}):
        zero = torch.zeros(sizes[r], dtype=torch.int8)
        out[r] = torch.stack([d.splits.get(r, zero) for d in doms])
    return out


def open_row_mask(open_: torch.Tensor, slices: tuple[slice, ...], m: int) -> torch.Tensor:
    """(B, m) bool: the spec rows of each domain's open polytopes, for open_ (B, P)."""
    mask = torch.zeros(open_.shape[0], m, dtype=torch.bool)
    for p, s in enumerate(slices):
        mask[:, s] = open_[:, p : p + 1]
    return mask


def open_rows(open_: torch.Tensor, slices: tuple[slice, ...], m: int) -> torch.Tensor:
    """Per domain the spec rows of its open polytopes, (B, K) for open_ (B, P): K is the most any
    domain has, and shorter lists repeat their first row (a domain with every polytope open, as
    a search starts, gets 0..m-1)."""
    mask = open_row_mask(open_, slices, m)
    counts = mask.sum(1)
    k = max(1, int(counts.max()))
    idx = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :k]
    return torch.where(torch.arange(k)[None] < counts[:, None], idx, idx[:, :1])


def gather_rows(t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows ``rows`` (B, K) of each domain's (B, m, size) warm-start tensor: (B, K, size)."""
    return t.gather(1, rows[:, :, None].expand(-1, -1, t.shape[2]))


def child_state(
    old: dict[int, torch.Tensor], new: dict[int, torch.Tensor], b: int, rows: torch.Tensor, m: int
) -> dict[int, torch.Tensor]:
    """A parent's (m, size) float32 warm-start tensors with the rows just optimised (domain b of
    the batch state ``new``, its rows ``rows`` (K,) of the m, a row possibly listed twice)
    replaced."""
    out = {}
    whole = rows.numel() == m and bool((rows == torch.arange(m)).all())
    for r, v in new.items():
        if whole:
            out[r] = v[b].to(torch.float32).clone()
            continue
        full = old[r].clone() if r in old else torch.zeros(m, v.shape[-1], dtype=torch.float32)
        full[rows] = v[b].to(torch.float32)
        out[r] = full
    return out


def row_groups(counts: list[int], max_groups: int = 3, call_share: float = 0.1) -> list[list[int]]:
    """Split a batch whose domains need counts[i] spec rows each into at most max_groups
    batches (positions into counts), each bounded for as many rows as its largest domain needs:
    the split with the least padded work, sum of len(group) x max rows, where each batch after
    the first costs call_share of the unsplit batch's work (calls have overheads)."""
    if not counts:
        return []
    values = sorted(set(counts))
    freq = [sum(1 for c in counts if c == v) for v in values]
    t = len(values)
    extra = call_share * len(counts) * values[-1]
    # best[g][j]: least cost of covering values[:j] with g groups; cut[g][j]: where the last starts
    inf = math.inf
    best = [[inf] * (t + 1) for _ in range(max_groups + 1)]
    cut = [[0] * (t + 1) for _ in range(max_groups + 1)]
    best[0][0] = 0.0
    for g in range(1, max_groups + 1):
        for j in range(1, t + 1):
            n = 0
            for i in range(j - 1, -1, -1):  # last group: values[i:j]
                n += freq[i]
                c = best[g - 1][i] + n * values[j - 1] + (extra if g > 1 else 0.0)
                if c < best[g][j]:
                    best[g][j], cut[g][j] = c, i
    g = min(range(1, max_groups + 1), key=lambda k: best[k][t])
    bounds, j = [], t
    while g > 0:
        i = cut[g][j]
        bounds.append((values[i], values[j - 1]))
        j, g = i, g - 1
    return [[k for k, c in enumerate(counts) if a <= c <= b] for a, b in reversed(bounds)]


@dataclass
class Domain:
    """One sub-domain: split signs, intermediate bounds, warm-start state and its row bounds."""

    lb: torch.Tensor  # (m,) valid lower bounds of C y - d on the domain (inherited from ancestors)
    depth: int
    splits: dict[int, torch.Tensor]  # relu node -> int8 (size,) of +1 / -1 / 0
    pre: dict[int, Box]  # pre-activation node -> (lower (size,), upper (size,)) float64
    alphas: dict[int, torch.Tensor]  # relu node -> (m, size) float32
    betas: dict[int, torch.Tensor]
    open: torch.Tensor  # (P,) bool: polytopes not yet excluded on this domain
    slices: tuple[slice, ...]  # each polytope's rows (shared by all domains of a search)
    # pre-activation node of the latest split (-1: none); earlier nodes keep their bounds
    split_pre: int = -1

    @property
    def key(self) -> float:
        """The domain's bound: min over its open polytopes of max_k lb_k (closed once this is >
        0)."""
        vals = [float(self.lb[s].max()) for p, s in enumerate(self.slices) if bool(self.open[p])]
        v = min(vals) if vals else math.inf
        return v if not math.isnan(v) else -math.inf

    def nbytes(self) -> int:
        """Approximate memory held by this domain's own tensors."""
        ts = list(self.splits.values()) + [t for b in self.pre.values() for t in b] + [self.open]
        ts += list(self.alphas.values()) + list(self.betas.values())
        return sum(t.element_size() * t.numel() for t in ts)


class DomainQueue:
    """Best-first heap of domains that switches to deepest-first past a size cap."""

    def __init__(self) -> None:
        """An empty best-first queue."""
        self.heap: list[tuple[float, float, int, Domain]] = []
        self.count = itertools.count()
        self.depth_first = False

    def _entry(self, d: Domain) -> tuple[float, float, int, Domain]:
        """Heap key: (lower bound, -depth) best-first, (-depth, lower bound) depth-first."""
        if self.depth_first:
            return (-d.depth, d.key, next(self.count), d)
        return (d.key, -d.depth, next(self.count), d)

    def push(self, d: Domain) -> None:
        """Add one domain."""
        heapq.heappush(self.heap, self._entry(d))

    def pop_batch(self, n: int) -> list[Domain]:
        """Up to n domains in priority order."""
        return [heapq.heappop(self.heap)[3] for _ in range(min(n, len(self.heap)))]

    def set_depth_first(self, flag: bool) -> None:
        """Switch the order (re-keys the heap when it changes)."""
        if flag != self.depth_first:
            log.debug(
                "relu_split: queue of %d goes %s",
                len(self.heap),
                "depth-first" if flag else "best-first",
            )
            self.depth_first = flag
            self.heap = [self._entry(e[3]) for e in self.heap]
            heapq.heapify(self.heap)

    def global_lb(self) -> float:
        """Smallest domain bound in the queue (+inf when empty)."""
        if not self.heap:
            return math.inf
        if not self.depth_first:
            return self.heap[0][0]
        return min(e[1] for e in self.heap)

    def __len__(self) -> int:
        """Number of queued domains."""
        return len(self.heap)

    def cap(self, batch_size: int, max_domains: int, max_memory_mb: int) -> int:
        """Queue size past which a search goes depth-first: max_domains, or fewer when the
        domains would pass max_memory_mb (siblings share pre/alpha/beta), at least batch_size."""
        sample = next((e[3] for e in self.heap), None)
        per = max(1, sample.nbytes() // 2 if sample is not None else 1)
        return max(batch_size, min(max_domains, max_memory_mb * 2**20 // per))

    def intersect_pre(self, bounds: dict[int, Box]) -> None:
        """Tighten every queued domain's intermediate bounds by ``bounds`` (node -> (lower, upper)
        (size,)), valid on the whole box and so on each domain; siblings keep sharing one dict."""
        done: dict[int, tuple[dict, dict]] = {}  # id(old) -> (old, kept alive: ids stay unique)
        for e in self.heap:
            d = e[3]
            key = id(d.pre)
            if key not in done:
                new = dict(d.pre)
                for j, (lo, hi) in d.pre.items():
                    if j in bounds:
                        b_lo, b_hi = (t.to(lo.device, lo.dtype) for t in bounds[j])
                        new[j] = (torch.maximum(lo, b_lo), torch.minimum(hi, b_hi))
                done[key] = (d.pre, new)
            d.pre = done[key][1]

"""ReLU-splitting branch and bound with beta-CROWN bounds and exact LP/MILP leaves.

A sub-domain is the input box plus sign constraints on some ReLU pre-activations.  Sub-domains
wait in a priority queue, worst lower bound first (best-first) or deepest first once the queue
outgrows its memory budget; they are popped in batches so that one BoundEngine.compute call
(beta-CROWN, warm-started from each parent's alpha/beta and intermediate bounds) serves many.
A sub-domain is closed when some spec row has a positive lower bound, when its split
constraints contradict its intermediate bounds, or by an exact LP/MILP once no free unstable
ReLU is left (completeness never rests on bounds alone).  The minimisers of the linear lower
bounds, and now and then PGD seeded by them, are replayed in the ONNX model (verdict.confirm):
only a replayed counterexample falsifies.  A queue that grows too large or a global lower bound
that stops improving hands the whole pair to the exact MILP on the tightest root bounds.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..attack import pgd
from ..bounds import AlphaState, BoundConfig, BoundEngine, Splits
from ..config import Deadline
from ..verdict import Counterexample, confirm
from .branching import choose, scores
from .types import BabOutcome, BabVerdict

log = logging.getLogger(__name__)

Box = tuple[torch.Tensor, torch.Tensor]
CANDIDATE_SLACK = 1e-6  # graph-forward pre-filter before a (decisive) ONNX replay
REPLAYS_PER_ROUND = 3
LOG_EVERY_S = 2.0
SPLIT_SIGNS = (1, -1)  # the two children of a split: pre-activation >= 0, <= 0


@dataclass
class Domain:
    """One sub-domain: split signs, intermediate bounds, warm-start state and its row bounds."""

    lb: torch.Tensor  # (m,) valid lower bounds of C y - d on the domain (inherited from ancestors)
    depth: int
    splits: dict[int, torch.Tensor]  # relu node -> int8 (size,) of +1 / -1 / 0
    pre: dict[int, Box]  # pre-activation node -> (lower (size,), upper (size,)) float64
    alphas: dict[int, torch.Tensor]  # relu node -> (m, size) float32
    betas: dict[int, torch.Tensor]

    @property
    def key(self) -> float:
        """The domain's bound: max_k lb_k (the pair is proven on it once this is > 0)."""
        v = float(self.lb.max()) if self.lb.numel() else -math.inf
        return v if math.isfinite(v) else -math.inf

    def nbytes(self) -> int:
        """Approximate memory held by this domain's own tensors."""
        ts = list(self.splits.values()) + [t for b in self.pre.values() for t in b]
        ts += list(self.alphas.values()) + list(self.betas.values())
        return sum(t.element_size() * t.numel() for t in ts)


class _Queue:
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
            log.debug("relu_split: queue of %d goes %s", len(self.heap), "depth-first" if flag else "best-first")
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


class _Search:
    """State of one relu_split call."""

    def __init__(self, run, case_index: int, poly_index: int, deadline: Deadline) -> None:
        """Spec tensors, bound engines and counters for the pair."""
        self.run = run
        self.ci = case_index
        self.case = run.prop.cases[case_index]
        self.poly = self.case.polytopes[poly_index]
        self.cfg = run.config.bab
        self.deadline = deadline
        self.graph = run.graph
        self.C = torch.as_tensor(np.asarray(self.poly.C, dtype=np.float64))
        self.d = torch.as_tensor(np.asarray(self.poly.d, dtype=np.float64).reshape(-1))
        self.m = int(self.C.shape[0])
        self.lo = torch.as_tensor(np.asarray(self.case.lower, dtype=np.float64).reshape(1, -1))
        self.hi = torch.as_tensor(np.asarray(self.case.upper, dtype=np.float64).reshape(1, -1))
        self.root_engine = BoundEngine(self.graph)  # replaced by a cheaper one when root bounds are given
        self.engine = BoundEngine(self.graph, BoundConfig(alpha_iters=self.cfg.bound_iters,
                                                          intermediate_crown=self.cfg.intermediate_refine))
        self.done = 0  # domains bounded
        self.leaves = 0  # domains decided exactly
        self.open_leaves = 0  # exact leaves without a verdict (knife edge)
        self.root_pre: dict[int, tuple[np.ndarray, np.ndarray]] | None = None
        self._solver = None

    # ------------------------------------------------------------------ bounding
    def bound(self, doms: list[Domain], root: bool = False):
        """beta-CROWN on a batch of domains (warm-started); returns the BoundResult."""
        b = len(doms)
        lo, hi = self.lo.expand(b, -1), self.hi.expand(b, -1)
        split_keys = sorted({r for d in doms for r in d.splits})
        splits = Splits({r: torch.stack([d.splits[r] if r in d.splits else
                                         torch.zeros(self.graph.nodes[r].size, dtype=torch.int8) for d in doms])
                         for r in split_keys})
        pre = {j: (torch.stack([d.pre[j][0] for d in doms]), torch.stack([d.pre[j][1] for d in doms]))
               for j in (doms[0].pre if all(set(d.pre) == set(doms[0].pre) for d in doms) else {})}
        warm = AlphaState(self._stack_state(doms, "alphas"), self._stack_state(doms, "betas"))
        engine = self.root_engine if root else self.engine
        return engine.compute(lo, hi, self.C, -self.d, method="alpha-crown", splits=splits, pre=pre or None,
                              warm=warm, deadline=self.deadline.end)

    def _stack_state(self, doms: list[Domain], field: str) -> dict[int, torch.Tensor]:
        """Batch one of the warm-start dicts; domains without a node get zeros there."""
        keys = sorted({r for d in doms for r in getattr(d, field)})
        out = {}
        for r in keys:
            size = self.graph.nodes[r].size
            zero = torch.zeros(self.m, size, dtype=torch.float32)
            out[r] = torch.stack([getattr(d, field).get(r, zero) for d in doms]).to(torch.float64)
        return out

    # ------------------------------------------------------------------ exact decisions
    def solver(self):
        """The configured MILP backend (created once)."""
        if self._solver is None:
            from ..solvers import get_solver

            self._solver = get_solver(self.run.config.solver)
        return self._solver

    def exact(self, pre: dict, splits: dict | None) -> tuple[str, Counterexample | None]:
        """Decide the pair on a domain by LP/MILP: 'proven' | 'cex' | 'unknown' | 'timeout'."""
        from ..milp.decide import Outcome, solve_pair
        from ..milp.encoder import encode

        mcfg = self.run.config.milp
        try:
            enc = encode(self.graph, self.case.lower, self.case.upper, pre, self.poly.C, self.poly.d,
                         splits=splits, widening=mcfg.bound_widening)
        except ValueError as err:
            if "empty pre-activation bounds" in str(err):
                return "proven", None  # the split constraints contradict sound bounds
            raise
        t0 = time.monotonic()
        try:
            ans = solve_pair(enc, self.solver(), self.deadline.remaining(), mcfg.margin, mcfg.threads)
            if ans.outcome == Outcome.CANDIDATE:
                cex = confirm(self.run.replayer, ans.x_input, self.case, self.ci)
                if cex is None:  # knife edge: solve to optimality, then polish with PGD
                    ans = solve_pair(enc, self.solver(), self.deadline.remaining(), mcfg.margin, mcfg.threads,
                                     stop_below=None)
                    if ans.outcome == Outcome.CANDIDATE:
                        cex = confirm(self.run.replayer, ans.x_input, self.case, self.ci)
                        if cex is None:
                            cex = self.attack(ans.x_input[None], 2.0)
                if cex is not None:
                    return "cex", cex
            if ans.outcome == Outcome.PROVEN:
                return "proven", None
            if ans.outcome == Outcome.TIMEOUT or self.deadline.expired():
                return "timeout", None
            return "unknown", None
        finally:
            self.run.timed("bab_exact", t0)

    # ------------------------------------------------------------------ falsification
    def replay_minimisers(self, x_lb: torch.Tensor | None, idx: list[int]) -> Counterexample | None:
        """Replay the lower-bound minimisers of domains idx whose network value looks unsafe."""
        if x_lb is None or not idx:
            return None
        xs = x_lb[idx].reshape(-1, x_lb.shape[-1])
        with torch.no_grad():
            y = self.graph.forward(xs.reshape(xs.shape[0], *self.graph.input_shape)).reshape(xs.shape[0], -1)
            viol = (y.to(torch.float64) @ self.C.T - self.d).max(1).values
        order = torch.argsort(viol)
        for k in order[:REPLAYS_PER_ROUND].tolist():
            if not float(viol[k]) <= CANDIDATE_SLACK:
                break
            cex = confirm(self.run.replayer, xs[k].numpy(), self.case, self.ci)
            if cex is not None:
                return cex
        return None

    def attack(self, starts: np.ndarray, at_most: float) -> Counterexample | None:
        """Short PGD from the given starts (plus a few random ones); replays the best candidates."""
        acfg = self.run.config.attack
        if not acfg.enabled or self.deadline.expired():
            return None
        small = dataclasses.replace(acfg, restarts=min(acfg.restarts, 8), steps=min(acfg.steps, 30))
        t0 = time.monotonic()
        cands = pgd(self.graph, self.case.lower, self.case.upper, [self.poly], small,
                    self.deadline.sub(0.05, at_most), self.run.rng, extra_starts=starts)
        self.run.timed("bab_pgd", t0)
        for x in cands[:REPLAYS_PER_ROUND]:
            cex = confirm(self.run.replayer, x, self.case, self.ci)
            if cex is not None:
                return cex
        return None

    # ------------------------------------------------------------------ one batch
    def process(self, doms: list[Domain], queue: _Queue, root: bool = False
                ) -> tuple[str, Counterexample | None, list[int], torch.Tensor | None]:
        """Bound a batch, close what it can, branch the rest; ('', None, open idx, x_lb) or a verdict."""
        res = self.bound(doms, root)
        self.done += len(doms)
        if root:
            self.root_pre = {j: (lo[0].numpy().copy(), hi[0].numpy().copy()) for j, (lo, hi) in res.pre.items()}
        inherited = torch.stack([d.lb for d in doms])
        lb = torch.where(torch.isfinite(res.lb), res.lb, torch.full_like(res.lb, -math.inf))
        lb = torch.maximum(lb, inherited)  # a sub-domain keeps every bound of its ancestors
        empty = torch.zeros(len(doms), dtype=torch.bool)
        for lo_j, hi_j in res.pre.values():
            empty |= (lo_j > hi_j).any(1)
        proven = empty | (lb.max(1).values > 0)
        open_idx = [b for b in range(len(doms)) if not bool(proven[b])]
        if not open_idx:
            return "", None, [], res.x_lb
        cex = self.replay_minimisers(res.x_lb, open_idx)
        if cex is not None:
            return "cex", cex, open_idx, res.x_lb
        sel = torch.tensor(open_idx)
        pre_open = {j: (lo[sel], hi[sel]) for j, (lo, hi) in res.pre.items()}
        split_open = {r: torch.stack([doms[b].splits[r] if r in doms[b].splits else
                                      torch.zeros(self.graph.nodes[r].size, dtype=torch.int8) for b in open_idx])
                      for r in {r for b in open_idx for r in doms[b].splits}}
        best_row = lb[sel].argmax(1)
        picks = choose(scores(self.engine, pre_open, split_open, self.C[best_row], self.cfg.branching))
        state = res.state or AlphaState()
        for pos, b in enumerate(open_idx):
            parent = doms[b]
            pre_b = {j: (lo[pos].clone(), hi[pos].clone()) for j, (lo, hi) in pre_open.items()}
            if picks[pos] is None:  # every unstable ReLU is split: the domain is an LP
                verdict, cex = self.leaf(parent, pre_b)
                if verdict in ("cex", "timeout"):
                    return verdict, cex, open_idx, res.x_lb
                continue
            alphas = {r: a[b].to(torch.float32).clone() for r, a in state.alphas.items()}
            betas = {r: v[b].to(torch.float32).clone() for r, v in state.betas.items()}
            r, k = picks[pos]
            for sign in SPLIT_SIGNS:
                child_splits = dict(parent.splits)
                row = child_splits.get(r, torch.zeros(self.graph.nodes[r].size, dtype=torch.int8)).clone()
                row[k] = sign
                child_splits[r] = row
                queue.push(Domain(lb[b].clone(), parent.depth + 1, child_splits, pre_b, alphas, betas))
        return "", None, open_idx, res.x_lb

    def leaf(self, dom: Domain, pre: dict[int, Box]) -> tuple[str, Counterexample | None]:
        """Decide a domain with no free unstable ReLU exactly (an LP with its split constraints)."""
        self.leaves += 1
        pre_np = {j: (lo.numpy(), hi.numpy()) for j, (lo, hi) in pre.items()}
        splits_np = {r: s.numpy().astype(np.int64) for r, s in dom.splits.items()}
        verdict, cex = self.exact(pre_np, splits_np)
        if verdict == "unknown":
            self.open_leaves += 1
        return verdict, cex

    # ------------------------------------------------------------------ main loop
    def handoff(self, why: str) -> BabOutcome:
        """Decide the whole pair with the exact MILP on the tightest root bounds."""
        log.info("relu_split: handing off to the MILP (%s) after %d domains, %.1f s left",
                 why, self.done, self.deadline.remaining())
        assert self.root_pre is not None
        verdict, cex = self.exact(self.root_pre, None)
        note = f"milp after {self.done} domains ({why})"
        return self.outcome(verdict, cex, note)

    def outcome(self, verdict: str, cex: Counterexample | None, note: str) -> BabOutcome:
        """Map an exact-stage verdict to a BabOutcome."""
        table = {"proven": BabVerdict.PROVEN, "cex": BabVerdict.FALSIFIED, "timeout": BabVerdict.TIMEOUT,
                 "unknown": BabVerdict.OPEN}
        v = table[verdict]
        if v == BabVerdict.OPEN and self.deadline.expired():
            v = BabVerdict.TIMEOUT
        return BabOutcome(v, cex, self.done, note)

    def search(self, pre: dict | None) -> BabOutcome:
        """The whole branch and bound for the pair."""
        if self.m == 0:  # no rows: every output is unsafe
            cex = confirm(self.run.replayer, (self.case.lower + self.case.upper) / 2, self.case, self.ci)
            return BabOutcome(BabVerdict.FALSIFIED if cex else BabVerdict.OPEN, cex, 0, "empty polytope")
        root_pre = {} if pre is None else {
            int(j): (torch.as_tensor(np.asarray(lo, dtype=np.float64).reshape(-1)),
                     torch.as_tensor(np.asarray(hi, dtype=np.float64).reshape(-1))) for j, (lo, hi) in pre.items()}
        if root_pre:  # the bound stage already ran CROWN on every intermediate node: only alpha is left to do
            self.root_engine = BoundEngine(self.graph, BoundConfig(intermediate_crown=False))
        root = Domain(torch.full((self.m,), -math.inf, dtype=torch.float64), 0, {}, root_pre, {}, {})
        queue = _Queue()
        verdict, cex, _, _ = self.process([root], queue, root=True)
        if verdict:
            return self.outcome(verdict, cex, "relu split (root)")
        cap = self._cap(queue)
        best_glb, stall, rounds, per_domain = -math.inf, 0, 0, 0.0
        last_log = time.monotonic()
        while len(queue):
            if self.deadline.expired():
                return BabOutcome(BabVerdict.TIMEOUT, None, self.done, "relu split: deadline")
            glb = queue.global_lb()
            if glb > best_glb + 1e-6 * (1.0 + abs(best_glb) if math.isfinite(best_glb) else 1.0):
                best_glb, stall = glb, 0
            else:
                stall += 1
            if self.cfg.milp_handoff_domains and len(queue) > self.cfg.milp_handoff_domains:
                return self.handoff(f"queue {len(queue)} > {self.cfg.milp_handoff_domains}")
            if self.cfg.stall_rounds and stall >= self.cfg.stall_rounds:
                return self.handoff(f"global lower bound stalled at {best_glb:.4g}")
            queue.set_depth_first(len(queue) > cap or (queue.depth_first and len(queue) > cap // 2))
            if len(queue) > 2 * cap + 4 * self.cfg.batch_size:  # depth-first could not contain it
                return BabOutcome(BabVerdict.OPEN, None, self.done, "relu split: domain limit")
            batch = queue.pop_batch(self._batch_size(per_domain))
            t_batch = time.monotonic()
            verdict, cex, open_idx, x_lb = self.process(batch, queue)
            per_domain = (time.monotonic() - t_batch) / len(batch)
            if verdict:
                return self.outcome(verdict, cex, f"relu split ({self.done} domains)")
            rounds += 1
            if self.cfg.pgd_every and rounds % self.cfg.pgd_every == 0 and x_lb is not None and open_idx:
                starts = x_lb[open_idx[:32]].reshape(-1, x_lb.shape[-1]).numpy()
                cex = self.attack(starts, 1.0)
                if cex is not None:
                    return self.outcome("cex", cex, f"relu split PGD ({self.done} domains)")
            if time.monotonic() - last_log > LOG_EVERY_S:
                last_log = time.monotonic()
                log.info("relu_split: %d domains done, queue %d%s, global lower bound %.5g, %d leaves, %.1f s left",
                         self.done, len(queue), " (depth-first)" if queue.depth_first else "", queue.global_lb(),
                         self.leaves, self.deadline.remaining())
        if self.open_leaves:
            return BabOutcome(BabVerdict.OPEN, None, self.done,
                              f"relu split: {self.open_leaves} exact leaves without a verdict")
        return BabOutcome(BabVerdict.PROVEN, None, self.done,
                          f"relu split ({self.done} domains, {self.leaves} exact leaves)")

    def _batch_size(self, per_domain: float) -> int:
        """config.bab.batch_size, smaller when the last batch's pace would overrun the deadline."""
        if per_domain <= 0:
            return self.cfg.batch_size
        fit = int(self.deadline.remaining() / (1.25 * per_domain))
        return max(1, min(self.cfg.batch_size, fit))

    def _cap(self, queue: _Queue) -> int:
        """Queue size past which the search goes depth-first (max_domains or the memory budget)."""
        sample = next((e[3] for e in queue.heap), None)
        per = max(1, sample.nbytes() // 2 if sample is not None else 1)  # siblings share pre/alpha/beta
        return max(self.cfg.batch_size, min(self.cfg.max_domains, self.cfg.max_memory_mb * 2**20 // per))


def relu_split(run, case_index: int, poly_index: int, pre: dict | None, deadline: Deadline) -> BabOutcome:
    """Decide one (case, polytope) pair by ReLU-splitting branch and bound (beta-CROWN + exact leaves)."""
    t0 = time.monotonic()
    search = _Search(run, case_index, poly_index, deadline)
    try:
        out = search.search(pre)
    finally:
        run.timed("bab_relu", t0)
        run.stats["bab_domains"] = run.stats.get("bab_domains", 0) + search.done
    log.info("relu_split: case %d polytope %d -> %s (%s)", case_index, poly_index, out.verdict.value, out.note)
    return out

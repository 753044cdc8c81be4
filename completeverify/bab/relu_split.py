"""ReLU-splitting branch and bound with beta-CROWN bounds and exact LP/MILP leaves.

A sub-domain is the input box plus sign constraints on some ReLU pre-activations.  Sub-domains
wait in a priority queue, worst lower bound first (best-first) or deepest first once the queue
outgrows its memory budget; they are popped in batches so that one BoundEngine.compute call
(beta-CROWN, warm-started from each parent's alpha/beta and intermediate bounds) serves many.
Each domain is bounded only for the spec rows of the polytopes still open on it; a batch whose
domains need different numbers of rows is bounded in up to three calls (domains.row_groups).
A sub-domain is closed when some spec row has a positive lower bound, when its split
constraints contradict its intermediate bounds, or by an exact LP/MILP once no free unstable
ReLU is left (completeness never rests on bounds alone).  The minimisers of the linear lower
bounds, and now and then PGD seeded by them, are replayed in the ONNX model (verdict.confirm):
only a replayed counterexample falsifies.  A queue that grows too large or a global lower bound
that stops improving hands the whole pair to the exact MILP on the tightest root bounds.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch

from ..bounds import AlphaState, BoundConfig, BoundEngine, Refinement, Splits
from ..bounds.pre import pre_from_numpy, pre_to_numpy, tightened
from ..config import Deadline
from ..spec import polytope_margins
from ..verdict import Counterexample, confirm
from . import cut_stage, prefix_refine
from .branching import choose, resolve, scores
from .domains import (
    Domain,
    DomainQueue,
    child_state,
    gather_rows,
    open_row_mask,
    open_rows,
    row_groups,
    stack_splits,
    stack_state,
)
from .fsb import FsbBatch, fsb_choose
from .pair_checks import PairChecks
from .progress import BoundTrend, Stall, fitting_batch
from .race import start_race
from .root_pre import optimise_root_pre
from .types import BabOutcome, BabVerdict

log = logging.getLogger(__name__)

Box = tuple[torch.Tensor, torch.Tensor]
LOG_EVERY_S = 2.0
SPLIT_SIGNS = (1, -1)  # the two children of a split: pre-activation >= 0, <= 0
ROOT_PRE_SHARE = 0.25  # at most this share of the remaining time for the root intermediate bounds


class _Search:
    """State of one relu_split call: one case, one or more polytopes searched together."""

    def __init__(self, run, case_index: int, poly_indices: list[int], deadline: Deadline) -> None:
        """Spec tensors (all polytopes' rows stacked), bound engines and counters."""
        self.run = run
        self.ci = case_index
        self.case = run.prop.cases[case_index]
        self.poly_indices = list(poly_indices)
        self.polys = [self.case.polytopes[k] for k in self.poly_indices]
        self.P = len(self.polys)
        self.cfg = run.config.bab
        self.deadline = deadline
        self.graph = run.graph
        self.branching = resolve(self.cfg.branching, self.graph)
        self.sizes = [n.size for n in self.graph.nodes]
        slices, start = [], 0
        for p in self.polys:
            slices.append(slice(start, start + int(p.C.shape[0])))
            start += int(p.C.shape[0])
        self.slices = tuple(slices)
        self.C = torch.as_tensor(
            np.concatenate(
                [
                    np.asarray(p.C, dtype=np.float64).reshape(-1, self.graph.n_outputs)
                    for p in self.polys
                ]
            )
        )
        self.d = torch.as_tensor(
            np.concatenate([np.asarray(p.d, dtype=np.float64).reshape(-1) for p in self.polys])
        )
        self.m = int(self.C.shape[0])
        self.lo = torch.as_tensor(np.asarray(self.case.lower, dtype=np.float64).reshape(1, -1))
        self.hi = torch.as_tensor(np.asarray(self.case.upper, dtype=np.float64).reshape(1, -1))
        self.root_engine = BoundEngine(
            self.graph
        )  # replaced by a cheaper one when root bounds are given
        self.engine = BoundEngine(
            self.graph,
            BoundConfig(
                alpha_iters=self.cfg.bound_iters_for(self.graph.has_convolutions()),
                intermediate_crown=self.cfg.intermediate_refine,
            ),
        )
        self.mixed = None  # bounds/mixed.py: alpha/beta searched in float32, bounds in float64
        if self.cfg.float32_search:
            from ..bounds.mixed import MixedPrecision

            self.mixed = MixedPrecision(
                self.engine, BoundEngine(self.graph, self.engine.config, dtype=torch.float32)
            )
        self.done = 0  # domains bounded
        self.leaves = 0  # domains decided exactly
        self.open_leaves = 0  # exact leaves without a verdict (knife edge)
        self.root_pre: dict[int, tuple[np.ndarray, np.ndarray]] | None = None
        self.checks = PairChecks(run, case_index, self.polys, self.C, self.d, self.slices, deadline)

    # ------------------------------------------------------------------ bounding
    def bound(self, doms: list[Domain], rows: torch.Tensor, root: bool = False):
        """beta-CROWN on a batch of domains, each for its spec rows ``rows`` (B, K) (warm-started);
        the BoundResult, its row bounds (B, K) in that order."""
        b = len(doms)
        lo, hi = self.lo.expand(b, -1), self.hi.expand(b, -1)
        splits = Splits(stack_splits(doms, self.sizes))
        pre = {
            j: (torch.stack([d.pre[j][0] for d in doms]), torch.stack([d.pre[j][1] for d in doms]))
            for j in (doms[0].pre if all(set(d.pre) == set(doms[0].pre) for d in doms) else {})
        }
        warm = AlphaState(
            {
                r: gather_rows(a, rows)
                for r, a in stack_state(doms, "alphas", self.m, self.sizes).items()
            },
            {
                r: gather_rows(v, rows)
                for r, v in stack_state(doms, "betas", self.m, self.sizes).items()
            },
        )
        engine = self.root_engine if root else self.engine
        refine = Refinement()
        if not root and pre and self.cfg.reuse_pre:
            # a split at node j changes no bound up to j: keep the parents' bounds there
            refine = Refinement(refine_after=min(d.split_pre for d in doms))
        if not root and self.mixed is not None:
            return self.mixed.compute(
                lo,
                hi,
                self.C[rows],
                -self.d[rows],
                splits=splits,
                pre=pre or None,
                warm=warm,
                deadline=self.deadline.end,
                refine=refine,
            )
        return engine.compute(
            lo,
            hi,
            self.C[rows],
            -self.d[rows],
            method="alpha-crown",
            splits=splits,
            pre=pre or None,
            warm=warm,
            deadline=self.deadline.end,
            refine=refine,
        )

    # ------------------------------------------------------------------ one batch
    def process(
        self, doms: list[Domain], queue: DomainQueue, root: bool = False
    ) -> tuple[str, Counterexample | None, list[int], torch.Tensor | None]:
        """Bound a batch, close what it can, branch the rest; ('', None, open idx, x_lb) or a
        verdict."""
        open_in = torch.stack([d.open for d in doms])  # (B, P)
        # (B, K): no work on the rows of excluded polytopes
        rows = open_rows(open_in, self.slices, self.m)
        res = self.bound(doms, rows, root)
        self.done += len(doms)
        if root:
            self.root_pre = pre_to_numpy(res.pre, 0)
        inherited = torch.stack([d.lb for d in doms])
        new = torch.where(torch.isfinite(res.lb), res.lb, torch.full_like(res.lb, -math.inf))
        # a sub-domain keeps every bound of its ancestors (a row listed twice: the larger bound)
        lb = inherited.scatter_reduce(1, rows, new, "amax", include_self=True)
        empty = torch.zeros(len(doms), dtype=torch.bool)
        for lo_j, hi_j in res.pre.values():
            empty |= (lo_j > hi_j).any(1)
        still = open_in & ~(
            polytope_margins(lb, self.slices) > 0
        )  # polytopes not yet excluded, per domain
        proven = empty | ~still.any(1)
        open_idx = [b for b in range(len(doms)) if not bool(proven[b])]
        if not open_idx:
            return "", None, [], res.x_lb
        cex = self.checks.replay_minimisers(res.x_lb, open_idx)
        if cex is not None:
            return "cex", cex, open_idx, res.x_lb
        sel = torch.tensor(open_idx)
        pre_open = {j: (lo[sel], hi[sel]) for j, (lo, hi) in res.pre.items()}
        split_open = stack_splits([doms[b] for b in open_idx], self.sizes)
        # branch for the worst open polytope of each domain, scored with its most promising row
        marg = torch.where(
            still[sel],
            polytope_margins(lb[sel], self.slices),
            torch.full((len(open_idx), self.P), math.inf, dtype=lb.dtype),
        )
        worst = marg.argmin(1)
        masked = torch.full_like(lb[sel], -math.inf)
        for p, s_ in enumerate(self.slices):
            pick = worst == p
            masked[pick, s_] = torch.where(
                torch.isfinite(lb[sel][pick, s_]),
                lb[sel][pick, s_],
                torch.full_like(lb[sel][pick, s_], -1e300),
            )
        best_row = masked.argmax(1)
        picks = self.branch(
            pre_open, split_open, best_row, rows[sel], res.state, sel, lb[sel], still[sel]
        )
        state = res.state or AlphaState()
        for pos, b in enumerate(open_idx):
            parent = doms[b]
            pre_b = {j: (lo[pos].clone(), hi[pos].clone()) for j, (lo, hi) in pre_open.items()}
            choice = picks[pos]
            if choice is None:  # every unstable ReLU is split: the domain is an LP
                verdict, cex = self.leaf(parent, pre_b, still[b])
                if verdict in ("cex", "timeout"):
                    return verdict, cex, open_idx, res.x_lb
                continue
            alphas = child_state(parent.alphas, state.alphas, b, rows[b], self.m)
            betas = child_state(parent.betas, state.betas, b, rows[b], self.m)
            r, k = choice
            for sign in SPLIT_SIGNS:
                child_splits = dict(parent.splits)
                row = child_splits.get(
                    r, torch.zeros(self.graph.nodes[r].size, dtype=torch.int8)
                ).clone()
                row[k] = sign
                child_splits[r] = row
                queue.push(
                    Domain(
                        lb[b].clone(),
                        parent.depth + 1,
                        child_splits,
                        pre_b,
                        alphas,
                        betas,
                        still[b].clone(),
                        self.slices,
                        self.graph.nodes[r].inputs[0],
                    )
                )
        return "", None, open_idx, res.x_lb

    def branch(
        self,
        pre: dict[int, Box],
        splits: dict[int, torch.Tensor],
        best_row: torch.Tensor,
        rows: torch.Tensor,
        state: AlphaState | None,
        sel: torch.Tensor,
        lb_open: torch.Tensor,
        still_open: torch.Tensor,
    ) -> list[tuple[int, int] | None]:
        """Per open domain sel[i] of the batch the ReLU to split (``self.branching``).

        pre, splits: the open domains' bounds and splits; best_row: the row BaBSR scores for;
        rows: (B, R) the spec rows each open domain was bounded for (state holds them, (B_all, R,
        size)); lb_open (B, m) and still_open (B, P): the open domains' row bounds and open
        polytopes.
        """
        how = self.branching
        sc = scores(
            self.engine, pre, splits, self.C[best_row], "width" if how == "width" else "babsr"
        )
        if how != "fsb":
            return choose(sc)
        state = state or AlphaState()
        fb = FsbBatch(
            self.lo,
            self.hi,
            self.C[rows],
            -self.d[rows],
            pre,
            splits,
            AlphaState(
                {r: v[sel] for r, v in state.alphas.items()},
                {r: v[sel] for r, v in state.betas.items()},
            ),
            rows,
            lb_open,
            still_open,
            self.slices,
        )
        engine = self.mixed.engine32 if self.mixed is not None else self.engine
        return fsb_choose(engine, fb, sc, self.cfg.fsb_candidates)

    def leaf(
        self, dom: Domain, pre: dict[int, Box], still: torch.Tensor
    ) -> tuple[str, Counterexample | None]:
        """Decide a domain with no free unstable ReLU exactly: one LP per open polytope."""
        self.leaves += 1
        pre_np = {j: (lo.cpu().numpy(), hi.cpu().numpy()) for j, (lo, hi) in pre.items()}
        splits_np = {r: s.cpu().numpy().astype(np.int64) for r, s in dom.splits.items()}
        for p in range(self.P):
            if not bool(still[p]):
                continue
            verdict, cex = self.checks.exact(pre_np, splits_np, p)
            if verdict == "unknown":
                self.open_leaves += 1
            elif verdict != "proven":
                return verdict, cex
        return "", None

    # ------------------------------------------------------------------ main loop
    def handoff(self, why: str) -> BabOutcome:
        """Decide the whole pair with the exact MILP on the tightest root bounds."""
        log.info(
            "relu_split: handing off to the MILP (%s) after %d domains, %.1f s left",
            why,
            self.done,
            self.deadline.remaining(),
        )
        assert self.root_pre is not None
        note = f"milp after {self.done} domains ({why})"
        for p in range(self.P):  # every polytope the search has not excluded everywhere
            if not bool(self.root_open[p]):
                continue
            verdict, cex = self.checks.exact(self.root_pre, None, p)
            if verdict != "proven":
                return self.outcome(verdict, cex, note)
        return self.outcome("proven", None, note)

    def outcome(self, verdict: str, cex: Counterexample | None, note: str) -> BabOutcome:
        """Map an exact-stage verdict to a BabOutcome."""
        table = {
            "proven": BabVerdict.PROVEN,
            "cex": BabVerdict.FALSIFIED,
            "timeout": BabVerdict.TIMEOUT,
            "unknown": BabVerdict.OPEN,
        }
        v = table[verdict]
        if v == BabVerdict.OPEN and self.deadline.expired():
            v = BabVerdict.TIMEOUT
        return BabOutcome(v, cex, self.done, note)

    def search(self, pre: dict | None) -> BabOutcome:
        """The whole branch and bound for the pair."""
        if any(
            s.stop == s.start for s in self.slices
        ):  # a polytope without rows: every output is unsafe
            cex = confirm(
                self.run.replayer, (self.case.lower + self.case.upper) / 2, self.case, self.ci
            )
            return BabOutcome(
                BabVerdict.FALSIFIED if cex else BabVerdict.OPEN, cex, 0, "empty polytope"
            )
        root_pre = pre_from_numpy(pre)
        if self.cfg.root_pre_iters > 0 and any(n.op.caps.splittable for n in self.graph.nodes):
            t0 = time.monotonic()
            if not root_pre:
                res = self.root_engine.compute(self.lo, self.hi, self.C, -self.d, method="crown")
                root_pre = {j: (lo[0], hi[0]) for j, (lo, hi) in res.pre.items()}
            stop = min(
                self.deadline.end,
                time.monotonic() + ROOT_PRE_SHARE * self.deadline.remaining(),
            )
            root_pre = optimise_root_pre(self.graph, self.lo, self.hi, root_pre, self.cfg, stop)
            self.run.timed("bab_root_pre", t0)
        if root_pre:  # intermediate bounds are given (CROWN or better): only alpha is left to do
            self.root_engine = BoundEngine(self.graph, BoundConfig(intermediate_crown=False))
        verdict, cex, queue = self.root(root_pre)
        if verdict:
            return self.outcome(verdict, cex, "relu split (root)")
        race = start_race(self)
        refine = (
            self.cfg.prefix_layers > 0
            and race is None
            and bool(root_pre)
            and prefix_refine.applicable(self.graph)
        )
        try:
            # round 1 proves signs and the search restarts from the refined root; round 2, once
            # the search has run as long again as round 1 took (searches round 1 enables finish
            # first), tightens thresholds and the search's queued domains take the new bounds
            rounds = [False, True] if refine and self.cfg.prefix_tighten_s > 0 else [False]
            pause = time.monotonic() + self.cfg.prefix_after_s if refine else math.inf
            out, searched = self.loop(queue, race, pause), True
            if out is None:  # pair cuts first: cheaper than prefix refinement
                root_pre, queue, out, searched = cut_stage.cut_round(self, root_pre, queue, race)
            for n, tighten in enumerate(rounds):
                if out is not None:
                    return out
                t0 = time.monotonic()
                stop = t0 + self.cfg.prefix_share * self.deadline.remaining()
                # (the prefix searches run in contexts of their own: their domains are not
                # counted)
                new_pre, st = prefix_refine.stabilise_root(
                    self.run, self.case, self.lo, self.hi, root_pre, stop, relu_split, tighten
                )
                self.run.timed("bab_prefix_refine", t0)
                st.report(self.run, tighten)
                if (st.sides_proven or st.sides_tightened or not searched) and not tighten:
                    root_pre = new_pre  # restart from the refined root
                    verdict, cex, queue = self.root(root_pre)
                    if verdict:
                        return self.outcome(verdict, cex, "relu split (refined root)")
                elif st.sides_proven or st.sides_tightened:
                    root_pre = new_pre  # keep the search's progress: its domains get the bounds
                    queue.intersect_pre(root_pre)
                    if self.root_pre is not None:  # what a MILP hand-off encodes
                        self.root_pre = tightened(self.root_pre, root_pre)
                last = n == len(rounds) - 1
                out = self.loop(queue, race, math.inf if last else 2 * time.monotonic() - t0)
            assert out is not None  # without a pause the loop always ends with an outcome
            return out
        finally:
            if race is not None:
                race.stop()

    def root(self, root_pre: dict[int, Box]) -> tuple[str, Counterexample | None, DomainQueue]:
        """Bound the root domain on these intermediate bounds: (verdict, counterexample, queue of
        its children)."""
        root = Domain(
            torch.full((self.m,), -math.inf, dtype=torch.float64),
            0,
            {},
            root_pre,
            {},
            {},
            torch.ones(self.P, dtype=torch.bool),
            self.slices,
        )
        queue = DomainQueue()
        verdict, cex, _, _ = self.process([root], queue, root=True)
        self.root_open = torch.zeros(self.P, dtype=torch.bool)
        for e in queue.heap:
            self.root_open |= e[3].open
        return verdict, cex, queue

    def loop(self, queue: DomainQueue, race, pause_at: float = math.inf) -> BabOutcome | None:
        """Pop, bound and branch until the queue is empty or a verdict is reached; None when
        paused at the time.monotonic() instant pause_at (or before a MILP hand-off until then)."""
        cap = queue.cap(self.cfg.batch_size, self.cfg.max_domains, self.cfg.max_memory_mb)
        stall, rounds, per_domain = Stall(), 0, 0.0
        last_log = time.monotonic()
        trend, deferred = BoundTrend(last_log), False
        while len(queue):
            if self.deadline.expired():
                # every domain not closed is queued, unless an exact leaf was left undecided
                bound = min(0.0, queue.global_lb()) if not self.open_leaves else None
                return BabOutcome(
                    BabVerdict.TIMEOUT, None, self.done, "relu split: deadline", bound
                )
            if time.monotonic() >= pause_at:
                return None
            won = race.verdict() if race is not None else None
            if won is not None:
                return self.outcome(
                    won[0], won[1], f"milp race (after {self.done} domains of the search)"
                )
            glb = queue.global_lb()
            trend.add(time.monotonic(), glb)
            stalled = stall.update(glb, len(queue))
            if race is not None:
                # the MILP already runs on the other core: the search keeps going (depth-first
                # past the cap)
                pass
            elif self.cfg.milp_handoff_domains and len(queue) > self.cfg.milp_handoff_domains:
                if not trend.reaches_zero(
                    time.monotonic(), self.deadline.remaining(), self.cfg.handoff_trend_share
                ):
                    if pause_at < math.inf:
                        return None  # refine the root before giving the MILP the pair
                    return self.handoff(f"queue {len(queue)} > {self.cfg.milp_handoff_domains}")
                if not deferred:
                    deferred = True
                    log.info(
                        "relu_split: queue %d > %d, but the global lower bound (%.5g) is on "
                        "course to reach 0 in time: no MILP hand-off yet",
                        len(queue),
                        self.cfg.milp_handoff_domains,
                        glb,
                    )
            elif self.cfg.stall_rounds and stalled >= self.cfg.stall_rounds:
                if pause_at < math.inf:
                    return None
                return self.handoff(
                    f"global lower bound stalled at {stall.best_glb:.4g}, queue at "
                    f"{len(queue)} (shortest {stall.min_queue})"
                )
            queue.set_depth_first(len(queue) > cap or (queue.depth_first and len(queue) > cap // 2))
            if len(queue) > 2 * cap + 4 * self.cfg.batch_size:  # depth-first could not contain it
                return self._give_up(
                    race, BabOutcome(BabVerdict.OPEN, None, self.done, "relu split: domain limit")
                )
            batch = queue.pop_batch(
                fitting_batch(self.cfg.batch_size, self.deadline.remaining(), per_domain)
            )
            t_batch = time.monotonic()
            # domains with fewer polytopes open are bounded for fewer rows: one call per group
            verdict, cex, open_idx, x_lb = "", None, [], None
            opens = torch.stack([d.open for d in batch])
            counts = open_row_mask(opens, self.slices, self.m).sum(1).tolist()
            for group in row_groups(counts):
                verdict, cex, some, x = self.process([batch[i] for i in group], queue)
                if verdict:
                    break
                if some:  # PGD below starts from one group's minimisers
                    open_idx, x_lb = some, x
            per_domain = (time.monotonic() - t_batch) / len(batch)
            if verdict:
                return self.outcome(verdict, cex, f"relu split ({self.done} domains)")
            rounds += 1
            if (
                self.cfg.pgd_every
                and rounds % self.cfg.pgd_every == 0
                and x_lb is not None
                and open_idx
            ):
                starts = x_lb[open_idx[:32]].reshape(-1, x_lb.shape[-1]).cpu().numpy()
                cex = self.checks.attack(starts, 1.0)
                if cex is not None:
                    return self.outcome("cex", cex, f"relu split PGD ({self.done} domains)")
            if time.monotonic() - last_log > LOG_EVERY_S:
                last_log = time.monotonic()
                log.info(
                    "relu_split: %d domains done, queue %d%s, global lower bound %.5g,"
                    " %d leaves, %.1f s left",
                    self.done,
                    len(queue),
                    " (depth-first)" if queue.depth_first else "",
                    queue.global_lb(),
                    self.leaves,
                    self.deadline.remaining(),
                )
        if self.open_leaves:
            return self._give_up(
                race,
                BabOutcome(
                    BabVerdict.OPEN,
                    None,
                    self.done,
                    f"relu split: {self.open_leaves} exact leaves without a verdict",
                ),
            )
        return BabOutcome(
            BabVerdict.PROVEN,
            None,
            self.done,
            f"relu split ({self.done} domains, {self.leaves} exact leaves)",
        )

    def _give_up(self, race, undecided: BabOutcome) -> BabOutcome:
        """The search cannot finish: wait for the racing MILP (until the deadline) before saying
        so."""
        if race is None:
            return undecided
        race.thread.join(self.deadline.remaining())
        won = race.verdict()
        if won is None:
            return undecided
        return self.outcome(won[0], won[1], f"milp race (the search stopped: {undecided.note})")


def relu_split_joint(
    run, case_index: int, poly_indices: list[int], pre: dict | None, deadline: Deadline
) -> BabOutcome:
    """Decide several polytopes of one case together by ReLU-splitting branch and bound.

    A domain carries the mask of the polytopes not yet excluded on it and is closed once every
    one of them is (some row of each with a positive lower bound), or when it is infeasible.
    PROVEN means every polytope is unreachable; FALSIFIED carries a replay-confirmed
    counterexample of some polytope of the case; anything else leaves all of them undecided.
    """
    t0 = time.monotonic()
    search = _Search(run, case_index, poly_indices, deadline)
    try:
        out = search.search(pre)
    finally:
        run.timed("bab_relu", t0)
        run.stats["bab_domains"] = run.stats.get("bab_domains", 0) + search.done
    log.log(
        logging.DEBUG if run.nested else logging.INFO,
        "relu_split: case %d polytopes %s -> %s (%s)",
        case_index,
        poly_indices,
        out.verdict.value,
        out.note,
    )
    return out


def relu_split(
    run, case_index: int, poly_index: int, pre: dict | None, deadline: Deadline
) -> BabOutcome:
    """Decide one (case, polytope) pair by ReLU-splitting branch and bound (beta-CROWN + exact
    leaves)."""
    return relu_split_joint(run, case_index, [poly_index], pre, deadline)

"""Root intermediate bounds of ReLU splitting, stabilised by branch and bound on network prefixes.

Where ReLU splitting stalls on a deep MLP (MNIST 256x4 / 256x6 at eps 0.05), the root's
intermediate bounds leave many neurons unstable that are in fact stable on the whole input box:
alpha-CROWN on the prefix network cannot prove their sign, an exact method can.  The exact MILP
of the prefix (HiGHS) took 2.5-6 s per neuron side there; ReLU splitting on the prefix itself,
with the target neuron as a one-row property, proves most sides in a few domains and well under
a second.  This module does that for the first ``BabConfig.prefix_layers`` ReLU layers whose
input is not affine in the box (there CROWN is already exact), layer by layer:

* for each unstable neuron k of the layer's pre-activation node j, closest sides first (the
  side whose bound is nearest 0 relative to the neuron's width), and only sides that no random
  point of the box already takes the wrong sign on: a ReLU-splitting search on the network cut
  at j, for the property "unsafe if sign * x_k <= 0", at most ``prefix_side_s`` seconds;
* a proven side is exact knowledge: x_k > 0 (or < 0) on the whole box, so the root bound on that
  side becomes 0 and the ReLU is stable;
* then alpha-CROWN re-tightens the later nodes on the stabilised bounds
  (``optimise_root_pre``), and the next layer starts from those.

A side whose search ends undecided at its deadline still moves the bound to what that search
had proven (the smallest bound of its queued domains, ``BabOutcome.lower_bound``).  An opt-in
second round (``tighten``) searches thresholds between a bound and the sampled values.

Soundness.  Only PROVEN outcomes and the proven lower bounds of timed-out searches are used;
both carry the same guarantees as any ReLU-splitting proof (float64 bounds with rounding
margins), and bound + threshold is rounded down.  A refuted side changes nothing, so the
replayer of the prefix searches only needs to be a correct forward pass of the prefix (a
counterexample there is never reported).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..bounds.pre import unstable_count
from ..config import AttackConfig, Deadline, VerifyConfig
from ..context import VerifyContext
from ..graph import Graph
from ..second_core import in_two_processes
from ..verdict import Replayer
from ..vnnlib import Case, Polytope, Property
from .root_pre import optimise_root_pre
from .types import BabOutcome, BabVerdict

log = logging.getLogger(__name__)

Box = tuple[torch.Tensor, torch.Tensor]
# a ReLU-splitting search: (context, case index, polytope index, intermediate bounds, deadline)
Search = Callable[[VerifyContext, int, int, dict, Deadline], BabOutcome]
SAMPLES = 256  # random points of the box whose values refute sides before any search


class PrefixReplayer(Replayer):
    """The float64 forward pass of a prefix Graph, in the Replayer interface (see the module
    docstring: its counterexamples only ever mean "this side is not provable")."""

    def __init__(self, graph: Graph) -> None:  # noqa: D107 - no ONNX model to prepare
        self.graph = graph
        self.input_name, self.output_name = graph.input_name, graph.output_name
        self.dtype = np.float64
        self.shape = (1, *graph.input_shape)
        self.backend = "prefix graph"

    def run(self, x: np.ndarray) -> np.ndarray:
        """The prefix's value at one input."""
        with torch.no_grad():
            t = torch.as_tensor(np.asarray(x, dtype=np.float64).reshape(self.shape))
            return self.graph(t).numpy()


@dataclass
class PrefixStats:
    """What one refinement did (logged and copied into the run's stats)."""

    unstable_before: int = 0
    unstable_after: int = 0
    sides_tried: int = 0
    sides_proven: int = 0
    sides_tightened: int = 0  # undecided sides whose search still tightened the bound
    seconds: float = 0.0
    layers: list[tuple[int, int, int]] = field(default_factory=list)  # (node, before, after)

    def report(self, run: VerifyContext, tighten: bool) -> None:
        """Copy one round's figures into the run's stats and log them."""
        kind = "tighten" if tighten else "signs"
        run.stats[f"prefix_{kind}_unstable"] = f"{self.unstable_before} -> {self.unstable_after}"
        run.stats[f"prefix_{kind}_sides"] = (
            f"{self.sides_proven}+{self.sides_tightened}/{self.sides_tried}"
        )
        log.info(
            "relu_split: prefix refinement (%s): root unstable %d -> %d (%d of %d sides proven, "
            "%d more tightened) in %.1f s",
            kind,
            self.unstable_before,
            self.unstable_after,
            self.sides_proven,
            self.sides_tried,
            self.sides_tightened,
            self.seconds,
        )


def target_nodes(graph: Graph, count: int) -> list[int]:
    """The first ``count`` ReLU pre-activation nodes whose prefix holds an activation."""
    out = []
    for node in graph.nodes:
        j = node.inputs[0] if node.inputs else -1
        if not node.op.caps.splittable or j in out:
            continue
        if any(n.op.caps.activation for n in graph.nodes[:j]):
            out.append(j)
    return out[: max(0, count)]


def applicable(graph: Graph) -> bool:
    """Prefix refinement serves piecewise-linear networks without convolutions (a CNN's prefix
    searches cost as much as the search they would help)."""
    return graph.is_piecewise_linear() and not graph.has_convolutions()


def _sides(lo: torch.Tensor, hi: torch.Tensor, neg: np.ndarray, pos: np.ndarray) -> list[tuple]:
    """(closeness, neuron, sign) of the unstable sides no sampled point refutes, closest first;
    sign +1 tries to prove x_k > 0 (closeness -lo / width), -1 tries x_k < 0 (hi / width)."""
    out = []
    for k in ((lo < 0) & (hi > 0)).nonzero().flatten().tolist():
        width = float(hi[k] - lo[k])
        if not neg[k]:
            out.append((float(-lo[k]) / width, k, 1.0))
        if not pos[k]:
            out.append((float(hi[k]) / width, k, -1.0))
    out.sort(key=lambda t: t[0])
    return out


def _prove_side(
    search: Search,
    graph: Graph,
    config: VerifyConfig,
    case: Case,
    pre: dict[int, Box],
    j: int,
    k: int,
    sign: float,
    seconds: float,
    seed: int,
    threshold: float = 0.0,
) -> tuple[bool, float]:
    """(proven, bound): proven when the search on the network cut at node j proves
    sign * x_k > threshold on the box; bound is then the threshold, and otherwise a proven
    lower bound of sign * x_k there (-inf when the search ended without one)."""
    prefix = graph.with_nodes(graph.nodes[: j + 1])
    C = np.zeros((1, prefix.n_outputs))
    C[0, k] = sign
    prop = Property(
        prefix.n_inputs,
        prefix.n_outputs,
        (Case(case.lower, case.upper, (Polytope(C, np.array([threshold])),)),),
        f"<prefix node {j} neuron {k}>",
    )
    deadline = Deadline(seconds)
    sub = VerifyContext(
        prefix,
        prop,
        config,
        deadline,
        PrefixReplayer(prefix),
        np.random.default_rng(seed),
        nested=True,
    )
    sub_pre = {i: b for i, b in pre.items() if i < j}
    out = search(sub, 0, 0, sub_pre, deadline)
    log.debug(
        "prefix refine: node %d neuron %d: %+g x > %g: %s (%s), margin bound %s",
        j,
        k,
        sign,
        threshold,
        out.verdict.value,
        out.note,
        out.lower_bound,
    )
    if out.verdict == BabVerdict.PROVEN:
        return True, threshold
    if out.lower_bound is None or not math.isfinite(out.lower_bound):
        return False, -math.inf
    # (rounded down: the float sum may round up by half an ulp)
    return False, math.nextafter(threshold + out.lower_bound, -math.inf)


def _threshold_sides(lo: torch.Tensor, hi: torch.Tensor) -> list[tuple]:
    """(height, neuron, sign) of both sides of the unstable neurons, loosest triangle
    relaxation first (its height -lo * hi / (hi - lo))."""
    unstable = ((lo < 0) & (hi > 0)).nonzero().flatten().tolist()
    height = {k: float(-lo[k] * hi[k] / (hi[k] - lo[k])) for k in unstable}
    return [
        (height[k], k, s) for k in sorted(unstable, key=lambda k: -height[k]) for s in (1.0, -1.0)
    ]


def _threshold(lo: float, hi: float, v: torch.Tensor, sign: float) -> tuple[float, float]:
    """(bound, threshold) for one side: the bound of sign * x_k now, and halfway between it and
    the most extreme sampled value (or 0)."""
    have = lo if sign > 0 else -hi
    seen = min(float(v.min()) if sign > 0 else -float(v.max()), 0.0)
    return have, 0.5 * (have + seen)


def _side_results(
    sides: list[tuple],
    lo_j: torch.Tensor,
    hi_j: torch.Tensor,
    v: torch.Tensor,
    tighten: bool,
    side_s: float,
    stop: float,
    prove: Callable[..., tuple[bool, float]],
) -> list[tuple]:
    """Search ``sides`` in order until ``stop``: (neuron, sign, proven, bound, bound before,
    threshold) per side tried. A copy of lo_j / hi_j takes each result, so that the other side
    of a neuron already proven stable is skipped; the caller applies the results."""
    lo_j, hi_j = lo_j.clone(), hi_j.clone()
    results = []
    for _, k, sign in sides:
        budget = min(side_s, stop - time.monotonic())
        if budget <= 0.05:
            break
        if not (lo_j[k] < 0 < hi_j[k]):
            continue  # the other side was proven
        have, t = (
            _threshold(float(lo_j[k]), float(hi_j[k]), v[:, k], sign)
            if tighten
            else (float(lo_j[k]) if sign > 0 else -float(hi_j[k]), 0.0)
        )
        if not t > have:
            continue
        proven, bound = prove(k, sign, budget, threshold=t)
        results.append((k, sign, proven, bound, have, t))
        if bound > have:
            if sign > 0:
                lo_j[k] = bound
            else:
                hi_j[k] = -bound
    return results


def stabilise_root(
    run: VerifyContext,
    case: Case,
    lo: torch.Tensor,
    hi: torch.Tensor,
    pre: dict[int, Box],
    stop: float,
    search: Search,
    tighten: bool = False,
) -> tuple[dict[int, Box], PrefixStats]:
    """Root bounds with the neurons of the first prefix_layers target nodes that a prefix search
    proves stable made stable, and the later nodes re-tightened; never looser than ``pre``.

    run: the VerifyContext of the whole search; lo, hi: (1, n_in) box of ``case``; pre: node ->
    (lower (size,), upper (size,)) float64; stop: a time.monotonic() instant to end by; search:
    the ReLU-splitting search run on each prefix (bab.relu_split.relu_split); tighten: instead
    of proving signs, search each side of the unstable neurons for a threshold halfway to the
    most extreme sampled value (at most prefix_tighten_s a side, the time left shared evenly by
    the layers left), keeping the threshold when proven and the search's bound otherwise.
    """
    t0 = time.monotonic()
    graph, cfg = run.graph, run.config.bab
    stats = PrefixStats()
    targets = [j for j in target_nodes(graph, cfg.prefix_layers) if j in pre]
    splittable_inputs = sorted(
        {n.inputs[0] for n in graph.nodes if n.op.caps.splittable and n.inputs[0] in pre}
    )
    stats.unstable_before = unstable_count(pre, splittable_inputs)
    sub_config = dataclasses.replace(
        run.config,
        attack=AttackConfig(enabled=False),
        bab=dataclasses.replace(
            cfg,
            prefix_layers=0,
            milp_handoff_domains=0,
            stall_rounds=0,
            race_milp=False,
            pgd_every=0,
            root_pre_iters=0,
        ),
    )
    gen = np.random.default_rng(run.config.seed)
    xs = lo + torch.as_tensor(gen.random((SAMPLES, lo.shape[1]))) * (hi - lo)
    with torch.no_grad():
        values = graph.forward_all(xs.reshape(SAMPLES, *graph.input_shape))
    out = {j: (b[0].clone(), b[1].clone()) for j, b in pre.items()}
    for n, j in enumerate(targets):
        if time.monotonic() >= stop:
            break
        lo_j, hi_j = out[j]
        v = values[j].reshape(SAMPLES, -1)
        before = int(((lo_j < 0) & (hi_j > 0)).sum())
        gained = stats.sides_proven + stats.sides_tightened
        if tighten:  # this layer's even share of the time left
            layer_stop = time.monotonic() + (stop - time.monotonic()) / (len(targets) - n)
            sides = _threshold_sides(lo_j, hi_j)
        else:
            layer_stop = stop
            sides = _sides(lo_j, hi_j, (v < 0).any(0).numpy(), (v > 0).any(0).numpy())
        work = functools.partial(
            _side_results,
            lo_j=lo_j,
            hi_j=hi_j,
            v=v,
            tighten=tighten,
            side_s=cfg.prefix_tighten_s if tighten else cfg.prefix_side_s,
            stop=layer_stop,
            prove=functools.partial(
                _prove_side, search, graph, sub_config, case, out, j, seed=run.config.seed
            ),
        )
        if cfg.prefix_workers > 1 and len(sides) > 1:
            results = in_two_processes(work, sides, layer_stop)
        else:
            results = work(sides)
        for k, sign, proven, bound, have, t in results:
            stats.sides_tried += 1
            stats.sides_proven += proven and t == 0.0
            if bound > have:  # a proven threshold, or an undecided search's bound
                stats.sides_tightened += not (proven and t == 0.0)
                if sign > 0:
                    lo_j[k] = max(float(lo_j[k]), bound)
                else:
                    hi_j[k] = min(float(hi_j[k]), -bound)
        after = int(((lo_j < 0) & (hi_j > 0)).sum())
        stats.layers.append((j, before, after))
        log.info("prefix refine: node %d: %d -> %d unstable", j, before, after)
        if stats.sides_proven + stats.sides_tightened > gained and cfg.root_pre_iters > 0:
            # the later nodes, on the new bounds
            out = optimise_root_pre(graph, lo, hi, out, cfg, stop, after=j)
    stats.unstable_after = unstable_count(out, splittable_inputs)
    stats.seconds = time.monotonic() - t0
    return out, stats

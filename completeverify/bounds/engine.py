"""The bound engine: IBP, CROWN (one reverse-topological walk per bounded node) and
alpha/beta-CROWN.

Float safety: every tensor that decides a verdict is float64.  Arithmetic bounds are widened by
``config.float_rel * magnitude + config.float_abs`` (intervals per op; linear bounds at the
concretisation, relative to |lb| + sum |A| |x| + |bias|) to absorb rounding, and every NaN lower
bound becomes -inf (upper: +inf), so a non-finite number can never prove anything.  A walk also
bounds its own rounding (``rounding.py``: each step's products and sums, relative to the
magnitudes of their terms, which cancellation cannot shrink) and lowers its bias by it, so a
linear bound holds for the real-valued network, not only up to the rounding of the walk.

Intermediate bounds: every node feeding an activation is bounded, in topological order, by IBP
intersected with any given ``pre`` bounds and with the split constraints, then (unless
``method == "ibp"``) by CROWN on the neurons that still need it (unstable ReLU inputs; all inputs
of Sigmoid/Tanh/MaxPool), reusing all earlier intermediate bounds.  Intermediate CROWN uses the
adaptive CROWN slopes; alpha and beta are optimised for the final bound only (per output row).

Per-op behaviour comes from tables looked up by op type: ``IBP`` (interval.py), ``BACKWARD``
(backward.py, affine ops), ``RELAX`` (relax.py, activations) and ``ALPHA`` (optimize.py,
optimisable slopes); the engine only reads the ops' declared ``caps``.  ``walk`` is the public
backward walk; ``Refinement`` names what a ``compute`` call refines.
"""

from __future__ import annotations

import contextlib

import torch

from ..errors import InternalError, ModelError
from ..graph import ACTIVATION_OPS, Graph, Input, Linear
from .backward import BACKWARD, concretize
from .cuts import BatchCuts
from .interval import IBP, MAGNITUDE, Box
from .optimize import init_params, optimize_alpha_beta, walk_with_cuts
from .relax import RELAX, Relaxation, ReluRelax
from .rounding import Rounding, RoundingError, covered_activations, finite_mag, gamma_for
from .types import AlphaState, BoundConfig, BoundResult, Refinement, Splits

ACTIVATIONS = ACTIVATION_OPS  # the ops with caps.activation (relaxed by a RELAX row)
METHODS = ("ibp", "crown", "alpha-crown")
Relax = Relaxation


def _intersect(box: Box, other: Box | None) -> Box:
    """Elementwise tightest of two boxes (other may be None)."""
    if other is None:
        return box
    lo, hi = other
    return torch.maximum(box[0], lo.to(box[0].dtype)), torch.minimum(box[1], hi.to(box[1].dtype))


def _sanitize(box: Box) -> Box:
    """NaN lower bounds become -inf, NaN upper bounds +inf."""
    lo, hi = box
    lo = torch.where(torch.isnan(lo), torch.full_like(lo, float("-inf")), lo)
    hi = torch.where(torch.isnan(hi), torch.full_like(hi, float("inf")), hi)
    return lo, hi


class BoundEngine:
    """Sound bounds of linear functions of a Graph's output over batches of input boxes."""

    def __init__(
        self,
        graph: Graph,
        config: BoundConfig = BoundConfig(),
        params: list[dict] | None = None,
        dtype: torch.dtype | None = None,
        input_set: object | None = None,
    ) -> None:
        """Cache parameters and the structure the passes need.

        params: per-node parameters overriding ``graph.params`` (same layout), e.g. the live
        tensors of a torch module (torch_import.TorchTrace.live_params) so that, with
        ``config.sound=False``, gradients of the bounds reach them.  dtype (default
        ``config.dtype``): float64 for every bound that decides anything; float32 only for
        searching alpha and beta (bounds/mixed.py re-evaluates its parameters in float64).
        input_set: optional set inside the boxes (e.g. input_sets.Ball) whose ``lower_bound(a,
        bias, rel, abs_)`` tightens every CROWN concretisation (the max of two sound bounds).
        """
        self.graph = graph
        self.config = config
        self.input_set = input_set
        self.dtype = config.dtype if dtype is None else dtype
        if not config.sound:  # training mode: no margins, autograd on
            from dataclasses import replace

            self.config = config = replace(config, float_rel=0.0, float_abs=0.0)
        self.nodes = graph.nodes
        self.params = graph.params(self.dtype) if params is None else params
        if params is not None and (
            len(params) != len(graph.nodes)
            or any(
                v.is_floating_point() and v.dtype != self.dtype for p in params for v in p.values()
            )
        ):
            raise ModelError(f"params must be one dict per node with {self.dtype} tensors")
        self.aux: list[dict] = []
        for p in self.params:
            extra = {}
            if "weight" in p:  # Linear, Conv: IBP's centre/radius form needs |W|
                extra["abs_weight"] = p["weight"].abs()
            self.aux.append(extra)
        self.in_nodes = [[self.nodes[j] for j in n.inputs] for n in self.nodes]
        self.pre_nodes: dict[int, bool] = {}  # node -> True when only splittable ops read it
        for node in self.nodes:
            if node.op.caps.activation:
                j = node.inputs[0]
                self.pre_nodes[j] = self.pre_nodes.get(j, True) and node.op.caps.splittable
        # the splittable (ReLU-like) nodes: branch and bound splits their inputs at 0
        self.relu_nodes = [i for i, n in enumerate(self.nodes) if n.op.caps.splittable]
        # a walk's own rounding is bounded where a bound decides anything: sound and float64
        # (a float32 engine only searches alpha/beta, bounds/mixed.py)
        self.gamma = self._gamma() if config.sound and self.dtype == torch.float64 else 0.0
        self.covered = covered_activations(self.nodes)  # rounding.py

    def _gamma(self) -> float:
        """gamma (rounding.py) for the longest sum a walk computes: a node's width, a weight
        row, a transposed convolution's taps, plus one term per step for the running bias."""
        longest = max([self.graph.n_inputs] + [n.size for n in self.nodes]) + len(self.nodes)
        for p in self.params:
            w = p.get("weight")
            if w is not None:
                longest = max(longest, w[0].numel(), w.shape[0] * w[0, 0].numel())
        return gamma_for(longest, self.dtype)

    # ------------------------------------------------------------------ inputs
    def _box(self, lower: torch.Tensor, upper: torch.Tensor) -> Box:
        """Flat float64 (B, n_in) input box, validated."""
        lo = torch.as_tensor(lower, dtype=self.dtype)
        hi = torch.as_tensor(upper, dtype=self.dtype)
        lo, hi = lo.reshape(lo.shape[0], -1), hi.reshape(hi.shape[0], -1)
        if lo.shape != hi.shape or lo.shape[1] != self.graph.n_inputs:
            raise ModelError(
                f"{self.graph.source}: input box of shape {tuple(lo.shape)} does not fit "
                f"{self.graph.n_inputs} inputs"
            )
        if bool((lo > hi).any()) or not bool(torch.isfinite(lo).all() and torch.isfinite(hi).all()):
            raise ModelError(f"{self.graph.source}: input box is empty or not finite")
        return lo, hi

    def _signs(self, splits: Splits | None, batch: int) -> dict[int, list[torch.Tensor]]:
        """Pre-activation node -> split signs (B, size) float64 from the Relu splits."""
        out: dict[int, list[torch.Tensor]] = {}
        if splits is None:
            return out
        for r, s in splits.relu.items():
            node = self.nodes[r]
            if not node.op.caps.splittable or tuple(s.shape) != (batch, node.size):
                raise InternalError(
                    f"splits for node {r} must be a splittable activation node "
                    f"with shape ({batch}, {node.size})"
                )
            out.setdefault(node.inputs[0], []).append(s.to(self.dtype))
        return out

    @staticmethod
    def _clamp(box: Box, signs: list[torch.Tensor] | None) -> Box:
        """Apply split constraints: +1 -> lower >= 0, -1 -> upper <= 0."""
        if not signs:
            return box
        lo, hi = box
        for s in signs:
            lo = torch.where(s > 0, lo.clamp(min=0), lo)
            hi = torch.where(s < 0, hi.clamp(max=0), hi)
        return lo, hi

    def _grad_mode(self) -> contextlib.AbstractContextManager:
        """no_grad in the sound mode; autograd as the caller has it in the training mode."""
        return torch.no_grad() if self.config.sound else contextlib.nullcontext()

    # ------------------------------------------------------------------ passes
    def ibp(self, lower: torch.Tensor, upper: torch.Tensor) -> dict[int, Box]:
        """IBP bounds (lower, upper) each (B, size) of every node, for a batch of boxes."""
        with self._grad_mode():
            boxes, _, _ = self._prepare(*self._box(lower, upper), None, None, "ibp", Refinement())
        return dict(enumerate(boxes))

    def relax_node(self, i: int, box: Box) -> Relax:
        """Relaxation (the RELAX row) of activation node i, given its input bounds (B, n_in)."""
        op = self.nodes[i].op
        return RELAX[type(op)](op, self.params[i], self.in_nodes[i][0].size, box[0], box[1])

    def _prepare(
        self,
        lo: torch.Tensor,
        hi: torch.Tensor,
        splits: Splits | None,
        pre: dict | None,
        method: str,
        refine: Refinement,
    ) -> tuple[list[Box], dict[int, Relax], Rounding | None]:
        """Bounds of every node (intermediate ones tightened), the activations' relaxations and,
        in the sound mode, the magnitudes that bound a walk's rounding (rounding.py)."""
        cfg = self.config
        signs = self._signs(splits, lo.shape[0])
        pre = pre or {}
        boxes: list[Box] = []
        relax: dict[int, Relax] = {}
        rd = Rounding(self.gamma) if self.gamma > 0 and method != "ibp" else None
        for i, node in enumerate(self.nodes):
            if rd is not None and i > 0 and node.op.caps.affine:
                mags = [
                    rd.box[j] + rd.step[j] if self.covered.get(j) == i else rd.box[j]
                    for j in node.inputs
                ]
                rd.step[i] = finite_mag(
                    MAGNITUDE[type(node.op)](node.op, self.params[i], self.aux[i], mags)
                )
            given = pre.get(i) if i in self.pre_nodes and i <= refine.refine_after else None
            if isinstance(node.op, Input):
                box = (lo, hi)
            elif given is not None:
                # the caller's bounds hold here and IBP from the same input boxes cannot
                # tighten them (Refinement): skip the interval pass (a conv costs two)
                b = lo.shape[0]
                box = (given[0].to(self.dtype).expand(b, -1), given[1].to(self.dtype).expand(b, -1))
            else:
                ins = [boxes[j] for j in node.inputs]
                box = IBP[type(node.op)](
                    node.op, self.params[i], self.aux[i], ins, cfg.float_rel, cfg.float_abs
                )
            if method != "ibp" and node.op.caps.activation:
                relax[i] = self.relax_node(i, boxes[node.inputs[0]])
                if rd is not None:
                    rd.step[i] = finite_mag(relax[i].magnitude(rd.box[node.inputs[0]]))
            if i in self.pre_nodes:
                box = self._clamp(_intersect(box, pre.get(i)), signs.get(i))
                if method != "ibp" and cfg.intermediate_crown and i > max(0, refine.refine_after):
                    box = self._clamp(
                        _intersect(box, self._crown_node(i, box, relax, lo, hi, rd)),
                        signs.get(i),
                    )
                box = _sanitize(box)
            boxes.append(box)
            if rd is not None:
                rd.box[i] = finite_mag(box[0].abs().maximum(box[1].abs()))
        return boxes, relax, rd

    def _crown_node(
        self,
        j: int,
        box: Box,
        relax: dict[int, Relax],
        lo: torch.Tensor,
        hi: torch.Tensor,
        rounding: Rounding | None = None,
    ) -> Box | None:
        """CROWN bounds of node j for the neurons that need them (others stay +-inf)."""
        cur_lo, cur_hi = box
        if self.pre_nodes[j]:
            need = ((cur_lo < 0) & (cur_hi > 0)).any(0)
            idx = need.nonzero().flatten()
        else:
            idx = torch.arange(self.nodes[j].size)
        if idx.numel() == 0:
            return None
        batch = lo.shape[0]
        width = max(self.nodes[j].size, lo.shape[1], max(n.size for n in self.nodes[: j + 1]))
        chunk = max(1, self.config.chunk_elems // max(1, 2 * batch * width))
        new_lo = torch.full_like(cur_lo, float("-inf"))
        new_hi = torch.full_like(cur_hi, float("inf"))
        for start in range(0, idx.numel(), chunk):
            sel = idx[start : start + chunk]
            a0, bias = self._walk_rows(j, sel, batch, relax, rounding)
            lb, _ = concretize(
                a0, bias, lo, hi, self.config.float_rel, self.config.float_abs, want_x=False
            )
            lb = self._set_bound(a0, bias, lb)
            c = sel.numel()
            new_lo[:, sel] = lb[:, :c]
            new_hi[:, sel] = -lb[:, c:]
        return new_lo, new_hi

    def _walk_rows(
        self,
        j: int,
        sel: torch.Tensor,
        batch: int,
        relax: dict[int, Relax],
        rounding: Rounding | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Backward walk for rows +e_k and -e_k (k in sel) of node j: (A0 (B, 2c, n_in), bias)."""
        node, p = self.nodes[j], self.params[j]
        c = sel.numel()
        if isinstance(node.op, Linear):  # first step is a row selection of W
            w = p["weight"][sel]
            a = torch.cat([w, -w]).unsqueeze(0).expand(batch, -1, -1)
            b = torch.cat([p["bias"][sel], -p["bias"][sel]]).unsqueeze(0).expand(batch, -1)
            return self.walk(node.inputs[0], a, b, relax, rounding=rounding)
        a = torch.zeros(batch, 2 * c, node.size, dtype=self.dtype)
        rows = torch.arange(c)
        a[:, rows, sel] = 1.0
        a[:, rows + c, sel] = -1.0
        return self.walk(
            j, a, torch.zeros(batch, 2 * c, dtype=self.dtype), relax, rounding=rounding
        )

    def walk(
        self,
        start: int,
        a: torch.Tensor,
        bias: torch.Tensor,
        relax: dict[int, Relax],
        alphas: dict[int, torch.Tensor] | None = None,
        beta_terms: dict[int, torch.Tensor] | None = None,
        record: dict[int, torch.Tensor] | None = None,
        extra: dict[int, torch.Tensor] | None = None,
        z_terms: dict[int, torch.Tensor] | None = None,
        rounding: Rounding | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One reverse-topological walk from node start: A (B, M, size_start) -> (A0, bias).

        The bound ``A @ value(start) + bias >= A0 @ x + bias_out`` holds for every input x in the
        box the relaxations were built for.  relax: node -> relaxation of each activation (from
        ``relax_node``); affine nodes use their BACKWARD row.  alphas: node -> lower slopes
        (B, M, size) for the nodes with an ALPHA row; beta_terms: node -> coefficients (B, M, size)
        added on a split node's input.  record: if given, receives the coefficient matrix
        reaching each activation's output.  extra: node -> coefficients (B, M, size) added on
        that node's value; z_terms: ReLU node -> coefficients (B, M, size) on its indicators
        (both from cutting planes, bounds/cuts.py).  rounding: the magnitudes of the nodes
        (from ``_prepare``, sound mode); the bias is then lowered by a bound on the walk's own
        float rounding, so that the bound holds exactly, not only up to rounding.  Returns
        (A0 (B, M, n_in), bias (B, M)).
        """
        acc: dict[int, torch.Tensor] = {start: a}
        err = RoundingError(rounding, bias)
        for k, ek in (extra or {}).items():
            acc[k] = acc[k] + ek if k in acc else ek
            err.add(ek, k)
            if k in relax:  # not covered by a consumer's step
                err.add(ek, k, step=True)
        alphas = alphas or {}
        beta_terms = beta_terms or {}
        z_terms = z_terms or {}
        for i in range(start, 0, -1):
            ai = acc.pop(i, None)
            if ai is None:
                if i not in z_terms:
                    continue
                ai = torch.zeros_like(z_terms[i])
            if record is not None and i in relax:
                record[i] = ai
            b: torch.Tensor | None
            if self.covered.get(i, start + 1) > start:  # else the consumer's step covered it
                err.add(ai, i, step=True)
            if i in z_terms:
                rx = relax.get(i)
                if type(rx) is not ReluRelax:  # indicators are those of the ReLU's big-M MILP
                    raise InternalError(f"indicator terms on node {i}, which is not a ReLU")
                a_in, b = rx.backward(ai, alphas.get(i), beta_terms.get(i), z_terms[i])
                outs = [a_in]
                err.add_indicators(z_terms[i])
            elif i in relax:
                a_in, b = relax[i].backward(ai, alphas.get(i), beta_terms.get(i))
                outs = [a_in]
            else:
                outs, b = BACKWARD[type(self.nodes[i].op)](
                    self.nodes[i], self.in_nodes[i], self.params[i], ai
                )
            if b is not None:
                bias = bias + b
            if i in beta_terms:  # added onto the products with the slopes
                err.add(beta_terms[i], self.nodes[i].inputs[0])
            if i in z_terms:  # slopes that depend on the indicator terms
                err.add(outs[0], self.nodes[i].inputs[0])
            for k, ak in zip(self.nodes[i].inputs, outs):
                acc[k] = acc[k] + ak if k in acc else ak
        a0 = acc.get(0)
        if a0 is None:
            a0 = bias.new_zeros(*bias.shape, self.graph.n_inputs)
        return a0, err.lowered(bias)

    # ------------------------------------------------------------------ public
    def activation_coefficients(
        self, pre: dict[int, Box], rows: torch.Tensor
    ) -> dict[int, torch.Tensor]:
        """CROWN backward coefficients (B, size) reaching each activation's output, for one spec row
        per box.

        pre: bounds (B, size) of every activation's input node; rows: (B, n_out).  Uses the
        default (unoptimised) slopes; branching heuristics read these.
        """
        relax = {
            i: self.relax_node(i, pre[n.inputs[0]])
            for i, n in enumerate(self.nodes)
            if n.op.caps.activation
        }
        cmat = rows.to(self.dtype).unsqueeze(1)
        seen: dict[int, torch.Tensor] = {}
        with torch.no_grad():
            self.walk(
                len(self.nodes) - 1, cmat, cmat.new_zeros(cmat.shape[0], 1), relax, record=seen
            )
        return {i: a[:, 0, :] for i, a in seen.items()}

    def compute(
        self,
        lower: torch.Tensor,
        upper: torch.Tensor,
        C: torch.Tensor,
        c0: torch.Tensor | None = None,
        method: str = "crown",
        splits: Splits | None = None,
        pre: dict | None = None,
        warm: object | None = None,
        need_ub: bool = False,
        deadline: float | None = None,
        refine: Refinement = Refinement(),
        crown_start: bool = True,
        cuts: BatchCuts | None = None,
    ) -> BoundResult:
        """Bounds of C @ y + c0 over the boxes [lower, upper] (B, n_in); see BoundResult for shapes.

        C: (B, m, n_out) or (m, n_out); c0: (B, m) or (m,).  method: "ibp" | "crown" |
        "alpha-crown" (with splits: beta-CROWN).  pre: intermediate bounds that are only ever
        tightened.  warm: an AlphaState from an earlier call.  deadline: time.monotonic() value
        after which alpha/beta optimisation stops.  refine: which intermediate bounds are
        recomputed by CROWN (see Refinement).  crown_start: "alpha-crown" first bounds at the
        CROWN slopes too (a floor under the optimised bound; coeffs and linear come from that
        walk); False skips that walk where a warm state starts the search and only the state
        found matters (coeffs and linear are then None; box inputs only, else ignored).
        cuts: cutting planes that hold at every point the rows are about (bounds/cuts.py), used
        by "alpha-crown" with their multipliers searched too; not with need_ub (the cuts say
        nothing about the upper-bound rows).
        """
        if method not in METHODS:
            raise ModelError(f"unknown bound method '{method}' (expected one of {METHODS})")
        if cuts is not None and need_ub:
            raise ModelError("cutting planes bound the given rows only: not with need_ub")
        with self._grad_mode():
            lo, hi = self._box(lower, upper)
            batch = lo.shape[0]
            cmat, cvec = self._spec(C, c0, batch)
            if cuts is not None:
                self._check_cuts(cuts, batch, cmat.shape[1])
            m = cmat.shape[1]
            boxes, relax, rounding = self._prepare(lo, hi, splits, pre, method, refine)
            pre_out = {j: boxes[j] for j in self.pre_nodes}
            if need_ub:
                cmat, cvec = torch.cat([cmat, -cmat], 1), torch.cat([cvec, -cvec], 1)
            out_lo, out_hi = boxes[-1]
            ibp_lb, _ = concretize(
                cmat,
                cvec,
                out_lo,
                out_hi,
                self.config.float_rel,
                self.config.float_abs,
                want_x=False,
            )
            x_lb = None
            state = None
            coeffs = None
            linear = None
            if method == "ibp":
                lb = ibp_lb
            elif method == "alpha-crown" and not crown_start and self.input_set is None:
                rows = cmat.shape[1]
                lb0 = torch.full((batch, rows), float("-inf"), dtype=self.dtype)
                x0 = lo.unsqueeze(1).expand(-1, rows, -1).clone()
                lb, x, state = self._optimize(
                    lo, hi, cmat, cvec, relax, splits, warm, lb0, x0, deadline, cuts, rounding
                )
                lb = torch.maximum(lb, ibp_lb)
                x_lb = x[:, :m]
            else:
                a0, bias = self.walk(len(self.nodes) - 1, cmat, cvec, relax, rounding=rounding)
                coeffs = a0[:, :m]
                linear = (a0, bias)
                lb, x = concretize(a0, bias, lo, hi, self.config.float_rel, self.config.float_abs)
                if method == "alpha-crown":
                    lb, x, state = self._optimize(
                        lo, hi, cmat, cvec, relax, splits, warm, lb, x, deadline, cuts, rounding
                    )
                lb = torch.maximum(self._set_bound(a0, bias, lb), ibp_lb)
                x_lb = x[:, :m]
            lb = torch.where(torch.isnan(lb), torch.full_like(lb, float("-inf")), lb)
        return BoundResult(
            lb[:, :m], -lb[:, m:] if need_ub else None, pre_out, x_lb, state, coeffs, linear
        )

    def _set_bound(self, a0: torch.Tensor, bias: torch.Tensor, lb: torch.Tensor) -> torch.Tensor:
        """lb, raised to the input set's own concretisation of a0 x + bias where that is higher."""
        if self.input_set is None:
            return lb
        cfg = self.config
        return torch.maximum(lb, self.input_set.lower_bound(a0, bias, cfg.float_rel, cfg.float_abs))  # type: ignore[attr-defined]

    def _check_cuts(self, cuts: BatchCuts, batch: int, rows: int) -> None:
        """ModelError (one line) unless the cuts fit this graph and a (batch, rows) call."""
        k = cuts.cuts.size
        if cuts.cuts.rhs.dim() != 1:
            raise ModelError(f"cut right-hand sides must be (K,), got {tuple(cuts.cuts.rhs.shape)}")
        for what, table in (("values", cuts.cuts.values), ("z", cuts.cuts.z)):
            for n, g in table.items():
                if not 0 <= n < len(self.nodes):
                    raise ModelError(f"cut {what} name node {n}; the graph has {len(self.nodes)}")
                width = self.graph.n_inputs if n == 0 else self.nodes[n].size
                if tuple(g.shape) != (k, width):
                    raise ModelError(
                        f"cut {what} of node {n} must be ({k}, {width}), got {tuple(g.shape)}"
                    )
        for n in cuts.cuts.z:
            if type(self.nodes[n].op).__name__ != "Relu":
                raise ModelError(f"cut indicators need a Relu node; node {n} is not one")
        if cuts.mask is not None and tuple(cuts.mask.shape) != (batch, rows, k):
            raise ModelError(
                f"cut mask must be ({batch}, {rows}, {k}), got {tuple(cuts.mask.shape)}"
            )

    def _spec(
        self, C: torch.Tensor, c0: torch.Tensor | None, batch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """C as (B, m, n_out) and c0 as (B, m), float64."""
        cmat = torch.as_tensor(C, dtype=self.dtype)
        if cmat.dim() == 2:
            cmat = cmat.unsqueeze(0).expand(batch, -1, -1)
        if cmat.dim() != 3 or cmat.shape[0] != batch or cmat.shape[2] != self.graph.n_outputs:
            raise ModelError(
                f"C of shape {tuple(cmat.shape)} does not fit batch {batch} and "
                f"{self.graph.n_outputs} outputs"
            )
        m = cmat.shape[1]
        if c0 is None:
            cvec = cmat.new_zeros(batch, m)
        else:
            cvec = torch.as_tensor(c0, dtype=self.dtype)
            cvec = cvec.unsqueeze(0).expand(batch, -1) if cvec.dim() == 1 else cvec
            if tuple(cvec.shape) != (batch, m):
                raise ModelError(f"c0 of shape {tuple(cvec.shape)} does not fit ({batch}, {m})")
        return cmat, cvec

    def _optimize(
        self,
        lo: torch.Tensor,
        hi: torch.Tensor,
        cmat: torch.Tensor,
        cvec: torch.Tensor,
        relax: dict[int, Relax],
        splits: Splits | None,
        warm: object | None,
        lb0: torch.Tensor,
        x0: torch.Tensor,
        deadline: float | None,
        cuts: BatchCuts | None = None,
        rounding: Rounding | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, AlphaState]:
        """Projected Adam on alpha (ReLU lower slopes) and beta (split multipliers); best per
        row."""
        return optimize_alpha_beta(
            self, lo, hi, cmat, cvec, relax, splits, warm, lb0, x0, deadline, cuts, rounding
        )

    def evaluate(
        self,
        lower: torch.Tensor,
        upper: torch.Tensor,
        C: torch.Tensor,
        c0: torch.Tensor | None,
        state: AlphaState,
        splits: Splits | None = None,
        pre: dict | None = None,
        refine: Refinement = Refinement(),
        cuts: BatchCuts | None = None,
    ) -> torch.Tensor:
        """Lower bound (B, m) at exactly the given alpha/beta (and cut multipliers, with cuts; no
        optimisation, no max with CROWN)."""
        with torch.no_grad():
            lo, hi = self._box(lower, upper)
            cmat, cvec = self._spec(C, c0, lo.shape[0])
            _, relax, rounding = self._prepare(lo, hi, splits, pre, "crown", refine)
            if cuts is not None:
                self._check_cuts(cuts, lo.shape[0], cmat.shape[1])
            alphas, betas, signs = init_params(
                self, relax, splits, state, cmat.shape[1], lo.shape[0], cuts
            )
            a0, bias = walk_with_cuts(self, cmat, cvec, relax, alphas, betas, signs, cuts, rounding)
            lb, _ = concretize(
                a0, bias, lo, hi, self.config.float_rel, self.config.float_abs, want_x=False
            )
        return lb

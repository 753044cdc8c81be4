"""Typed configuration with defaults, validated on construction."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Literal, get_args

from .errors import InputError

# Option names, defined once: the CLI's choices and the validation below read these.
Mode = Literal["auto", "relu-split", "input-split", "milp"]
SolverName = Literal["highs", "pulp"]
ReplayName = Literal["auto", "onnxruntime", "reference"]
BoundMethod = Literal["ibp", "crown", "alpha-crown"]  # cheap to expensive
InputBranching = Literal["smear", "coef", "both"]
ReluBranching = Literal["auto", "fsb", "babsr", "width"]
SmoothBranching = Literal["auto", "input", "activation"]
MODES: tuple[Mode, ...] = get_args(Mode)
SOLVERS: tuple[SolverName, ...] = get_args(SolverName)
REPLAYERS: tuple[ReplayName, ...] = get_args(ReplayName)
BOUND_METHODS: tuple[BoundMethod, ...] = get_args(BoundMethod)
INPUT_BRANCHINGS: tuple[InputBranching, ...] = get_args(InputBranching)
RELU_BRANCHINGS: tuple[ReluBranching, ...] = get_args(ReluBranching)
SMOOTH_BRANCHINGS: tuple[SmoothBranching, ...] = get_args(SmoothBranching)


@dataclass(frozen=True)
class AttackConfig:
    """PGD falsification: restarts, steps and its share of the deadline."""

    enabled: bool = True
    restarts: int = 32
    steps: int = 40
    step_size: float = 0.1  # fraction of each input's half-width per step (decays)
    time_share: float = 0.05  # at most this share of the deadline


@dataclass(frozen=True)
class MilpConfig:
    """Exact MILP stage."""

    # unsat only when the solver's proven lower bound on min max_k(C_k y - d_k)
    # exceeds this margin (see README, "Soundness in floating point").
    margin: float = 1e-5
    # pre-activation bounds are widened by this (relative + absolute) before big-M use
    bound_widening: float = 1e-7
    # tighten the pre-activation bounds of the first ReLU layers by LP before a whole-box MILP
    lp_tighten_layers: int = 2
    threads: int = 1


@dataclass(frozen=True)
class BabConfig:
    """Branch and bound."""

    batch_size: int = 256
    max_domains: int = 200_000
    input_split_max_dim: int = 16
    milp_handoff_domains: int = 5_000
    # ... unless the global lower bound, extrapolated linearly from its trend (bab/progress.py),
    # reaches 0 within this share of the time left: the search keeps going (0: always hand off)
    handoff_trend_share: float = 0.5
    # input splitting (bab/input_split.py): which input to bisect.  "smear": |gradient| x width
    # at the centre; "coef": |A_j| x width of the linear lower bound that matters most; "both":
    # the smear choice, and the coef choice too where they differ (see _branch_dims)
    input_branching: InputBranching = "both"
    # input splitting: alpha-CROWN steps for the domains CROWN leaves open (0: CROWN only),
    # once this many domains have been bounded (easy instances stay on CROWN alone), while it
    # closes at least input_alpha_min_rate of the domains it is given; below that rate it runs
    # in one round of eight (bab/input_split.py AlphaGate; 0: in every round)
    input_alpha_iters: int = 10
    input_alpha_after: int = 1024
    input_alpha_min_rate: float = 0.1
    # ReLU splitting (bab/relu_split.py)
    # which ReLU to split: "fsb" (bab/fsb.py) bounds both children of the fsb_candidates best
    # "babsr" candidates of each domain (one batched CROWN walk at the parent's alpha/beta) and
    # splits the one whose better child comes closest to closing; "babsr" alone scores
    # intercept x backward coefficient, "width" intercept x |W|.  "auto": fsb for networks
    # without convolutions, babsr with them.  Measured (domains): mnist 256x4 prop_3_0.05
    # 279 -> 99, 256x6 prop_7_0.03 1069 -> 181; on the oval21 CNNs fsb saved fewer domains
    # (img8194 1229 -> 895) than its 2 x fsb_candidates extra backward walks per domain cost
    # (img6767 20 -> 53 s, wide img8517 97 s -> timeout at 120 s)
    branching: ReluBranching = "auto"
    fsb_candidates: int = 8
    bound_iters: int = (
        10  # beta-CROWN Adam steps per batch of sub-domains (the root uses the bound default)
    )
    # ... on networks with convolutions.  Measured on seven oval21 rows ReLU splitting decides,
    # 5 / 3 / 2 steps in one run: 245 / 220 / 218 s (base img876 35 / 30 / 29 s, 1 step 41 s; 10
    # steps 376 s in an earlier run), 2 steps with up to 34% more domains.  On mnist_fc 5 steps cost
    # 256x6 prop_7_0.03 6 -> 33 s (181 -> 560 domains), so MLPs keep 10
    bound_iters_conv: int = 3
    # recompute intermediate bounds with CROWN in every sub-domain; off by default: beta-CROWN on
    # the root's intermediate bounds reached the same domain counts 1.7-2.4x faster (oval21,
    # mnist_fc)
    intermediate_refine: bool = False
    reuse_pre: bool = (
        True  # ... only for the nodes after the latest split (the parent's bounds hold before it)
    )
    root_pre_iters: int = (
        20  # alpha-CROWN steps per intermediate node at the root (0: keep the CROWN bounds)
    )
    joint: bool = (
        True  # search all open polytopes of a case in one tree (False: one search per polytope)
    )
    stall_rounds: int = (
        40  # hand off to the MILP when the global lower bound stalls this many batches (0: never)
    )
    max_memory_mb: int = (
        3_000  # queue memory budget; past it (or max_domains) the search goes depth-first
    )
    pgd_every: int = 25  # PGD seeded by the worst sub-domains every this many batches (0: never)
    # both cores: the exact MILP of the case (on the search's root bounds) runs on a second thread
    # while the search runs; the first to decide wins (HiGHS only; replaces the stall hand-off).
    # Off by default: on the 2-vCPU machine measured, a second busy core slows the search by ~40%
    # and the MILP by as much, so racing lost to search-then-hand-off (see bab/race.py).  Even
    # when on, only networks without convolutions and with at most race_max_unstable unstable
    # ReLUs at the root race (a convolutional encoding holds the GIL for seconds)
    race_milp: bool = False
    race_max_unstable: int = 64
    # ReLU splitting: search alpha/beta in float32 and compute every bound that decides anything
    # in float64 at the parameters found (bounds/mixed.py)
    float32_search: bool = True
    # prefix refinement (bab/prefix_refine.py): once ReLU splitting has run prefix_after_s
    # seconds without a verdict on a network without convolutions, the unstable neurons of the
    # first prefix_layers ReLU layers whose input is not affine in the box are proven stable
    # where a ReLU-splitting search on the network prefix can (at most prefix_side_s per neuron
    # side, prefix_share of the time left in all), and the search restarts from that root
    # (0: off).  Measured: mnist 256x4 prop_0_0.05 and 256x6 prop_3_0.05, undecided at 300 s
    # before, unsat in 88-92 s and 38 s (root unstable 203 -> 127, 548 -> 122)
    prefix_layers: int = 8
    prefix_after_s: float = 5.0
    prefix_share: float = 0.4
    prefix_side_s: float = 1.0
    # processes that search a layer's sides (second_core.py): 2 shares them with a process
    # forked onto the second core (where this process may run on two), 1 keeps them here.
    # Measured (mnist_fc, one instance at a time, 1 -> 2): 256x4 prop_0_0.05 58.2 -> 37.1 s,
    # prop_5_0.05 56.1 -> 44.8 s, prop_10_0.05 50.4 -> 35.7 s, 256x6 prop_0_0.05 88.9 -> 82.1 s;
    # 256x6 prop_9_0.03 a timeout at 300 s -> unsat in 161 s
    prefix_workers: int = 2
    # a second round (> 0: at most this per side), once the restarted search has run as long as
    # the first round took: each side of every neuron still unstable gets a search for a
    # threshold halfway to its most extreme sampled value, and the search's queued domains take
    # the tightened bounds.  Off by default: on 5 hard mnist_fc rows at 300 s it decided none
    # (256x4 prop_6_0.03 global lower bound -0.51 instead of -0.57 at the end)
    prefix_tighten_s: float = 0.0
    # two-neuron cuts (bounds/pair_cuts.py, bab/cut_stage.py): where prefix refinement would
    # start, the root's intermediate bounds are first tightened layer by layer with the pair
    # cuts of the layers before, each unstable neuron paired with this many others (0: off);
    # cuts whose multiplier stays at or below pair_cuts_keep for every row are dropped after
    # each layer.  Measured (200 s, one at a time): mnist 256x6 prop_3_0.05 49.9 -> 30.3 s,
    # 256x4 prop_0 / 5 / 10_0.05 62.2 / 72.5 / 90.5 -> 62.4 / 63.7 / 62.7 s
    pair_cuts: int = 4
    pair_cuts_keep: float = 1e-3
    # networks with Sigmoid/Tanh (bab/smooth_split.py): "input" bisects the input box,
    # "activation" splits activation input intervals, "auto" picks by input_split_max_dim
    smooth_branching: SmoothBranching = "auto"

    def bound_iters_for(self, has_convolutions: bool) -> int:
        """The beta-CROWN steps per batch of a ReLU-splitting search: bound_iters_conv on a
        network with convolutions, bound_iters otherwise."""
        return self.bound_iters_conv if has_convolutions else self.bound_iters


@dataclass(frozen=True)
class Limits:
    """Hard limits on untrusted input, each checked before the memory it guards is allocated.

    Exceeding one is an InputError naming the file and the limit (see README, "Untrusted input
    and hard limits").  Sizes are bytes, counts are tensor elements / nodes / terms.
    """

    max_file_bytes: int = 2**30  # a model or property file as stored on disk (compressed or not)
    max_decompressed_bytes: int = 2**31  # after gunzip, counted while streaming
    max_compression_ratio: int = 200  # gunzip output / input, checked past 16 MiB of output
    max_tensor_elements: int = 2**27  # one initializer or folded constant
    max_activation_elements: int = 2**25  # one tensor computed from the network input
    max_parameters: int = 2**28  # all initializers together
    max_nodes: int = 100_000  # ONNX nodes in the graph
    max_property_bytes: int = 2**25  # VNN-LIB text (after gunzip)
    max_disjuncts: int = (
        100_000  # VNN-LIB terms in disjunctive normal form, checked while expanding
    )
    max_nesting_depth: int = 10_000  # VNN-LIB parentheses

    def __post_init__(self) -> None:
        """Every limit must be a positive integer."""
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"limit {name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class VerifyConfig:
    """Everything a verification run needs besides the network and property."""

    timeout: float = 300.0
    solver: SolverName = "highs"
    mode: Mode = "auto"
    seed: int = 0
    replay: ReplayName = "auto"
    use_bounds: bool = True
    bound_method: BoundMethod = "alpha-crown"
    check_import_points: int = 16
    # torch intra-op threads while verifying (restored afterwards).  "auto" (second_core.py
    # torch_threads): two on networks with convolutions where this process may use two cores,
    # one otherwise.  One thread is as fast for the small tensors of an MLP's branch and bound
    # (two: 256x4 prop_5_0.05 57 -> 62 s) and avoids OpenMP spin-waiting when several
    # verifications share the cores; two make the CNNs' convolutions 25-40% faster (oval21 wide
    # img8517 42 -> 27 s, same domains)
    torch_threads: int | Literal["auto"] = "auto"
    # where the bound engine and branch and bound run: "cpu", "cuda" or "cuda:N" (device.py)
    device: str = "cpu"
    attack: AttackConfig = field(default_factory=AttackConfig)
    milp: MilpConfig = field(default_factory=MilpConfig)
    bab: BabConfig = field(default_factory=BabConfig)
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> "VerifyConfig":
        """A config from a nested dict (missing keys: defaults); unknown keys and bad types
        raise."""
        from .config_io import config_from_dict

        return config_from_dict(cls, data, source)

    @classmethod
    def from_yaml(cls, path: "str | os.PathLike[str]") -> "VerifyConfig":
        """A config from a YAML file (see benchmarks/configs/ for examples)."""
        from .config_io import config_from_yaml

        return config_from_yaml(cls, path)

    def to_dict(self) -> dict:
        """Every option as a nested dict of plain values; ``from_dict`` reads it back."""
        from .config_io import config_to_dict

        return config_to_dict(self)

    def to_yaml(self) -> str:
        """Every option as YAML text; ``from_yaml`` reads it back."""
        from .config_io import config_to_yaml

        return config_to_yaml(self)

    def __post_init__(self) -> None:
        """Validate option values."""
        if not (self.timeout > 0):  # also refuses NaN; math.inf means no time limit
            raise InputError(f"timeout must be positive (inf for none), got {self.timeout}")
        if self.solver not in SOLVERS:
            raise InputError(f"unknown solver '{self.solver}' (choose from {', '.join(SOLVERS)})")
        if self.mode not in MODES:
            raise InputError(f"unknown mode '{self.mode}' (choose from {', '.join(MODES)})")
        if self.replay not in REPLAYERS:
            raise InputError(f"unknown replay '{self.replay}' (choose from {', '.join(REPLAYERS)})")
        if self.torch_threads != "auto" and (
            isinstance(self.torch_threads, bool)
            or not isinstance(self.torch_threads, int)
            or self.torch_threads < 1
        ):
            raise InputError(
                f"torch_threads must be 'auto' or at least 1, got {self.torch_threads!r}"
            )
        if self.bab.input_branching not in INPUT_BRANCHINGS:
            raise InputError(
                f"unknown input branching '{self.bab.input_branching}' "
                f"(choose from {', '.join(INPUT_BRANCHINGS)})"
            )
        if self.bab.branching not in RELU_BRANCHINGS:
            raise InputError(
                f"unknown branching '{self.bab.branching}' "
                f"(choose from {', '.join(RELU_BRANCHINGS)})"
            )
        b = self.bab
        if b.prefix_workers not in (1, 2):
            raise InputError(f"bab.prefix_workers must be 1 or 2, got {b.prefix_workers}")
        if b.prefix_layers < 0 or not (0.0 <= b.prefix_share <= 1.0):
            raise InputError(
                f"bab.prefix_layers must be >= 0 and bab.prefix_share in [0, 1], got "
                f"{b.prefix_layers} and {b.prefix_share}"
            )
        if not (b.prefix_side_s > 0 and b.prefix_after_s >= 0 and b.prefix_tighten_s >= 0):
            raise InputError(
                f"bab.prefix_side_s must be > 0, bab.prefix_after_s and bab.prefix_tighten_s "
                f">= 0, got {b.prefix_side_s}, {b.prefix_after_s} and {b.prefix_tighten_s}"
            )
        if b.pair_cuts < 0 or b.pair_cuts_keep < 0:
            raise InputError(
                f"bab.pair_cuts and bab.pair_cuts_keep must be >= 0, got {b.pair_cuts} and "
                f"{b.pair_cuts_keep}"
            )
        if b.bound_iters < 0 or b.bound_iters_conv < 0:
            raise InputError(
                f"bab.bound_iters and bab.bound_iters_conv must be >= 0, got {b.bound_iters} "
                f"and {b.bound_iters_conv}"
            )
        if self.bab.fsb_candidates < 1:
            raise InputError(f"fsb_candidates must be at least 1, got {self.bab.fsb_candidates}")
        if self.bab.smooth_branching not in SMOOTH_BRANCHINGS:
            raise InputError(
                f"unknown smooth branching '{self.bab.smooth_branching}' "
                f"(choose from {', '.join(SMOOTH_BRANCHINGS)})"
            )
        if self.bab.input_alpha_iters < 0 or self.bab.input_alpha_after < 0:
            raise InputError("bab.input_alpha_iters and bab.input_alpha_after must be >= 0")
        rate = self.bab.input_alpha_min_rate
        if not (isinstance(rate, (int, float)) and 0 <= rate <= 1):
            raise InputError(f"bab.input_alpha_min_rate must be a number in [0, 1], got {rate!r}")
        share = self.bab.handoff_trend_share
        if not (isinstance(share, (int, float)) and math.isfinite(share) and share >= 0):
            raise InputError(f"bab.handoff_trend_share must be a finite number >= 0, got {share!r}")
        from .device import check_device_name

        check_device_name(self.device)
        if self.bound_method not in BOUND_METHODS:
            raise InputError(
                f"unknown bound method '{self.bound_method}' "
                f"(choose from {', '.join(BOUND_METHODS)})"
            )


class Deadline:
    """One wall-clock deadline passed down through every stage."""

    def __init__(self, seconds: float) -> None:
        """Start the clock now."""
        self.start = time.monotonic()
        self.end = self.start + seconds

    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        """True once the deadline has passed."""
        return time.monotonic() >= self.end

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self.start

    def sub(self, share: float, at_most: float | None = None) -> "Deadline":
        """A shorter deadline: ``share`` of what remains, capped at ``at_most`` seconds."""
        secs = self.remaining() * share
        if at_most is not None:
            secs = min(secs, at_most)
        d = Deadline(0.0)
        d.start = time.monotonic()
        d.end = min(self.end, d.start + secs)
        return d

"""Typed configuration with defaults, validated on construction."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .errors import InputError

MODES = ("auto", "relu-split", "input-split", "milp")
SOLVERS = ("highs", "pulp")
REPLAYERS = ("auto", "onnxruntime", "reference")


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
    # input splitting (bab/input_split.py): which input to bisect.  "smear": |gradient| x width
    # at the centre; "coef": |A_j| x width of the linear lower bound that matters most; "both":
    # the smear choice, and the coef choice too where they differ (see _branch_dims)
    input_branching: str = "both"
    # ReLU splitting (bab/relu_split.py)
    branching: str = "babsr"  # "babsr" (intercept x backward coefficient) or "width" (intercept x |W|)
    bound_iters: int = 10  # beta-CROWN Adam steps per batch of sub-domains (the root uses the bound default)
    # recompute intermediate bounds with CROWN in every sub-domain; off by default: beta-CROWN on the
    # root's intermediate bounds reached the same domain counts 1.7-2.4x faster (oval21, mnist_fc)
    intermediate_refine: bool = False
    reuse_pre: bool = True  # ... only for the nodes after the latest split (the parent's bounds hold before it)
    root_pre_iters: int = 20  # alpha-CROWN steps per intermediate node at the root (0: keep the CROWN bounds)
    joint: bool = True  # search all open polytopes of a case in one tree (False: one search per polytope)
    stall_rounds: int = 40  # hand off to the MILP when the global lower bound stalls this many batches (0: never)
    max_memory_mb: int = 3_000  # queue memory budget; past it (or max_domains) the search goes depth-first
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
    # networks with Sigmoid/Tanh (bab/smooth_split.py): "input" bisects the input box,
    # "activation" splits activation input intervals, "auto" picks by input_split_max_dim
    smooth_branching: str = "auto"


@dataclass(frozen=True)
class VerifyConfig:
    """Everything a verification run needs besides the network and property."""

    timeout: float = 300.0
    solver: str = "highs"
    mode: str = "auto"
    seed: int = 0
    replay: str = "auto"
    use_bounds: bool = True
    bound_method: str = "alpha-crown"
    check_import_points: int = 16
    # torch intra-op threads while verifying (restored afterwards).  One thread is
    # much faster for the small tensors of branch and bound, and avoids OpenMP
    # spin-waiting when several verifications share the cores.
    torch_threads: int = 1
    # where the bound engine and branch and bound run: "cpu", "cuda" or "cuda:N" (device.py)
    device: str = "cpu"
    attack: AttackConfig = field(default_factory=AttackConfig)
    milp: MilpConfig = field(default_factory=MilpConfig)
    bab: BabConfig = field(default_factory=BabConfig)

    def __post_init__(self) -> None:
        """Validate option values."""
        if not (self.timeout > 0):
            raise InputError(f"timeout must be positive, got {self.timeout}")
        if self.solver not in SOLVERS:
            raise InputError(f"unknown solver '{self.solver}' (choose from {', '.join(SOLVERS)})")
        if self.mode not in MODES:
            raise InputError(f"unknown mode '{self.mode}' (choose from {', '.join(MODES)})")
        if self.replay not in REPLAYERS:
            raise InputError(f"unknown replay '{self.replay}' (choose from {', '.join(REPLAYERS)})")
        if self.torch_threads < 1:
            raise InputError(f"torch_threads must be at least 1, got {self.torch_threads}")
        if self.bab.input_branching not in ("smear", "coef", "both"):
            raise InputError(f"unknown input branching '{self.bab.input_branching}' (smear, coef, both)")
        from .device import check_device_name

        check_device_name(self.device)
        if self.bab.smooth_branching not in ("auto", "input", "activation"):
            raise InputError(f"unknown smooth branching '{self.bab.smooth_branching}' (auto, input, activation)")
        if self.bound_method not in ("ibp", "crown", "alpha-crown"):
            raise InputError(f"unknown bound method '{self.bound_method}'")


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

"""The epsilon ramp and kappa / beta schedules of certified training (Gowal et al.; Zhang et al.).

Training runs ``total`` steps: ``warmup`` steps of natural training (eps = 0, kappa = 1), then
``ramp`` steps over which eps grows linearly from 0 to its target, kappa falls linearly from
``kappa_start`` to ``kappa_end`` and beta (the CROWN-IBP weight) falls from ``beta_start`` to
``beta_end``; the remaining steps hold the final values.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError


@dataclass(frozen=True)
class Schedule:
    """Step-indexed schedules; all values are plain floats."""

    total: int
    warmup: int
    ramp: int
    eps: float
    kappa_start: float = 1.0
    kappa_end: float = 0.5
    beta_start: float = 1.0
    beta_end: float = 0.0

    def __post_init__(self) -> None:
        """Validate once."""
        if (
            self.total < 1
            or self.warmup < 0
            or self.ramp < 0
            or self.warmup + self.ramp > self.total
        ):
            raise InputError(
                f"schedule: need 0 <= warmup + ramp <= total (got {self.warmup} + "
                f"{self.ramp} > {self.total})"
            )
        if self.eps < 0:
            raise InputError(f"schedule: eps must be >= 0, got {self.eps}")

    @classmethod
    def of(
        cls,
        total: int,
        eps: float,
        warmup_frac: float = 0.1,
        ramp_frac: float = 0.5,
        kappa_end: float = 0.5,
    ) -> Schedule:
        """Warmup and ramp given as fractions of ``total`` steps."""
        warmup = int(total * warmup_frac)
        ramp = min(total - warmup, max(1, int(total * ramp_frac)))
        return cls(total, warmup, ramp, eps, kappa_end=kappa_end)

    def progress(self, step: int) -> float:
        """Fraction of the ramp done at ``step`` (0 before it, 1 after it)."""
        if step < self.warmup:
            return 0.0
        if self.ramp == 0:
            return 1.0
        return min(1.0, (step - self.warmup + 1) / self.ramp)

    def eps_at(self, step: int) -> float:
        """Training epsilon at ``step``."""
        return self.eps * self.progress(step)

    def kappa_at(self, step: int) -> float:
        """Weight of the clean loss at ``step``."""
        t = self.progress(step)
        return self.kappa_start + (self.kappa_end - self.kappa_start) * t

    def beta_at(self, step: int) -> float:
        """CROWN-IBP weight of the CROWN bound (vs IBP) at ``step``."""
        t = self.progress(step)
        return self.beta_start + (self.beta_end - self.beta_start) * t

"""The parsed form of a VNN-LIB property: input boxes and unsafe output polytopes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _array_key(array: np.ndarray) -> tuple[tuple[int, ...], bytes]:
    """Hashable key of an array's shape and values, with -0.0 folded into 0.0."""
    return array.shape, (np.asarray(array, dtype=np.float64) + 0.0).tobytes()


@dataclass(frozen=True)
class Polytope:
    """The unsafe output set {y : C @ y <= d}; zero rows means every output is unsafe."""

    C: np.ndarray  # (m, n_outputs) float64
    d: np.ndarray  # (m,) float64

    def __eq__(self, other: object) -> bool:
        """Equal when both arrays have the same shape and values."""
        if not isinstance(other, Polytope):
            return NotImplemented
        return (
            self.C.shape == other.C.shape
            and np.array_equal(self.C, other.C)
            and np.array_equal(self.d, other.d)
        )

    def __hash__(self) -> int:
        """Hash of the array contents, consistent with __eq__."""
        return hash((_array_key(self.C), _array_key(self.d)))


@dataclass(frozen=True)
class Case:
    """One input box and the output polytopes that are unsafe for it (unsafe iff in SOME)."""

    lower: np.ndarray  # (n_inputs,) float64
    upper: np.ndarray  # (n_inputs,) float64
    polytopes: tuple[Polytope, ...]

    def __eq__(self, other: object) -> bool:
        """Equal when the boxes and the polytope sequences are equal."""
        if not isinstance(other, Case):
            return NotImplemented
        return (
            np.array_equal(self.lower, other.lower)
            and np.array_equal(self.upper, other.upper)
            and self.polytopes == other.polytopes
        )

    def __hash__(self) -> int:
        """Hash of the box and polytopes, consistent with __eq__."""
        return hash((_array_key(self.lower), _array_key(self.upper), self.polytopes))


@dataclass(frozen=True)
class Property:
    """A whole property: violated iff some case's box reaches one of its polytopes."""

    n_inputs: int
    n_outputs: int
    cases: tuple[Case, ...]
    source: str  # file name or "<string>"

"""DNF terms to cases: one input box per term, terms with equal boxes grouped."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .formula import LOWER, ROW, UPPER, Term
from .lexer import Source
from .property_types import Case, Polytope


@dataclass
class _TermState:
    """Bounds, the tokens that set them, and (position, coefs, rhs) rows of one term."""

    lower: list[float]
    upper: list[float]
    lower_at: list[int]
    upper_at: list[int]
    rows: list = field(default_factory=list)

    def copy(self) -> _TermState:
        """An independent copy (lists are shallow-copied)."""
        return _TermState(
            self.lower[:], self.upper[:], self.lower_at[:], self.upper_at[:], self.rows[:]
        )

    def apply(self, atoms: Term) -> None:
        """Intersect the bounds with the atoms' bounds and collect their rows."""
        lower, upper = self.lower, self.upper
        for atom in atoms:
            kind = atom[0]
            if kind == LOWER:
                index = atom[1]
                if atom[2] > lower[index]:
                    lower[index] = atom[2]
                    self.lower_at[index] = atom[3]
            elif kind == UPPER:
                index = atom[1]
                if atom[2] < upper[index]:
                    upper[index] = atom[2]
                    self.upper_at[index] = atom[3]
            elif kind == ROW:
                self.rows.append((atom[3], atom[1], atom[2]))


def _position(row: tuple) -> int:
    """Token index of a collected (position, coefficients, rhs) row."""
    return row[0]


@dataclass
class _Group:
    """A case under construction: its box and its distinct polytopes so far."""

    lower: np.ndarray
    upper: np.ndarray
    polytopes: list[Polytope] = field(default_factory=list)
    seen: set = field(default_factory=set)


def _check_box(
    state: _TermState, term: Term, source: Source, declared_at: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """The term's box as arrays, or a PropertyError if it is empty or unbounded."""
    lower = np.array(state.lower, dtype=np.float64)
    upper = np.array(state.upper, dtype=np.float64)
    empty = lower > upper
    if empty.any():
        i = int(np.argmax(empty))
        raise source.error(
            f"empty input box: X_{i} lower {state.lower[i]!r} > upper {state.upper[i]!r}",
            max(state.lower_at[i], state.upper_at[i]),
        )
    unbounded = ~(np.isfinite(lower) & np.isfinite(upper))
    if unbounded.any():
        i = int(np.argmax(unbounded))
        missing = [
            name
            for name, value in (("lower", lower[i]), ("upper", upper[i]))
            if not math.isfinite(value)
        ]
        where = " in the disjunct starting here" if term else ""
        raise source.error(
            f"X_{i} has no {' or '.join(missing)} bound{where}; every input needs both",
            term[0][3] if term else declared_at[i],
        )
    return lower, upper


def _polytope(rows: tuple, n_outputs: int) -> Polytope:
    """The polytope of distinct rows ((j, coef), ...), rhs."""
    C = np.zeros((len(rows), n_outputs), dtype=np.float64)
    d = np.empty(len(rows), dtype=np.float64)
    for r, (coefs, rhs) in enumerate(rows):
        for j, coef in coefs:
            C[r, j] = coef
        d[r] = rhs
    return Polytope(C, d)


def build_cases(
    common: Term,
    terms: list[Term],
    n_inputs: int,
    n_outputs: int,
    source: Source,
    declared_at: list[int],
) -> tuple[Case, ...]:
    """Cases of the DNF ``common AND (term_1 OR term_2 ...)``; ``declared_at[i]`` locates X_i."""
    base = _TermState(
        [-math.inf] * n_inputs, [math.inf] * n_inputs, [-1] * n_inputs, [-1] * n_inputs
    )
    base.apply(common)
    groups: dict[tuple, _Group] = {}
    polytope_cache: dict[tuple, Polytope] = {}
    for term in terms:
        state = base.copy()
        state.apply(term)
        lower, upper = _check_box(state, term, source, declared_at)
        state.rows.sort(key=_position)  # file order, whichever part a row came from
        rows = tuple(dict.fromkeys((coefs, rhs) for _, coefs, rhs in state.rows))
        polytope = polytope_cache.get(rows)
        if polytope is None:
            polytope = polytope_cache[rows] = _polytope(rows, n_outputs)
        box = (tuple(state.lower), tuple(state.upper))
        group = groups.get(box)
        if group is None:
            group = groups[box] = _Group(lower, upper)
        if rows not in group.seen:
            group.seen.add(rows)
            group.polytopes.append(polytope)
    return tuple(Case(g.lower, g.upper, tuple(g.polytopes)) for g in groups.values())

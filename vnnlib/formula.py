"""Assertions to disjunctive normal form over classified atoms.

An atom is one of
  (LOWER, i, value, token)            X_i >= value
  (UPPER, i, value, token)            X_i <= value
  (ROW, ((j, coef), ...), rhs, token) sum coef * Y_j <= rhs   (j ascending)
A term is a tuple of atoms (a conjunction); a DNF is a list of terms (a
disjunction): ``[]`` is false and ``[()]`` is true.

Numbers are read as float64 (nearest). Atoms of the plain forms ``(op a b)``
with a and b a variable or a number need no arithmetic and stay exact. Atoms
with compound terms are evaluated exactly in rationals and then rounded
outward: input bounds away from the box's inside, output right-hand sides
upward (a larger unsafe set, which keeps ``unsat`` sound).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from fractions import Fraction
from typing import Any, Union

from .lexer import Child, Node, Source
from .limits import MAX_ATOMS_PER_TERM_AVERAGE

LOWER = 0
UPPER = 1
ROW = 2

Atom = tuple
Term = tuple  # tuple[Atom, ...]
Dnf = list  # list[Term]
Var = tuple[bool, int]  # (is_output, index)
Linear = tuple[dict, Fraction]  # ({Var: coefficient}, constant)

MAX_ARITHMETIC_DEPTH = 100

NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
COMPARISONS = frozenset(("<=", "<", ">=", ">", "="))
_NON_FINITE = frozenset(("nan", "inf", "infinity"))
_MIX = "a constraint must not mix input (X) and output (Y) variables"
_MULTI_X = "input constraints must be bounds on single variables"


def _round_up(value: Fraction) -> float:
    """Smallest float64 not below ``value``."""
    result = float(value)
    if Fraction(result) < value:
        result = math.nextafter(result, math.inf)
    return result


def _round_down(value: Fraction) -> float:
    """Largest float64 not above ``value``."""
    result = float(value)
    if Fraction(result) > value:
        result = math.nextafter(result, -math.inf)
    return result


def _var_name(var: Var) -> str:
    """The VNN-LIB name of a variable."""
    return f"{'Y' if var[0] else 'X'}_{var[1]}"


class FormulaReader:
    """Turns assertion s-expressions into DNF; ``variables`` maps declared names to Var."""

    def __init__(self, source: Source, variables: dict[str, Var]) -> None:
        """Read formulas of ``source`` against the (growing) declaration table."""
        self.source = source
        self.tokens = source.tokens
        self.variables = variables

    # ----------------------------------------------------------- helpers
    def head(self, node: Node) -> tuple[str, list[Child]]:
        """The operator symbol of a node and its argument list."""
        if len(node) == 1:
            raise self.source.error("empty expression '()'", node[0])
        first = node[1]
        if not isinstance(first, int):
            raise self.source.error("expected an operator symbol, found '('", first[0])
        return self.tokens[first], node[2:]

    def operand(self, index: int) -> Union[float, Var]:
        """A leaf token as a float constant or a declared variable."""
        token = self.tokens[index]
        var = self.variables.get(token)
        if var is not None:
            return var
        if token.lstrip("+-").lower() in _NON_FINITE:
            raise self.source.error(f"'{token}' is not a finite number", index)
        if token[0] == "#":
            raise self.source.error(
                f"'{token}': hexadecimal and binary literals are not supported; "
                "write a decimal number",
                index,
            )
        if NUMBER_RE.fullmatch(token):
            value = float(token)
            if math.isinf(value):
                raise self.source.error(f"number {token} is out of float64 range", index)
            return value
        if token[0].isalpha() or token[0] == "_":
            raise self.source.error(f"undeclared variable '{token}'", index)
        raise self.source.error(f"unexpected token '{token}'", index)

    # ----------------------------------------------------------- atoms
    def _le_simple(self, a: Union[float, Var], b: Union[float, Var], at: int) -> list | None:
        """Atoms for ``a <= b`` with leaf operands: [] is true, None is false."""
        if isinstance(a, float):
            if isinstance(b, float):
                return [] if a <= b else None
            if b[0]:
                return [(ROW, ((b[1], -1.0),), 0.0 - a, at)]
            return [(LOWER, b[1], a, at)]
        if isinstance(b, float):
            if a[0]:
                return [(ROW, ((a[1], 1.0),), b, at)]
            return [(UPPER, a[1], b, at)]
        if a == b:
            return []
        if a[0] != b[0]:
            raise self.source.error(_MIX, at)
        if not a[0]:
            raise self.source.error(_MULTI_X, at)
        if a[1] < b[1]:
            return [(ROW, ((a[1], 1.0), (b[1], -1.0)), 0.0, at)]
        return [(ROW, ((b[1], -1.0), (a[1], 1.0)), 0.0, at)]

    def _le_linear(self, left: Linear, right: Linear, at: int) -> list | None:
        """Atoms for ``left <= right`` with exact linear expressions."""
        coefs = dict(left[0])
        for var, coef in right[0].items():
            coefs[var] = coefs.get(var, 0) - coef
        coefs = {var: coef for var, coef in coefs.items() if coef != 0}
        rhs = right[1] - left[1]
        if not coefs:
            return [] if rhs >= 0 else None
        outputs = [var for var in coefs if var[0]]
        if outputs and len(outputs) != len(coefs):
            raise self.source.error(_MIX, at)
        if not outputs:
            if len(coefs) > 1:
                raise self.source.error(_MULTI_X, at)
            ((var, coef),) = coefs.items()
            bound = rhs / coef
            if coef > 0:
                return [(UPPER, var[1], self._finite(_round_up(bound), at), at)]
            return [(LOWER, var[1], self._finite(_round_down(bound), at), at)]
        row = tuple((var[1], self._finite(float(coefs[var]), at)) for var in sorted(coefs))
        return [(ROW, row, self._finite(_round_up(rhs), at), at)]

    def _finite(self, value: float, at: int) -> float:
        """``value`` if finite, else a PropertyError at token ``at``."""
        if math.isinf(value):
            raise self.source.error("a constant is out of float64 range", at)
        return value

    def comparison(self, op: str, args: list[Child], at: int) -> list | None:
        """Atoms of a (possibly chained) comparison; [] is true, None is false."""
        if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], int):
            # The common shape (op leaf leaf), without the general machinery.
            left, right = self.operand(args[0]), self.operand(args[1])
            if op == "<=" or op == "<":
                return self._le_simple(left, right, at)
            if op == ">=" or op == ">":
                return self._le_simple(right, left, at)
        if len(args) < 2:
            raise self.source.error(f"'{op}' needs at least two arguments", at)
        atoms: list = []
        values: list[Any]
        compare: Callable[[Any, Any, int], list | None]
        leaves = [arg for arg in args if isinstance(arg, int)]
        if len(leaves) == len(args):
            values = [self.operand(arg) for arg in leaves]
            compare = self._le_simple
        else:
            values = [self._linear(arg, 0) for arg in args]
            compare = self._le_linear
        for a, b in zip(values, values[1:]):
            pairs: tuple[tuple[Any, Any], ...]
            if op == "<=" or op == "<":
                pairs = ((a, b),)
            elif op == ">=" or op == ">":
                pairs = ((b, a),)
            else:
                pairs = ((a, b), (b, a))
            for low, high in pairs:
                found = compare(low, high, at)
                if found is None:
                    return None
                atoms.extend(found)
        return atoms

    # ----------------------------------------------------------- linear terms
    def _linear(self, child: Child, depth: int) -> Linear:
        """Exact linear expression of an arithmetic term."""
        if isinstance(child, int):
            value = self.operand(child)
            if type(value) is float:
                return {}, Fraction(value)
            return {value: Fraction(1)}, Fraction(0)
        if depth > MAX_ARITHMETIC_DEPTH:
            raise self.source.error("arithmetic term nested too deeply", child[0])
        op, args = self.head(child)
        at = child[0]
        if op not in ("+", "-", "*", "/"):
            if op in COMPARISONS or op in ("and", "or"):
                raise self.source.error(
                    f"'{op}' cannot be used inside an arithmetic term", child[1]
                )
            raise self.source.error(f"unknown arithmetic operator '{op}'", child[1])
        if not args:
            raise self.source.error(f"'{op}' needs at least one argument", at)
        parts = [self._linear(arg, depth + 1) for arg in args]
        if op == "+":
            return _add(parts, [1] * len(parts))
        if op == "-":
            if len(parts) == 1:
                return _add(parts, [-1])
            return _add(parts, [1] + [-1] * (len(parts) - 1))
        if op == "*":
            factor = Fraction(1)
            variable_part: Linear | None = None
            for part in parts:
                if part[0]:
                    if variable_part is not None:
                        raise self.source.error("nonlinear term: '*' of two variables", at)
                    variable_part = part
                else:
                    factor *= part[1]
            if variable_part is None:
                return {}, factor
            return _add([variable_part], [factor])
        result = parts[0]
        for part in parts[1:]:
            if part[0]:
                raise self.source.error("'/' must divide by a constant", at)
            if part[1] == 0:
                raise self.source.error("division by zero", at)
            result = _add([result], [1 / part[1]])
        return result

    # ----------------------------------------------------------- DNF
    def dnf(self, root: Child) -> Dnf:
        """DNF of one formula, computed with an explicit stack (no recursion)."""
        work: list[tuple[Child, bool]] = [(root, False)]
        values: list[Dnf] = []
        while work:
            node, children_done = work.pop()
            if isinstance(node, int):
                token = self.tokens[node]
                if token == "true":
                    values.append([()])
                elif token == "false":
                    values.append([])
                else:
                    raise self.source.error(f"expected a formula, found '{token}'", node)
                continue
            op, args = self.head(node)
            if op == "and" or op == "or":
                if not args:
                    raise self.source.error(f"'{op}' needs at least one argument", node[1])
                if children_done:
                    parts = values[-len(args) :]
                    del values[-len(args) :]
                    if op == "and":
                        values.append(conjoin(parts, self.source, node[1]))
                    else:
                        values.append(disjoin(parts, self.source, node[1]))
                else:
                    work.append((node, True))
                    work.extend((arg, False) for arg in reversed(args))
            elif op in COMPARISONS:
                atoms = self.comparison(op, args, node[0])
                values.append([] if atoms is None else [tuple(atoms)])
            else:
                raise self.source.error(f"unknown operator '{op}'", node[1])
        return values[0]


def _add(parts: list[Linear], weights: list) -> Linear:
    """Weighted sum of exact linear expressions."""
    coefs: dict = {}
    constant = Fraction(0)
    for (part_coefs, part_constant), weight in zip(parts, weights):
        for var, coef in part_coefs.items():
            coefs[var] = coefs.get(var, 0) + weight * coef
        constant += weight * part_constant
    return coefs, constant


def _too_many(count: int, source: Source, at: int) -> None:
    """Raise when a DNF would have more than ``source.max_terms`` terms (before building it)."""
    if count > source.max_terms:
        raise source.error(
            f"the formula expands to {count} disjuncts in DNF (limits.max_disjuncts is "
            f"{source.max_terms}); split the property into several files",
            at,
        )


def split_conjunction(parts: list[Dnf], source: Source, at: int) -> tuple[Term, Dnf]:
    """Conjoin DNFs as (common atoms, terms): the cross product of the multi-term parts.

    Single-term parts are gathered once into the common atoms instead of being
    copied into every term, so a long list of bounds next to a big ``or`` stays
    linear in size. A false part makes the whole conjunction false: ((), []).
    """
    common: list = []
    multi: list[Dnf] = []
    for part in parts:
        if not part:
            return (), []
        if len(part) == 1:
            common.extend(part[0])
        else:
            multi.append(part)
    if not multi:
        return tuple(common), [()]
    _too_many(math.prod(len(part) for part in multi), source, at)
    if len(multi) == 1:
        return tuple(common), multi[0]
    chain = itertools.chain.from_iterable
    return tuple(common), [tuple(chain(combo)) for combo in itertools.product(*multi)]


def conjoin(parts: list[Dnf], source: Source, at: int) -> Dnf:
    """DNF of the conjunction of DNFs (cross product, common atoms in every term)."""
    common, terms = split_conjunction(parts, source, at)
    if not common:
        return terms
    if len(common) * len(terms) > source.max_terms * MAX_ATOMS_PER_TERM_AVERAGE:
        raise source.error(
            f"the formula expands to {len(terms)} disjuncts of {len(common)} shared atoms each "
            "in DNF; move the shared constraints to their own assert",
            at,
        )
    return [common + term for term in terms]


def disjoin(parts: list[Dnf], source: Source, at: int) -> Dnf:
    """DNF of the disjunction of DNFs (concatenation)."""
    _too_many(sum(len(part) for part in parts), source, at)
    if len(parts) == 1:
        return parts[0]
    return [term for part in parts for term in part]

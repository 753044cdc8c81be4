"""Differential fuzzing of the VNN-LIB 1.0 reader's semantics: random properties, written in
the many ways the format allows, against a direct evaluation of the same text.

usage: python tests/property/fuzz/vnnlib_semantics.py [--seeds N] [--first K]

Each seed writes a random property: input boxes (one, or a disjunction of several, or one per
disjunct of an `or` that also holds output conditions, as ACAS Xu's property 6), output
conditions nested in `and` / `or` up to three deep, atoms comparing linear expressions with
`<=`, `>=`, `<`, `>` in either orientation (constants on either side, `+`, `-`, `*`, unary
minus), bounds repeated with looser values, conditions spread over several `assert`s, unit
`and` / `or`, comments and odd spacing. The truth is the text itself: a small S-expression
evaluator here (sharing no code with completeverify) decides at sampled points (x, y) whether
every `assert` holds. The parsed Property must agree: some case's box holds x and one of its
polytopes C y <= d holds y. Points within 1e-7 of an atom's boundary are skipped (strict and
non-strict comparisons differ only there, and the reader rounds inexact constants outward).
A disagreement is a reader bug: the kind that gave other verifiers false `sat` / `unsat`
answers (SOUNDNESS.md, "Property parsing").
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from completeverify.vnnlib import parse_vnnlib


# ------------------------------------------------------------------ the independent evaluator
def sexprs(text: str) -> list:
    """The text's S-expressions as nested lists of string tokens (comments dropped)."""
    text = "\n".join(line.split(";", 1)[0] for line in text.splitlines())
    tokens = text.replace("(", " ( ").replace(")", " ) ").split()
    stack: list[list] = [[]]
    for tok in tokens:
        if tok == "(":
            stack.append([])
        elif tok == ")":
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(tok)
    return stack[0]


def value(e, env: dict) -> float:
    """An arithmetic expression's value."""
    if isinstance(e, str):
        return env[e] if e in env else float(e)
    op, args = e[0], [value(a, env) for a in e[1:]]
    if op == "+":
        return float(sum(args))
    if op == "-":
        return -args[0] if len(args) == 1 else args[0] - float(sum(args[1:]))
    if op == "*":
        return float(math.prod(args))
    raise ValueError(op)


def holds(e, env: dict, slack: list) -> bool:
    """A formula's truth; ``slack`` collects |lhs - rhs| of every comparison evaluated."""
    op = e[0]
    if op == "and":
        return all([holds(a, env, slack) for a in e[1:]])
    if op == "or":
        return any([holds(a, env, slack) for a in e[1:]])
    lhs, rhs = value(e[1], env), value(e[2], env)
    slack.append(abs(lhs - rhs))
    return {"<=": lhs <= rhs, "<": lhs < rhs, ">=": lhs >= rhs, ">": lhs > rhs}[op]


def truth(asserts: list, x: np.ndarray, y: np.ndarray) -> tuple[bool, float]:
    """Whether every assert's formula holds at (x, y), and the smallest comparison slack."""
    env = {f"X_{i}": float(v) for i, v in enumerate(x)}
    env.update({f"Y_{j}": float(v) for j, v in enumerate(y)})
    slack: list = []
    ok = all([holds(a, env, slack) for a in asserts])
    return ok, min(slack) if slack else np.inf


def parsed_holds(prop, x: np.ndarray, y: np.ndarray) -> bool:
    """The parsed Property's reading: some case's box holds x and one of its polytopes y."""
    for case in prop.cases:
        if np.all(case.lower <= x) and np.all(x <= case.upper):
            if any(np.all(p.C @ y <= p.d) for p in case.polytopes):
                return True
    return False


# ------------------------------------------------------------------ the generator
class Writer:
    """Random spellings of numbers, linear expressions and comparisons."""

    def __init__(self, rng: np.random.Generator) -> None:
        """Draw from ``rng``."""
        self.rng = rng

    def num(self, v: float) -> str:
        """A decimal or exponent spelling of v."""
        if self.rng.random() < 0.2:
            return f"{v:.6e}"
        return repr(float(v))

    def scaled(self, coef: float, var: str) -> str:
        """coef * var, spelled as var, (- var), (* c var) or (* var c)."""
        if coef == 1.0 and self.rng.random() < 0.7:
            return var
        if coef == -1.0 and self.rng.random() < 0.7:
            return f"(- {var})"
        if self.rng.random() < 0.5:
            return f"(* {self.num(coef)} {var})"
        return f"(* {var} {self.num(coef)})"

    def compare(self, coefs: dict[str, float], const: float, less: bool) -> str:
        """sum coefs[v] v <= const (``less``) or >= const, in a random arrangement."""
        terms = [self.scaled(c, v) for v, c in coefs.items()]
        self.rng.shuffle(terms)
        strict = self.rng.random() < 0.3
        if self.rng.random() < 0.25 and len(coefs) >= 2:
            # move the last term to the right-hand side: a - b <= c  as  a <= b + c
            v, c = list(coefs.items())[-1]
            left = [self.scaled(cc, vv) for vv, cc in list(coefs.items())[:-1]]
            right = f"(+ {self.scaled(-c, v)} {self.num(const)})"
            lhs = left[0] if len(left) == 1 else f"(+ {' '.join(left)})"
        else:
            lhs = terms[0] if len(terms) == 1 else f"(+ {' '.join(terms)})"
            right = self.num(const)
        op = ("<" if strict else "<=") if less else (">" if strict else ">=")
        if self.rng.random() < 0.4:  # swap sides and flip the comparison
            flipped = {"<=": ">=", "<": ">", ">=": "<=", ">": "<"}[op]
            return f"({flipped} {right} {lhs})"
        return f"({op} {lhs} {right})"


def box_atoms(w: Writer, lo: np.ndarray, hi: np.ndarray) -> list[str]:
    """Bounds of every input, some repeated with looser values (the tightest holds)."""
    atoms = []
    for i, (a, b) in enumerate(zip(lo, hi)):
        atoms.append(w.compare({f"X_{i}": 1.0}, float(a), less=False))
        atoms.append(w.compare({f"X_{i}": 1.0}, float(b), less=True))
        if w.rng.random() < 0.15:
            atoms.append(w.compare({f"X_{i}": 1.0}, float(b) + 0.5, less=True))
    w.rng.shuffle(atoms)
    return atoms


def output_formula(w: Writer, n_out: int, depth: int, box=None) -> str:
    """A random and/or tree over linear output comparisons; given the one input ``box``, some
    leaves are upper bounds on an input inside it instead (they narrow their disjuncts' boxes,
    and no conjunction of upper bounds empties a box)."""
    rng = w.rng
    if box is not None and rng.random() < 0.12:
        i = int(rng.integers(len(box[0])))
        t = float(np.round(rng.uniform(box[0][i], box[1][i]), 3))
        return w.compare({f"X_{i}": 1.0}, max(t, float(box[0][i])), less=True)
    if depth == 0 or rng.random() < 0.3:
        k = int(rng.integers(1, min(3, n_out) + 1))
        idx = rng.choice(n_out, k, replace=False)
        coefs = {f"Y_{j}": float(rng.choice([1.0, -1.0, 0.5, 2.0, -1.5])) for j in idx}
        return w.compare(coefs, float(np.round(rng.normal(), 3)), less=bool(rng.random() < 0.5))
    op = "and" if rng.random() < 0.5 else "or"
    kids = [output_formula(w, n_out, depth - 1, box) for _ in range(int(rng.integers(1, 4)))]
    return f"({op} {' '.join(kids)})"


def conj(parts: list[str], rng: np.random.Generator) -> str:
    """An `and` of ``parts``, sometimes nested in two levels."""
    if len(parts) == 1 and rng.random() < 0.5:
        return parts[0]
    if len(parts) > 2 and rng.random() < 0.3:
        k = int(rng.integers(1, len(parts)))
        return f"(and {' '.join(parts[:k])} (and {' '.join(parts[k:])}))"
    return f"(and {' '.join(parts)})"


def random_property(seed: int) -> tuple[str, int, int, list]:
    """The text, input and output counts, and the boxes (for sampling)."""
    rng = np.random.default_rng(seed)
    w = Writer(rng)
    n_in, n_out = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    boxes = []
    for _ in range(int(rng.integers(1, 4))):
        lo = np.round(rng.uniform(-1, 1, n_in), 3)
        hi = lo + np.round(rng.uniform(0, 1, n_in), 3)
        pinned = rng.random(n_in) < 0.1
        hi[pinned] = lo[pinned]
        boxes.append((lo, hi))
    head = [f"(declare-const X_{i} Real)" for i in range(n_in)]
    head += [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    asserts: list[str] = []
    style = rng.random()
    if style < 0.35 and len(boxes) > 1:  # each disjunct its own box and output condition
        terms = [
            conj(box_atoms(w, lo, hi) + [output_formula(w, n_out, 2)], rng) for lo, hi in boxes
        ]
        asserts.append(f"(or {' '.join(terms)})")
    else:
        if len(boxes) == 1:
            atoms = box_atoms(w, *boxes[0])
            while atoms:  # spread over one or more asserts
                k = int(rng.integers(1, len(atoms) + 1))
                asserts.append(conj(atoms[:k], rng))
                atoms = atoms[k:]
        else:
            terms = [conj(box_atoms(w, lo, hi), rng) for lo, hi in boxes]
            asserts.append(f"(or {' '.join(terms)})")
        one = boxes[0] if len(boxes) == 1 else None
        for _ in range(int(rng.integers(1, 3))):
            asserts.append(output_formula(w, n_out, 3, one))
        if rng.random() < 0.3:
            asserts.append(f"(or {output_formula(w, n_out, 1, one)})")
    rng.shuffle(asserts)
    lines = head + [f"(assert {a})" for a in asserts]
    text = "\n".join(lines)
    if rng.random() < 0.2:
        text = "; a comment\n" + text.replace(") (", ")(")
    if rng.random() < 0.2:
        text = text.replace(" ", "\t ")
    return text + "\n", n_in, n_out, boxes


def check(seed: int, points: int = 400, counts: dict | None = None) -> str:
    """'' when the parsed property agrees with the text at every sampled point, else a
    description of the first disagreement; ``counts`` tallies the points by truth."""
    text, n_in, n_out, boxes = random_property(seed)
    try:
        prop = parse_vnnlib(text, n_inputs=n_in, n_outputs=n_out)
    except Exception as exc:  # noqa: BLE001 - every generated property is well formed
        return f"seed {seed}: refused: {type(exc).__name__}: {exc}"
    asserts = [s[1] for s in sexprs(text) if s[0] == "assert"]
    rng = np.random.default_rng([seed, 1])
    for k in range(points):
        lo, hi = boxes[k % len(boxes)]
        x = lo + (hi - lo) * rng.random(n_in)
        if k % 5 == 4:  # sometimes just outside the box
            x = x + rng.choice([-1, 1], n_in) * rng.uniform(0, 0.2, n_in)
        y = rng.normal(0, 1.5, n_out)
        want, slack = truth(asserts, x, y)
        if slack < 1e-7:
            continue
        if counts is not None:
            counts[want] = counts.get(want, 0) + 1
        got = parsed_holds(prop, x, y)
        if got != want:
            return f"seed {seed}: at x={x.tolist()}, y={y.tolist()}: text {want}, parsed {got}"
    return ""


def main() -> None:
    """Check --seeds properties from --first; print the disagreements."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2000)
    ap.add_argument("--first", type=int, default=0)
    args = ap.parse_args()
    counts: dict = {}
    seeds = range(args.first, args.first + args.seeds)
    bad = [m for m in (check(s, counts=counts) for s in seeds) if m]
    for m in bad:
        print(m)
    print(
        f"{args.seeds} properties, {counts.get(True, 0)} points inside, "
        f"{counts.get(False, 0)} outside, {len(bad)} disagreements"
    )
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

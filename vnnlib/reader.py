"""VNN-LIB 1.0 reader: commands, declarations, and the public parse/load functions."""

from __future__ import annotations

import gzip
import os
import re
import zlib

from completeverify.errors import PropertyError

from .cases import build_cases
from .formula import FormulaReader, Var, split_conjunction
from .lexer import Child, Source, build_sexp
from .property_types import Property
from .v2 import detect_version, translate_vnnlib2

_VAR_RE = re.compile(r"([XY])_(0|[1-9][0-9]*)")
_IGNORED_COMMANDS = frozenset(
    ("set-logic", "set-info", "set-option", "check-sat", "get-model", "exit", "vnnlib-version")
)
_GZIP_MAGIC = b"\x1f\x8b"


class _Reader:
    """Walks the top-level commands of one property text."""

    def __init__(self, source: Source) -> None:
        """Start with no declarations and no assertions."""
        self.source = source
        self.variables: dict[str, Var] = {}
        self.declared_at: dict[Var, int] = {}
        self.formulas = FormulaReader(source, self.variables)
        self.asserts: list[list] = []
        self.first_assert = -1

    def run(self) -> None:
        """Read every command in order."""
        tokens = self.source.tokens
        for node in build_sexp(self.source):
            if isinstance(node, int):
                raise self.source.error(
                    f"unexpected token '{tokens[node]}' outside a command", node
                )
            name, args = self.formulas.head(node)
            if name == "assert":
                if len(args) != 1:
                    raise self.source.error("'assert' takes exactly one formula", node[1])
                if self.first_assert < 0:
                    self.first_assert = node[1]
                self.asserts.append(self.formulas.dnf(args[0]))
            elif name == "declare-const":
                self._declare(node, args, 1)
            elif name == "declare-fun":
                self._declare(node, args, 2)
            elif name not in _IGNORED_COMMANDS:
                raise self.source.error(f"unknown command '{name}'", node[1])

    def _declare(self, node: list, args: list[Child], sort_position: int) -> None:
        """Register ``(declare-const NAME Real)`` or ``(declare-fun NAME () Real)``."""
        tokens = self.source.tokens
        shape_ok = len(args) == sort_position + 1 and isinstance(args[0], int)
        if shape_ok and sort_position == 2:
            shape_ok = isinstance(args[1], list) and len(args[1]) == 1
        if not shape_ok or not isinstance(args[sort_position], int):
            usage = "(declare-const NAME Real)"
            if sort_position == 2:
                usage = "(declare-fun NAME () Real)"
            raise self.source.error(f"malformed declaration, expected {usage}", node[1])
        name_at, sort_at = args[0], args[sort_position]
        assert isinstance(name_at, int) and isinstance(sort_at, int)  # shape_ok checked both
        name = tokens[name_at]
        sort = tokens[sort_at]
        if sort != "Real":
            raise self.source.error(f"unsupported sort '{sort}': only Real", sort_at)
        match = _VAR_RE.fullmatch(name)
        if match is None:
            raise self.source.error(
                f"unsupported variable name '{name}': VNN-LIB uses X_<i> for inputs "
                "and Y_<j> for outputs",
                name_at,
            )
        if name in self.variables:
            raise self.source.error(f"variable '{name}' is declared twice", name_at)
        var = (match.group(1) == "Y", int(match.group(2)))
        self.variables[name] = var
        self.declared_at[var] = name_at

    def count(self, is_output: bool, expected: int | None) -> int:
        """Number of X (or Y) variables, checked for gaps and against ``expected``."""
        letter = "Y" if is_output else "X"
        kind = "output" if is_output else "input"
        indices = sorted(i for out, i in self.declared_at if out == is_output)
        if not indices:
            raise self.source.error(f"no {kind} variables ({letter}_0, ...) are declared")
        n = len(indices)
        if indices[-1] != n - 1:
            missing = next(i for i, value in enumerate(indices) if value != i)
            raise self.source.error(
                f"{kind} variables must be {letter}_0..{letter}_<N-1> without gaps: "
                f"{letter}_{missing} is missing but {letter}_{indices[missing]} is declared",
                self.declared_at[(is_output, indices[missing])],
            )
        if expected is not None and expected != n:
            raise self.source.error(
                f"the property declares {n} {kind} variables but the network has "
                f"{expected} {kind}s",
                self.declared_at[(is_output, n - 1)],
            )
        return n


def parse_vnnlib(
    text: str,
    source: str = "<string>",
    n_inputs: int | None = None,
    n_outputs: int | None = None,
) -> Property:
    """Parse VNN-LIB text (1.0, or 2.0 through the PyPI vnnlib package) into the normal form."""
    major, minor = detect_version(text)
    if major == 2:
        translation = translate_vnnlib2(text, source)
        try:
            return parse_vnnlib(translation.text, source, n_inputs, n_outputs)
        except PropertyError as exc:
            raise translation.error(exc) from None
    if major != 1:
        raise PropertyError(f"unsupported VNN-LIB version {major}.{minor} (1.x and 2.0 are read)", source)
    src = Source(text, source)
    reader = _Reader(src)
    reader.run()
    if not reader.asserts:
        raise PropertyError("the property has no assertions", source)
    n_in = reader.count(False, n_inputs)
    n_out = reader.count(True, n_outputs)
    common, terms = split_conjunction(reader.asserts, src, reader.first_assert)
    reader.asserts.clear()
    declared_at = [reader.declared_at[(False, i)] for i in range(n_in)]
    cases = build_cases(common, terms, n_in, n_out, src, declared_at)
    return Property(n_in, n_out, cases, source)


def load_vnnlib(
    path: str | os.PathLike,
    n_inputs: int | None = None,
    n_outputs: int | None = None,
) -> Property:
    """Read a .vnnlib file, gzip-compressed or not (detected by its magic bytes)."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise PropertyError(f"file not found: {name}", name) from None
    except OSError as exc:
        raise PropertyError(f"cannot read the property file: {exc.strerror or exc}", name) from None
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise PropertyError(f"corrupt gzip data: {exc}", name) from None
    text = data.decode("utf-8", errors="replace")
    return parse_vnnlib(text, name, n_inputs, n_outputs)

"""VNN-LIB 1.0 reader: commands, declarations, and the public parse/load functions."""

from __future__ import annotations

import os
import re

from completeverify.errors import CompleteVerifyError, PropertyError
from completeverify.safe_read import flatten_error, read_limited

from .cases import build_cases
from .formula import FormulaReader, Var, split_conjunction
from .lexer import Child, Source, build_sexp
from .limits import MAX_BYTES, MAX_DEPTH, MAX_TERMS
from .property_types import Property
from .v2 import detect_version, translate_vnnlib2

_VAR_RE = re.compile(r"([XY])_(0|[1-9][0-9]*)")
_IGNORED_COMMANDS = frozenset(
    ("set-logic", "set-info", "set-option", "check-sat", "get-model", "exit", "vnnlib-version")
)


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
    *,
    max_disjuncts: int = MAX_TERMS,
    max_depth: int = MAX_DEPTH,
) -> Property:
    """Parse VNN-LIB text into cases of input boxes and unsafe output polytopes.

    The error boundary of the property reader: nothing but CompleteVerifyError leaves it.
    ``max_disjuncts`` bounds the DNF while it is expanded, ``max_depth`` the nesting.
    """
    try:
        return _parse(text, source, n_inputs, n_outputs, max_disjuncts, max_depth)
    except CompleteVerifyError as exc:
        flatten_error(exc)  # tokens quoted from the file may hold control characters
        raise
    except (RecursionError, MemoryError) as exc:
        raise PropertyError(
            f"the property is too large or nested too deeply to read ({exc.__class__.__name__})",
            source,
        ) from None
    except Exception as exc:  # noqa: BLE001 - the reader's error boundary
        raise PropertyError(
            f"cannot read the property ({exc.__class__.__name__}: {exc})", source
        ) from None


def _parse(
    text: str,
    source: str,
    n_inputs: int | None,
    n_outputs: int | None,
    max_disjuncts: int,
    max_depth: int,
) -> Property:
    """parse_vnnlib without its error boundary (2.0 goes through the PyPI vnnlib package)."""
    major, minor = detect_version(text)
    if major == 2:
        translation = translate_vnnlib2(text, source)
        try:
            return _parse(translation.text, source, n_inputs, n_outputs, max_disjuncts, max_depth)
        except PropertyError as exc:
            raise translation.error(exc) from None
    if major != 1:
        raise PropertyError(
            f"unsupported VNN-LIB version {major}.{minor} (1.x and 2.0 are read)", source
        )
    src = Source(text, source, max_terms=max_disjuncts, max_depth=max_depth)
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
    *,
    max_bytes: int = MAX_BYTES,
    max_disjuncts: int = MAX_TERMS,
    max_depth: int = MAX_DEPTH,
    max_compression_ratio: int = 200,
) -> Property:
    """Read a .vnnlib file, gzip-compressed or not (detected by its magic bytes).

    ``max_bytes`` bounds the file and its decompressed text (checked while reading).
    """
    try:
        name = os.fspath(path)
    except TypeError:
        raise PropertyError(f"a property path must be text, got {type(path).__name__}") from None
    if not isinstance(name, str):
        name = os.fsdecode(name)

    def error(message: str) -> PropertyError:
        """A PropertyError about this file."""
        return PropertyError(message, name)

    data = read_limited(
        name,
        "property",
        error,
        max_file_bytes=max_bytes,
        max_decompressed_bytes=max_bytes,
        max_compression_ratio=max_compression_ratio,
    )
    if b"\x00" in data[:4096]:
        raise error("binary data, not a VNN-LIB text file")
    text = data.decode("utf-8", errors="replace")
    return parse_vnnlib(
        text, name, n_inputs, n_outputs, max_disjuncts=max_disjuncts, max_depth=max_depth
    )

"""VNN-LIB 2.0: version detection, and 2.0 properties read through the PyPI ``vnnlib`` package.

The package (an optional dependency: ``pip install completeverify[vnnlib2]``) parses and
type-checks the file.  Its AST is then written back as the VNN-LIB 1.0 subset this project
reads (``X_i`` / ``Y_j`` for the flat, C-order entries of the network's input and output)
and goes through the project's own DNF code, so 1.0 and 2.0 share one normal form and one
set of soundness rules (exact arithmetic, outward rounding).  ``vnnlib.compat.transform`` is
deliberately not used: with vnnlib 1.0.2 it does not combine separate assertions that each
contain an ``or``.  Each translated assertion starts on its original line, so errors keep
the line numbers of the 2.0 file.

Supported: one network with one input and one output of a floating-point type; ``and``,
``or``, ``<=``, ``<``, ``>=``, ``>``, ``==``; ``+``, ``-``, ``*`` and numbers.  Rejected with an
error naming the construct: several networks, ``equal-to`` / ``isometric-to``, hidden nodes
(``declare-hidden``), several inputs or outputs, non-float element types, ``!=``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from completeverify.errors import PropertyError

_VERSION_RE = re.compile(r"\(\s*vnnlib-version\s*<\s*([0-9]+)\.([0-9]+)\s*>\s*\)")
_LEADING_RE = re.compile(r"(?:\s+|;[^\n]*)*")
_FLOAT_TYPES = (
    "F16",
    "F32",
    "F64",
    "BF16",
    "F8E4M3FN",
    "F8E5M2",
    "F8E4M3FNUZ",
    "F8E5M2FNUZ",
    "F4E2M1",
    "Real",
)
_NUMBER_HINT = (
    "VNN-LIB 2.0 numbers are strict: write 0.00001 (not 1e-5), 0.5 (not .5) and "
    "1.0 (not 1) when comparing with a float variable"
)
_OURS = os.path.dirname(os.path.abspath(__file__))


def detect_version(text: str) -> tuple[int, int]:
    """The (major, minor) of a leading ``(vnnlib-version <M.m>)`` command; (1, 0) without one."""
    start = _LEADING_RE.match(text)
    match = _VERSION_RE.match(text, start.end() if start else 0)
    if match is None:
        return (1, 0)
    return int(match.group(1)), int(match.group(2))


def _pypi_vnnlib() -> ModuleType:
    """The PyPI ``vnnlib`` package, even when this repository's vnnlib/ folder is on sys.path.

    Running from the repository root puts its ``vnnlib/`` (this package, installed as
    completeverify.vnnlib) on the path under the same top-level name; the search skips it.
    """
    loaded = sys.modules.get("vnnlib")
    if loaded is not None and hasattr(loaded, "parse_query_string"):
        return loaded
    paths = [
        p
        for p in sys.path
        if os.path.realpath(os.path.join(p or os.getcwd(), "vnnlib")) != os.path.realpath(_OURS)
    ]
    spec = importlib.machinery.PathFinder.find_spec("vnnlib", paths)
    if spec is None or spec.loader is None:
        raise PropertyError(
            "reading VNN-LIB 2.0 needs the 'vnnlib' package: pip install 'completeverify[vnnlib2]'"
        )
    previous = sys.modules.get("vnnlib")
    module = importlib.util.module_from_spec(spec)
    sys.modules["vnnlib"] = module  # its compiled core imports itself as vnnlib._core
    try:
        spec.loader.exec_module(module)
    except (ImportError, OSError) as exc:
        if previous is not None:
            sys.modules["vnnlib"] = previous
        else:
            sys.modules.pop("vnnlib", None)
        raise PropertyError(f"the 'vnnlib' package cannot be imported: {exc}") from None
    return module


def _package_error(exc: Exception, source: str) -> PropertyError:
    """The package's parse or type error as one located line."""
    text = str(exc).strip()
    line = 0
    if text.startswith("{"):
        try:
            report = json.loads(text)
            first = report["errors"][0]
            line = int(first.get("line") or 0)
            text = f"{first.get('message', 'error')}: {first.get('hint', '')}".rstrip(": ")
            if len(report["errors"]) > 1:
                text += f" (and {len(report['errors']) - 1} more)"
        except (ValueError, KeyError, IndexError, TypeError):
            text = text.splitlines()[0]
    else:
        match = re.search(r"line (\d+)", text)
        line = int(match.group(1)) if match else 0
        text = text.splitlines()[0] if text else type(exc).__name__
    if "syntax error" in text or "TypeMismatch" in str(exc) or "Type mismatch" in text:
        text += f" ({_NUMBER_HINT})"
    return PropertyError(f"VNN-LIB 2.0: {text}", source, line)


class _Translator:
    """Writes a type-checked 2.0 query as 1.0 assertions over X_i / Y_j."""

    def __init__(self, vn: ModuleType, source: str) -> None:
        """Nothing declared yet."""
        self.vn = vn
        self.source = source
        self.names: dict[str, tuple[str, list[int]]] = {}  # 2.0 name -> ("X" | "Y", shape)
        self.line = 0  # the smallest source line seen in the current assertion

    def unsupported(self, what: str, line: int = 0) -> PropertyError:
        """A PropertyError for a construct the verifier does not support."""
        return PropertyError(
            f"VNN-LIB 2.0: {what} is not supported by completeverify", self.source, line
        )

    def declare(self, query: Any) -> tuple[int, int]:
        """Check the network declaration; returns (n_inputs, n_outputs)."""
        nets = list(query.networks)
        if len(nets) != 1:
            names = ", ".join(f"'{n.name}'" for n in nets)
            raise self.unsupported(
                f"a property over {len(nets)} networks ({names}); one network per property"
            )
        net = nets[0]
        if net.equal_to or net.isometric_to:
            kind = "equal-to" if net.equal_to else "isometric-to"
            raise self.unsupported(f"'{kind}' in network '{net.name}'")
        if len(net.hidden):
            raise self.unsupported(
                f"declare-hidden '{net.hidden[0].name}' (hidden-node constraints)"
            )
        sizes = []
        for kind, letter, decls in (("input", "X", net.inputs), ("output", "Y", net.outputs)):
            if len(decls) != 1:
                raise self.unsupported(
                    f"network '{net.name}' with {len(decls)} {kind}s; exactly one {kind}"
                )
            decl = decls[0]
            dtype = getattr(decl.dtype, "name", str(decl.dtype))
            if dtype not in _FLOAT_TYPES:
                raise self.unsupported(
                    f"{kind} '{decl.name}' of element type {dtype}; floating-point types only"
                )
            shape = [int(d) for d in decl.shape]
            self.names[decl.name] = (letter, shape)
            sizes.append(math.prod(shape))
        return sizes[0], sizes[1]

    def name_of(self, letter: str, flat: int) -> str:
        """The 2.0 name of the flat entry X_i / Y_j, e.g. ``X[0,3]``."""
        for name, (kind, shape) in self.names.items():
            if kind == letter:
                index = []
                for dim in reversed(shape):
                    flat, rest = divmod(flat, dim) if dim else (flat, 0)
                    index.append(rest)
                return f"{name}[{','.join(str(i) for i in reversed(index))}]"
        return f"{letter}_{flat}"

    def arith(self, expr: Any) -> str:
        """An arithmetic expression as 1.0 text."""
        vn = self.vn
        if isinstance(expr, vn.Var):
            return self.var(expr)
        if isinstance(expr, vn.Literal):
            self.note(getattr(expr, "line", 0))
            return str(expr.lexeme)
        if isinstance(expr, vn.Negate):
            return f"(- {self.arith(expr.expr)})"
        if isinstance(expr, vn.Plus):
            return "(+ " + " ".join(self.arith(a) for a in expr.args) + ")"
        if isinstance(expr, vn.Minus):
            return "(- " + " ".join(self.arith(a) for a in (expr.head, *expr.rest)) + ")"
        if isinstance(expr, vn.Multiply):
            return "(* " + " ".join(self.arith(a) for a in expr.args) + ")"
        raise self.unsupported(f"the arithmetic expression {expr}", self.line)

    def var(self, var: Any) -> str:
        """An indexed variable as X_i / Y_j (flat C-order index)."""
        self.note(var.line)
        entry = self.names.get(var.name)
        if entry is None:  # a hidden node or another network: rejected in declare already
            raise self.unsupported(f"the variable '{var.name}'", var.line)
        letter, shape = entry
        if len(var.indices) != len(shape):
            raise PropertyError(
                f"VNN-LIB 2.0: '{var.name}' needs {len(shape)} indices", self.source, var.line
            )
        flat = 0
        for index, dim in zip(var.indices, shape):
            flat = flat * dim + int(index)
        return f"{letter}_{flat}"

    def note(self, line: int) -> None:
        """Remember the earliest source line of the current assertion."""
        if line and (not self.line or line < self.line):
            self.line = line

    def boolean(self, expr: Any) -> str:
        """A boolean expression as 1.0 text."""
        vn = self.vn
        if isinstance(expr, vn.And):
            return "(and " + " ".join(self.boolean(a) for a in expr.args) + ")"
        if isinstance(expr, vn.Or):
            return "(or " + " ".join(self.boolean(a) for a in expr.args) + ")"
        ops = (
            (vn.LessEqual, "<="),
            (vn.LessThan, "<"),
            (vn.GreaterEqual, ">="),
            (vn.GreaterThan, ">"),
            (vn.Equal, "="),
        )
        for cls, op in ops:
            if isinstance(expr, cls):
                return f"({op} {self.arith(expr.lhs)} {self.arith(expr.rhs)})"
        if isinstance(expr, vn.NotEqual):
            self.arith(expr.lhs)  # records the line
            raise self.unsupported("'!=' (the unsafe set would not be closed)", self.line)
        raise self.unsupported(f"the formula {expr}", self.line)


@dataclass(frozen=True)
class Translation:
    """A 2.0 property written as 1.0 text, and how to word the 1.0 reader's errors in 2.0 terms."""

    text: str
    source: str
    translator: _Translator
    declared_at: int  # line of the 2.0 file's declare-network (0: unknown)

    def error(self, exc: PropertyError) -> PropertyError:
        """The 1.0 reader's error with 2.0 names (``X[0,3]``) and the 2.0 file's line."""
        message = str(exc)
        prefix = f"{exc.source or '<property>'}" + (f":{exc.line}:{exc.column}" if exc.line else "")
        message = message[len(prefix) + 2 :] if message.startswith(prefix + ": ") else message
        rename = self.translator.name_of
        message = re.sub(
            r"\b([XY])_([0-9]+)\b", lambda m: rename(m.group(1), int(m.group(2))), message
        )
        line = exc.line if exc.line != 1 else self.declared_at  # line 1: the declarations
        return PropertyError(f"VNN-LIB 2.0: {message}", self.source, line)


def translate_vnnlib2(text: str, source: str = "<string>") -> Translation:
    """A type-checked VNN-LIB 2.0 property as VNN-LIB 1.0 text (see the module docstring)."""
    vn = _pypi_vnnlib()
    try:
        query = vn.parse_query_string(text)
    except vn.VNNLibException as exc:
        raise _package_error(exc, source) from None
    except Exception as exc:  # noqa: BLE001 - the package's C++ parser (e.g. stod out of range)
        detail = f"{exc.__class__.__name__}: {exc}".splitlines()[0][:200]
        raise PropertyError(
            f"VNN-LIB 2.0: the vnnlib package cannot parse this file ({detail}); "
            "check for numbers out of the double range (e.g. subnormals)",
            source,
        ) from None
    tr = _Translator(vn, source)
    n_in, n_out = tr.declare(query)
    lines = [
        " ".join(
            [f"(declare-const X_{i} Real)" for i in range(n_in)]
            + [f"(declare-const Y_{j} Real)" for j in range(n_out)]
        )
    ]
    for assertion in query.assertions:
        tr.line = 0
        body = tr.boolean(assertion.expr)
        while tr.line and len(lines) < tr.line - 1:  # keep the 2.0 file's line numbers
            lines.append("")
        lines.append(f"(assert {body})")
    match = re.search(r"\(\s*declare-network", text)
    declared_at = text.count("\n", 0, match.start()) + 1 if match else 0
    return Translation("\n".join(lines) + "\n", source, tr, declared_at)


__all__ = ["Translation", "detect_version", "translate_vnnlib2"]

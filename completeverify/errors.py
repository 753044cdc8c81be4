"""One exception hierarchy for every user-facing failure.

This module has no dependencies so that ``completeverify.vnnlib`` and
``completeverify.solvers`` can raise the project's errors without importing
torch or the rest of the core.
"""

from __future__ import annotations


class CompleteVerifyError(Exception):
    """Root of every error completeverify raises on purpose."""


class InputError(CompleteVerifyError):
    """Bad user input: a missing file, a malformed model or property, a shape mismatch."""


class ModelError(InputError):
    """The ONNX model cannot be read, or it is inconsistent."""


class UnsupportedOperatorError(ModelError):
    """The model uses operators completeverify does not support.

    ``ops`` lists (op_type, node_name) for every unsupported node, so the user
    sees all of them at once.
    """

    def __init__(self, ops: list[tuple[str, str]], source: str = "") -> None:
        self.ops = list(ops)
        listing = ", ".join(f"{op} (node '{name}')" for op, name in self.ops)
        where = f"{source}: " if source else ""
        super().__init__(f"{where}unsupported operator(s): {listing}")


class PropertyError(InputError):
    """The VNNLIB property cannot be read, or does not fit the network."""

    def __init__(self, message: str, source: str = "", line: int = 0, column: int = 0) -> None:
        self.source = source
        self.line = line
        self.column = column
        where = source or "<property>"
        if line:
            where += f":{line}:{column}"
        super().__init__(f"{where}: {message}")


class SolverError(CompleteVerifyError):
    """A solver backend is unavailable or failed in a way that is not a verdict."""


class InternalError(CompleteVerifyError):
    """A broken internal invariant: a bug in completeverify, not bad input (CLI exit 1).

    Not an InputError: the CLI reports it as "internal error, please report", never as a
    problem with the user's model or property.
    """


class ReplayMismatchError(ModelError):
    """The imported graph does not compute what the ONNX reference computes."""

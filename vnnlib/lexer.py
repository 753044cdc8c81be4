"""Tokenizer and iterative s-expression builder for VNN-LIB text.

A node is a Python list whose first element is the token index of its opening
parenthesis and whose remaining elements are its children: an ``int`` child is
the token index of an atom (symbol or number), a ``list`` child is a sub-node.
Token indices are turned into line:column only when an error is reported.
"""

from __future__ import annotations

import re
from typing import Union

from completeverify.errors import PropertyError

from .limits import MAX_DEPTH, MAX_TERMS

# One compiled regex over the whole text. Every non-whitespace character is
# matched by exactly one alternative, so nothing but whitespace is skipped.
_TOKEN_RE = re.compile(r"[()]|;[^\n\r]*|[^\s();]+")

Node = list  # [open-paren token index, child, child, ...]
Child = Union[int, Node]


class Source:
    """The tokens of one property text and the means to locate them in error messages."""

    def __init__(
        self, text: str, name: str, max_terms: int = MAX_TERMS, max_depth: int = MAX_DEPTH
    ) -> None:
        """Tokenize ``text`` (comments dropped); ``name`` is the file name for messages.

        ``max_terms`` and ``max_depth`` are the reader's limits on DNF terms and nesting.
        """
        self.max_terms = max_terms
        self.max_depth = max_depth
        if text.startswith("\ufeff"):
            text = " " + text[1:]  # a byte-order mark; keep offsets unchanged
        self.text = text
        self.name = name
        self.tokens: list[str] = [t for t in _TOKEN_RE.findall(text) if t[0] != ";"]

    def offset(self, index: int) -> int:
        """Character offset of the token with this index (end of text if past the end)."""
        count = -1
        for match in _TOKEN_RE.finditer(self.text):
            if match.group()[0] != ";":
                count += 1
                if count == index:
                    return match.start()
        return len(self.text)

    def line_column(self, offset: int) -> tuple[int, int]:
        """1-based line and column of a character offset."""
        line = self.text.count("\n", 0, offset) + 1
        column = offset - self.text.rfind("\n", 0, offset)
        return line, column

    def error(self, message: str, index: int | None = None) -> PropertyError:
        """A PropertyError located at token ``index`` (no location when None)."""
        if index is None or index < 0:
            return PropertyError(message, self.name)
        line, column = self.line_column(self.offset(index))
        return PropertyError(message, self.name, line, column)


def build_sexp(source: Source) -> list[Child]:
    """Group the tokens into top-level s-expressions without recursion."""
    tokens = source.tokens
    top: list[Child] = []
    current: list[Child] = top
    stack: list[list[Child]] = []
    for index, token in enumerate(tokens):
        if token == "(":
            node: Node = [index]
            current.append(node)
            stack.append(current)
            current = node
            if len(stack) > source.max_depth:
                raise source.error(
                    f"parentheses nested more than {source.max_depth} deep "
                    "(limits.max_nesting_depth)",
                    index,
                )
        elif token == ")":
            if not stack:
                raise source.error("unbalanced parenthesis: unexpected ')'", index)
            current = stack.pop()
        else:
            current.append(index)
    if stack:
        # Report the outermost parenthesis that is never closed: usually the
        # command that lost its ')'.
        outermost = stack[1] if len(stack) > 1 else current
        at = outermost[0]
        assert isinstance(at, int)  # a node starts with its '(' token index
        raise source.error("unbalanced parenthesis: '(' is never closed", at)
    return top

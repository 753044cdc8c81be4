"""Argument types, exit codes and small helpers shared by every subcommand."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT = 0, 1, 2
NORMS = ("linf", "l1", "l2", "l0")  # the threat models of radius and certify


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports usage errors as one ``error:`` line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """One line, exit 2."""
        sys.stderr.write(f"error: {message}\n")
        raise SystemExit(EXIT_INPUT)


class CliInputError(Exception):
    """An argument problem found by a subcommand after parsing (reported like bad input, exit 2)."""


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a file so that readers never see half of it."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, target)


def positive_float(text: str) -> float:
    """argparse type: a positive number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: '{text}'") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: '{text}'")
    return value


def positive_int(text: str) -> int:
    """argparse type: a positive integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: '{text}'")
    return value


def thread_count(text: str) -> int | str:
    """argparse type: ``auto`` or a positive integer (``verify --threads``)."""
    if text == "auto":
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected auto or a whole number of at least 1, got '{text}'"
        ) from None


def existing_parent(path: str, what: str) -> None:
    """Raise CliInputError unless the folder that would hold ``path`` exists."""
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise CliInputError(f"folder of {what} does not exist: {parent}")

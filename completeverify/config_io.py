"""Configuration files: typed frozen config dataclasses to and from dicts and YAML.

The conversion is generic over frozen dataclasses with typed fields (bool, int, float, str,
``Literal[...]``, ``Optional[...]``, tuples and nested dataclasses), so a field added to
``completeverify.config`` is readable from a file without touching this module.  Every
problem is an :class:`InputError` naming the source and the key's dotted path::

    oval21.yaml: unknown key 'bab.batch_sise' (did you mean 'batch_size'?)
    oval21.yaml: bab.batch_size: expected an integer, got 'many' (str)

A file may give any subset of the keys; the others keep their defaults.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from .errors import InputError

T = TypeVar("T")


def _fail(source: str, path: str, message: str) -> InputError:
    """An InputError ``source: path: message``."""
    where = f"{path}: " if path else ""
    return InputError(f"{source}: {where}{message}")


def _describe(value: Any) -> str:
    """A short ``'value' (type)`` for error messages."""
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"


def _convert(kind: Any, value: Any, source: str, path: str) -> Any:
    """``value`` checked (and, for numbers, tuples and dataclasses, converted) to ``kind``."""
    origin = get_origin(kind)
    if origin is Literal:
        choices = get_args(kind)
        if value not in choices or type(value) is not type(choices[0]):
            names = ", ".join(repr(c) for c in choices)
            raise _fail(source, path, f"expected one of {names}, got {_describe(value)}")
        return value
    if origin is Union or (hasattr(types, "UnionType") and isinstance(kind, types.UnionType)):
        options = get_args(kind)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, source, path)
            except InputError as exc:
                errors.append(str(exc))
        raise (
            InputError(errors[0])
            if len(errors) == 1
            else _fail(source, path, f"{_describe(value)} fits none of {kind}")
        )
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _fail(source, path, f"expected a list, got {_describe(value)}")
        args = get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            items = [_convert(args[0], v, source, f"{path}[{i}]") for i, v in enumerate(value)]
        elif args:
            if len(args) != len(value):
                raise _fail(source, path, f"expected {len(args)} items, got {len(value)}")
            items = [
                _convert(a, v, source, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value))
            ]
        else:
            items = list(value)
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        if isinstance(value, kind):
            return value
        return _from_mapping(kind, value, source, path)
    if kind is bool:
        if not isinstance(value, bool):
            raise _fail(source, path, f"expected true or false, got {_describe(value)}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(source, path, f"expected an integer, got {_describe(value)}")
        return value
    if kind is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-5 (no point) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(source, path, f"expected a number, got {_describe(value)}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise _fail(source, path, f"expected a string, got {_describe(value)}")
        return value
    if kind is Any or kind is object:
        return value
    raise _fail(source, path, f"cannot read a value of type {kind} from a file")


def _from_mapping(cls: type[T], data: Any, source: str, path: str) -> T:
    """An instance of the dataclass ``cls`` from a mapping, defaults for missing keys."""
    if not isinstance(data, dict):
        raise _fail(source, path, f"expected a mapping of options, got {_describe(data)}")
    hints = get_type_hints(cls)
    fields = {
        f.name: f
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.init and not f.name.startswith("_")
    }
    kwargs = {}
    for key, value in data.items():
        dotted = f"{path}.{key}" if path else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(fields)})"
            raise InputError(f"{source}: unknown key '{dotted}'{hint}")
        kwargs[key] = _convert(hints[key], value, source, dotted)
    try:
        return cls(**kwargs)
    except InputError as exc:  # __post_init__ validation: say where it came from
        raise InputError(f"{source}: {path + ': ' if path else ''}{exc}") from None
    except (TypeError, ValueError) as exc:
        raise _fail(source, path, str(exc)) from None


def config_from_dict(cls: type[T], data: Any, source: str = "<dict>") -> T:
    """The config dataclass ``cls`` built from a (nested) dict; unknown keys and wrong types
    raise."""
    return _from_mapping(cls, data, source, "")


def config_to_dict(config: Any) -> dict:
    """A nested dict of plain values (lists for tuples) that ``config_from_dict`` reads back."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {
                f.name: plain(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if f.init and not f.name.startswith("_")
            }
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        return value

    return plain(config)


def config_to_yaml(config: Any) -> str:
    """The whole config as YAML text (every key, nested sections as mappings)."""
    import yaml

    return yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=False)


def config_from_yaml(cls: type[T], path: str | os.PathLike) -> T:
    """The config dataclass ``cls`` read from a YAML file (an empty file gives the defaults)."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise InputError(f"{name}: cannot read the config file: {exc.strerror or exc}") from None
    return config_from_yaml_text(cls, text, name)


def config_from_yaml_text(cls: type[T], text: str, source: str = "<yaml>") -> T:
    """The config dataclass ``cls`` read from YAML text."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{source}: not valid YAML{line}: {problem}") from None
    return config_from_dict(cls, {} if data is None else data, source)


__all__ = [
    "config_from_dict",
    "config_from_yaml",
    "config_from_yaml_text",
    "config_to_dict",
    "config_to_yaml",
]

"""The trick registry: factors, their levels, typed parameters and canonical labels.

A *level* is a frozen dataclass subclassing :class:`Level`. Its fields are its parameters (with
defaults); ``__post_init__`` validates them through :func:`validate_fields`, so a bad value fails
at construction with a message naming the factor, the level and the parameter.

Our own levels live in one explicit dict per factor module (``LEVELS``), collected in
``tricks/__init__.py``. Third-party levels register through the entry-point group
``bsnn_bench.tricks``: each entry point loads a :class:`Level` subclass.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, get_args, get_origin

__all__ = [
    "Level",
    "ParamInfo",
    "TrickError",
    "format_value",
    "validate_fields",
]


class TrickError(ValueError):
    """A user error in naming or parametrizing a trick level (unknown name, bad parameter)."""


@dataclasses.dataclass(frozen=True)
class ParamInfo:
    name: str
    type: str
    default: Any
    help: str


def format_value(value: Any) -> str:
    """Format a parameter value for a canonical label: stable, short, round-trippable by YAML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") and abs(value) < 1e15 else text
    if isinstance(value, tuple | list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin is tuple:
        return "tuple"
    return getattr(tp, "__name__", str(tp))


def _coerce(tp: Any, value: Any) -> tuple[bool, Any]:
    """Return (ok, coerced value) for ``value`` against annotation ``tp``.

    Ints are accepted where floats are expected (YAML writes ``1`` for ``1.0``), never bools.
    """
    origin = get_origin(tp)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in get_args(tp)), value
    if origin in (typing.Union, types.UnionType):
        for arg in get_args(tp):
            ok, coerced = _coerce(arg, value)
            if ok:
                return True, coerced
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, int | float):
            return True, float(value)
        return False, value
    if tp is str:
        return isinstance(value, str), value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            return False, value
        (inner, *_rest) = get_args(tp)
        out = []
        for v in value:
            ok, c = _coerce(inner, v)
            if not ok:
                return False, value
            out.append(c)
        return True, tuple(out)
    return isinstance(value, tp), value


class Level:
    """Base class of every trick level.

    Subclasses are ``@dataclasses.dataclass(frozen=True)`` and set the class variables below.
    Their ``__post_init__`` must call ``super().__post_init__()`` (or :func:`validate_fields`)
    before any extra range checks, which raise :meth:`error`.
    """

    factor: ClassVar[str] = ""
    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: Parameters printed in the label even at their default (the ones a reader must see).
    always_show: ClassVar[tuple[str, ...]] = ()
    #: Short help per parameter, shown by ``bsnn-bench tricks``.
    param_help: ClassVar[Mapping[str, str]] = {}

    def __post_init__(self) -> None:
        validate_fields(self)

    @classmethod
    def error(cls, param: str | None, message: str) -> TrickError:
        where = f"{cls.factor} level '{cls.name}'"
        if param:
            where += f", parameter '{param}'"
        return TrickError(f"{where}: {message}")

    @classmethod
    def params(cls) -> list[ParamInfo]:
        hints = typing.get_type_hints(cls)
        out = []
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else None
            out.append(ParamInfo(f.name, _type_name(hints[f.name]), default,
                                 cls.param_help.get(f.name, "")))
        return out

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Level:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            expected = ", ".join(sorted(known)) or "no parameters"
            raise cls.error(unknown[0], f"unknown parameter (expected: {expected})")
        return cls(**params)

    def to_dict(self) -> dict[str, Any]:
        """The level as a YAML-able mapping: ``{"name": ..., **params}``."""
        out: dict[str, Any] = {"name": self.name}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def label(self) -> str:
        """Canonical label: name, then parameters that differ from default or are always shown."""
        shown = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in self.always_show or v != f.default:
                shown.append(f"{f.name}={format_value(v)}")
        return f"{self.name}({', '.join(shown)})" if shown else self.name

    def __str__(self) -> str:
        return self.label()


def validate_fields(level: Level) -> None:
    """Check and coerce every dataclass field of ``level`` against its type annotation."""
    hints = typing.get_type_hints(type(level))
    for f in dataclasses.fields(level):
        value = getattr(level, f.name)
        ok, coerced = _coerce(hints[f.name], value)
        if not ok:
            raise type(level).error(
                f.name, f"expected {_type_name(hints[f.name])}, got {value!r} "
                        f"({type(value).__name__})")
        if coerced is not value:
            object.__setattr__(level, f.name, coerced)

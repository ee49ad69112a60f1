"""Training tricks of a BSNN study: one module per factor, one small registered class per level.

Usage::

    from tricks import make, registry
    level = make("optimizer", {"name": "hybrid", "switch_at": 0.5})
    level.label()   # 'hybrid(switch_at=0.5)'
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from tricks import (
    augmentation,
    binarization,
    loss,
    lr_schedule,
    normalization,
    optimizer,
    placebo,
    shift_bn,
    surrogate,
)
from tricks._registry import Level, ParamInfo, TrickError, format_value

__all__ = [
    "ENTRY_POINT_GROUP",
    "FACTORS",
    "Level",
    "ParamInfo",
    "TrickError",
    "default_level",
    "format_value",
    "make",
    "parse_spec",
    "registry",
]

ENTRY_POINT_GROUP = "bsnn_bench.tricks"

#: Our own factors, in the order tables show them. Each module holds ``LEVELS`` and ``DEFAULT``.
_MODULES = {
    "binarization": binarization,
    "normalization": normalization,
    "shift_bn": shift_bn,
    "surrogate": surrogate,
    "optimizer": optimizer,
    "lr_schedule": lr_schedule,
    "augmentation": augmentation,
    "loss": loss,
    "placebo": placebo,
}
FACTORS: tuple[str, ...] = tuple(_MODULES)


@functools.cache
def registry() -> dict[str, dict[str, type[Level]]]:
    """Every factor and its levels: ours, then third-party ones from entry points."""
    table = {factor: dict(module.LEVELS) for factor, module in _MODULES.items()}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Level) and cls.factor and cls.name):
            raise TrickError(f"entry point '{ep.name}' in group {ENTRY_POINT_GROUP} does not load "
                             f"a Level subclass with a factor and a name")
        levels = table.setdefault(cls.factor, {})
        if cls.name in levels and levels[cls.name] is not cls:
            raise TrickError(f"entry point '{ep.name}': {cls.factor} level '{cls.name}' is "
                             f"already registered")
        levels[cls.name] = cls
    for factor, levels in table.items():
        for key, cls in levels.items():
            if cls.name != key or cls.factor != factor:
                raise TrickError(f"registry key ({factor}, {key}) does not match the class "
                                 f"{cls.__name__} ({cls.factor}, {cls.name})")
    return table


def parse_spec(spec: Any) -> tuple[str, dict[str, Any]]:
    """Split a level spec (``"atan"`` or ``{"name": "atan", "alpha": 2}``) into name and params."""
    if isinstance(spec, Level):
        d = spec.to_dict()
        return d.pop("name"), d
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, bool) or spec is None:
        # YAML reads a bare `off`/`on` as a bool; shift_bn levels are named that way.
        return {None: "none", True: "on", False: "off"}[spec], {}
    if isinstance(spec, Mapping):
        if "name" not in spec:
            raise TrickError(f"a level given as a mapping needs a 'name' key, got {dict(spec)!r}")
        params = {k: v for k, v in spec.items() if k != "name"}
        name = spec["name"]
        if isinstance(name, bool):
            name = "on" if name else "off"
        if not isinstance(name, str):
            raise TrickError(f"a level name must be a string, got {name!r}")
        return name, params
    raise TrickError(f"a level is a name or a mapping with 'name', got {spec!r}")


def make(factor: str, spec: Any) -> Level:
    """Build a validated level of ``factor`` from a name, a mapping, or a level."""
    table = registry()
    if factor not in table:
        raise TrickError(f"unknown factor '{factor}' (known: {', '.join(table)})")
    if isinstance(spec, Level):
        if spec.factor != factor:
            raise TrickError(f"level {spec.label()} belongs to factor '{spec.factor}', "
                             f"not '{factor}'")
        return spec
    name, params = parse_spec(spec)
    levels = table[factor]
    if name not in levels:
        raise TrickError(f"unknown {factor} level '{name}' (known: {', '.join(levels)})")
    return levels[name].from_params(params)


def default_level(factor: str) -> Level:
    """The level a run uses when its configuration does not name one."""
    return make(factor, _MODULES[factor].DEFAULT) if factor in _MODULES else make(
        factor, next(iter(registry()[factor])))

"""Factors of a study spec: trick factors (levels from the registry) and configuration paths
(plain values), validated and labelled as the database stores them."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

import tricks
from harness.config import RunConfig, set_path
from harness.errors import ConfigError, SpecError
from tricks._registry import TrickError, format_value

__all__ = ["Factor", "level_order_change", "parse_factor", "value_label"]


@dataclasses.dataclass(frozen=True)
class Factor:
    """One dimension of a study: its name, kind, and levels as (canonical label, value)."""

    name: str
    #: "trick" (a registered factor; values are Level objects) or "config" (a dotted path).
    kind: str
    labels: tuple[str, ...]
    values: tuple[Any, ...]


def _config_path_type(path: str) -> Any:
    """The annotated type at a dotted RunConfig path, or None if the path does not exist."""
    from harness import config as cfgmod

    keys = path.split(".")
    sections = cfgmod._SECTIONS
    if len(keys) < 2 or keys[0] not in sections:
        return None
    node: Any = sections[keys[0]]
    for i, key in enumerate(keys[1:], start=1):
        if node is dict:
            return Any if i == len(keys) - 1 else None
        if not dataclasses.is_dataclass(node):
            return None
        hints = typing.get_type_hints(node)
        if key not in hints or key not in {f.name for f in dataclasses.fields(node)}:
            return None
        node = hints[key]
    return node


def value_label(value: Any) -> str:
    """The label of a plain (non-trick) level value as studies store it: ``none``, ``0.5``,
    ``{a=1, b=x}``."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={value_label(v)}" for k, v in sorted(value.items())) + "}"
    if value is None:
        return "none"
    return format_value(value)


def parse_factor(path: str, fname: str, levels: Any, base: dict[str, Any]) -> Factor:
    key = f"factors.{fname}"
    if not isinstance(levels, list):
        raise SpecError(f"{path}: '{key}': expected a list of levels, got {levels!r}")
    if not levels:
        raise SpecError(f"{path}: '{key}': empty factor (expected at least one level)")
    registry = tricks.registry()
    labels: list[str] = []
    values: list[Any] = []
    if fname in registry:
        kind = "trick"
        for i, spec in enumerate(levels):
            try:
                level = tricks.make(fname, spec)
            except TrickError as exc:
                raise SpecError(f"{path}: '{key}[{i}]': {exc}") from None
            labels.append(level.label())
            values.append(level)
    elif "." in fname:
        kind = "config"
        if fname.split(".")[0] == "factors":
            raise SpecError(f"{path}: '{key}': name the trick factor directly "
                            f"('{fname.split('.', 1)[1]}'), not through 'factors.'")
        if fname == "train.seed":
            raise SpecError(f"{path}: '{key}': seeds are not a factor; list them in "
                            f"train.seeds (every combination runs with every seed)")
        if _config_path_type(fname) is None:
            raise SpecError(f"{path}: '{key}': unknown configuration path (expected a setting "
                            f"such as dataset.time_steps, model.pool, train.weight_decay)")
        for i, value in enumerate(levels):
            try:
                cfg = RunConfig.from_dict(set_path(base, fname, value))
            except (ConfigError, TrickError) as exc:
                raise SpecError(f"{path}: '{key}[{i}]': {exc}") from None
            # Label the value as the configuration holds it (0 and 0.0 are one level).
            node: Any = cfg.to_dict()
            for part in fname.split("."):
                node = node[part]
            labels.append(value_label(node))
            values.append(node)
    else:
        raise SpecError(f"{path}: '{key}': unknown factor (expected a trick factor: "
                        f"{', '.join(registry)}; or a configuration path like "
                        f"dataset.time_steps)")
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):
        if label in seen:
            raise SpecError(f"{path}: '{key}[{i}]': duplicate level '{label}' (same as "
                            f"level {seen[label]})")
        seen[label] = i
        if "|" in label:
            raise SpecError(f"{path}: '{key}[{i}]': a level label may not contain '|'")
    return Factor(fname, kind, tuple(labels), tuple(values))


def level_order_change(path: str, factors: tuple[Factor, ...], base: dict[str, Any],
                       old_raw: Mapping[str, Any]) -> str | None:
    """Why the level order of ``factors`` differs from that of the spec ``old_raw`` the study
    was created from, or None. The first level of a factor is the reference every contrast is
    measured against, so a resumed study keeps it first and keeps its levels' order; new levels
    may come anywhere after the first."""
    old_factors = old_raw.get("factors") if isinstance(old_raw, Mapping) else None
    for f in factors:
        levels = old_factors.get(f.name) if isinstance(old_factors, Mapping) else None
        if not isinstance(levels, list) or not levels:
            continue
        try:
            old = parse_factor(path, f.name, levels, base).labels
        except SpecError:
            continue  # the old spec no longer parses: the other checks decide
        if f.labels[0] != old[0]:
            return (f"factor '{f.name}': its first level, the reference every contrast is "
                    f"measured against, would change from '{old[0]}' to '{f.labels[0]}'")
        kept = [lbl for lbl in f.labels if lbl in old]
        if kept != [lbl for lbl in old if lbl in f.labels]:
            return (f"factor '{f.name}': its levels were reordered ({', '.join(old)} -> "
                    f"{', '.join(kept)}); keep their order (it is the order of every "
                    f"table) and add new levels after the first")
    return None

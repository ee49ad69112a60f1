"""YAML reading with ``yaml.safe_load`` semantics, hardened against alias bombs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.errors import SpecError

__all__ = ["load_yaml", "MAX_ALIASES"]

#: A legitimate study uses few anchors; "billion laughs" documents use many.
MAX_ALIASES = 100


class _CountingLoader(yaml.SafeLoader):
    """SafeLoader that refuses documents with more than MAX_ALIASES alias references."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_ALIASES} YAML aliases (alias bomb?)")
        return super().compose_node(parent, index)


def load_yaml(path: str | Path) -> Any:
    """Load one YAML document safely; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read: {exc}") from None
    try:
        return yaml.load(text, Loader=_CountingLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.constructor.ConstructorError as exc:
        raise SpecError(f"{path}: YAML tag not allowed ({exc.problem}); only plain YAML "
                        f"is read") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: invalid YAML: {exc}") from None

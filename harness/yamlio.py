"""YAML reading with ``yaml.safe_load`` semantics, bounded in size and depth, hardened against alias
bombs.

Study and run configuration files are small (a few kilobytes): a file over
:data:`MAX_FILE_BYTES` is refused before it is parsed, and a document with more than
:data:`MAX_NODES` values (a 500,000-entry seed list fits in 4 MiB) is refused while it is parsed,
at the first value over the limit, so neither costs more than a moment and a few megabytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.errors import SpecError

__all__ = ["load_yaml", "MAX_ALIASES", "MAX_FILE_BYTES", "MAX_DEPTH", "MAX_NODES"]

#: A legitimate study uses few anchors; "billion laughs" documents use many.
MAX_ALIASES = 100
#: The largest study or configuration file read (the shipped studies are under 4 KiB).
MAX_FILE_BYTES = 4 * 1024 * 1024
#: The most values (scalars, lists, mappings) one document may hold, aliases not expanded. A
#: full-factorial study needs a few hundred; :data:`harness.study.limits.MAX_VALUES` bounds the
#: document with its aliases expanded.
MAX_NODES = 20_000
#: The deepest nesting of lists and mappings read (a study nests five or six).
MAX_DEPTH = 64


class _SizeError(yaml.YAMLError):
    """A document over MAX_NODES values: reported as itself, not as invalid YAML."""


class _CountingLoader(yaml.SafeLoader):
    """SafeLoader that refuses documents with more than MAX_ALIASES alias references or more
    than MAX_NODES values, as soon as it meets the one over the limit."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._nodes = 0
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_ALIASES} YAML aliases (alias bomb?)")
        else:
            self._nodes += 1
            if self._nodes > MAX_NODES:
                mark = self.peek_event().start_mark
                raise _SizeError(f"more than {MAX_NODES:,} values (the one over the limit is at "
                                 f"line {mark.line + 1}); a study lists a few hundred at most: "
                                 f"is a list (train.seeds, a factor's levels) far too long?")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _SizeError(f"lists and mappings nested more than {MAX_DEPTH} deep (at "
                                 f"line {mark.line + 1}); a study nests five or six")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _read_bounded(path: Path) -> bytes:
    """The file's bytes, refusing one over MAX_FILE_BYTES before reading it (and, for a pipe or
    a file growing meanwhile, after reading one byte more than the limit)."""
    limit = MAX_FILE_BYTES
    size = path.stat().st_size
    if size > limit:
        raise SpecError(f"{path}: {size / 1e6:.1f} MB is over the {limit // (1024 * 1024)} MiB "
                        f"limit of a study or configuration file (they are a few KB); "
                        f"is this the right file?")
    with path.open("rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise SpecError(f"{path}: over the {limit // (1024 * 1024)} MiB limit of a study or "
                        f"configuration file (they are a few KB); is this the right file?")
    return data


def load_yaml(path: str | Path) -> Any:
    """Load one YAML document safely; errors name the file."""
    path = Path(path)
    try:
        text = _read_bounded(path).decode("utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a folder, not a YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read: {exc}") from None
    try:
        return yaml.load(text, Loader=_CountingLoader)  # noqa: S506 - a SafeLoader subclass
    except _SizeError as exc:
        raise SpecError(f"{path}: {exc}") from None
    except yaml.constructor.ConstructorError as exc:
        raise SpecError(f"{path}: YAML tag not allowed ({exc.problem}); only plain YAML "
                        f"is read") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: invalid YAML: {exc}") from None

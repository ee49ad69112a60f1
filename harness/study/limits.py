"""What a study spec may hold: a bounded number of values, text and lengths the results
database stores on SQLite and PostgreSQL alike.

Each check raises :class:`~harness.errors.SpecError` naming the file and the key, before anything
is written, so a spec PostgreSQL would refuse mid-study is refused on SQLite too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.errors import SpecError

__all__ = ["MAX_VALUES", "check_size", "check_stored_lengths", "check_text"]

#: A real spec holds hundreds of values; YAML aliases can make a small file expand to billions.
MAX_VALUES = 100_000


def check_size(data: Any, path: str) -> None:
    """Refuse a document whose aliases expand it past MAX_VALUES (walks at most that many)."""
    stack = [data]
    seen = 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            # harness.yamlio already refused documents with more values than this written out.
            raise SpecError(f"{path}: the document expands to more than {MAX_VALUES} values "
                            f"through its YAML aliases (an alias bomb?); write the values out")
        if isinstance(node, Mapping):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def check_text(data: Any, path: str) -> None:
    """Refuse text the results database cannot store, on SQLite and PostgreSQL alike: a NUL
    character (PostgreSQL text cannot hold one) or an unpaired surrogate (not encodable as
    UTF-8), anywhere in the document, keys included; the message names the key."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, node = stack.pop()
        texts = [(where, node)] if isinstance(node, str) else []
        if isinstance(node, Mapping):
            for k, v in node.items():
                sub = f"{where}.{k}" if where else str(k)
                if isinstance(k, str):
                    texts.append((sub, k))
                stack.append((sub, v))
        elif isinstance(node, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(node))
        for key, text in texts:
            # The key path itself may hold the character: show it escaped.
            key = (key.replace("\x00", "\\0").encode("utf-8", "backslashreplace").decode()
                   or "<document>")
            if "\x00" in text:
                raise SpecError(f"{path}: '{key}': contains a NUL character "
                                f"(\\0), which the results database cannot store (PostgreSQL "
                                f"refuses it in text): remove it")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                bad = f"\\u{ord(text[exc.start]):04x}"
                raise SpecError(f"{path}: '{key}': contains {bad}, an unpaired "
                                f"surrogate that is not valid Unicode text and cannot be "
                                f"stored: remove it") from None


def _column_length(column: Any) -> int:
    return int(column.property.columns[0].type.length)


def check_stored_lengths(path: str, design: str, factors: Sequence[Any],
                          seeds: list[int]) -> None:
    """Refuse factor names, level labels and run keys longer than their database columns.

    SQLite would store them anyway and PostgreSQL refuse them mid-study; checking here makes
    both behave the same, before anything is written.
    """
    from harness.store.schema import Run, RunFactor

    name_max = _column_length(RunFactor.factor)
    label_max = _column_length(RunFactor.level)
    key_max = _column_length(Run.run_key)
    for f in factors:
        key = f"factors.{f.name}"
        if len(f.name) > name_max:
            raise SpecError(f"{path}: '{key[:60]}...': a factor name of {len(f.name):,} "
                            f"characters; the results database stores at most {name_max:,}")
        for i, label in enumerate(f.labels):
            if len(label) > label_max:
                raise SpecError(f"{path}: '{key}[{i}]': its level label ({label[:40]!r}...) is "
                                f"{len(label):,} characters; the results database stores at "
                                f"most {label_max:,}")
    # The longest run key: every factor at its longest level (one-at-a-time: all at the
    # reference level but one), then the longest seed.
    parts = [len(f.name) + 1 + len(f.labels[0]) for f in factors]
    longest = [len(f.name) + 1 + max(len(lbl) for lbl in f.labels) for f in factors]
    if design == "one-at-a-time":
        level_chars = sum(parts) + max(b - a for a, b in zip(parts, longest))
    else:
        level_chars = sum(longest)
    seed_chars = len("seed=") + max(len(str(s)) for s in seeds)
    length = level_chars + len(factors) + seed_chars
    if length > key_max:
        raise SpecError(f"{path}: 'factors': the longest run key of this study "
                        f"(factor=level|...|seed=N) is {length:,} characters; the results "
                        f"database stores at most {key_max:,}: shorten the longest levels")

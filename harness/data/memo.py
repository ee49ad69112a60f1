"""In-process copies of data-cache entries: a worker's runs that share preprocessing read once.

A study worker trains run after run in one process, and most of its runs use the same frames
(every factor but augmentation leaves preprocessing alone). :func:`load_or_build` is
:func:`harness.data.cache.load_or_build` with a memory in front of it, keyed like the cache
itself (the entry's path and everything its key hashes), so a run reads its arrays from this
process's memory when an earlier run read the same entry.

The arrays are shared between runs: callers index or copy them and never write to them (the
frame loaders gather batches, event transforms copy). The memory holds at most
``$BSNN_BENCH_DATA_MEMO_MB`` (default 2048) MiB, least recently used entries go first, and an
entry larger than that is not kept; ``0`` turns it off.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from harness.data import cache

__all__ = ["MEMO_ENV", "clear", "load_or_build", "memo_bytes"]

#: Budget of the in-process copies in MiB (default 2048; 0: off).
MEMO_ENV = "BSNN_BENCH_DATA_MEMO_MB"

_ENTRIES: OrderedDict[tuple[str, str], dict[str, np.ndarray]] = OrderedDict()


def _budget() -> int:
    raw = os.environ.get(MEMO_ENV, "2048")
    try:
        return max(0, int(float(raw) * 2 ** 20))
    except ValueError:
        return 2048 * 2 ** 20


def _size(arrays: Mapping[str, np.ndarray]) -> int:
    return sum(a.nbytes for a in arrays.values())


def memo_bytes() -> int:
    """Bytes held now."""
    return sum(_size(a) for a in _ENTRIES.values())


def clear() -> None:
    """Forget every in-process copy."""
    _ENTRIES.clear()


def load_or_build(kind: str, name: str, params: Mapping[str, Any],
                  build: Callable[[], Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """:func:`harness.data.cache.load_or_build`, from this process's memory when it can."""
    key = (str(cache.entry_path(kind, name, params)), cache.canonical_params(params))
    arrays = _ENTRIES.get(key)
    if arrays is not None:
        _ENTRIES.move_to_end(key)
        return arrays
    arrays = cache.load_or_build(kind, name, params, build)
    budget = _budget()
    size = _size(arrays)
    if size <= budget:
        _ENTRIES[key] = arrays
        while memo_bytes() > budget:
            _ENTRIES.popitem(last=False)
    return arrays

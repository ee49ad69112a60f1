"""Split rules that are not a seeded shuffle (see :mod:`harness.data.pipeline` for those)."""

from __future__ import annotations

import re

import numpy as np

__all__ = ["file_order_split", "natural_key"]


def natural_key(path: str) -> list:
    """Sort key comparing the digits in a path as numbers (``x_2`` before ``x_10``)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def file_order_split(labels: np.ndarray, paths: list[str] | None,
                     fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(rest, held): per class, files in natural file-name order; the first
    ``round((1 - fraction) * n)`` are kept, the others held out (He et al.'s CIFAR10-DVS split:
    the first 90 % of each class train, the last 10 % test)."""
    if paths is None or len(paths) != len(labels):
        raise ValueError("a file-order split needs the recordings' paths")
    rest, held = [], []
    for c in np.unique(labels):
        idx = sorted(np.flatnonzero(labels == c).tolist(), key=lambda i: natural_key(paths[i]))
        k = int(round((1.0 - fraction) * len(idx)))
        rest += idx[:k]
        held += idx[k:]
    return np.asarray(rest, dtype=np.int64), np.asarray(held, dtype=np.int64)

"""Checks of real recordings before their events reach tonic's kernels.

Each malformed input ends in one :class:`~harness.errors.RecordingError` naming the file (the CLI
prints it as one line and exits 2), never in an index error from inside a library:

* a zero-byte file, or an N-MNIST ``.bin`` whose length is not a multiple of 5 (a truncated
  download), is refused before tonic parses it;
* a recording with no events is refused (nothing to learn from; usually a broken conversion);
* an event outside the dataset's sensor (x >= W, y >= H, a polarity >= P on a sensor with
  polarities, or negative) is refused, naming the largest x and y found and the sensor size
  expected;
* a class folder whose name is not one of the dataset's classes is refused (tonic would map
  ``13`` to digit 3 or fail with a bare KeyError);
* a label list beside the tree (N-MNIST's ``train*.txt``: lines of ``<sample id> <label>``,
  ``#`` comments; a text file with other lines is not a label list and is ignored) that
  disagrees with the folders is refused, naming the list, the sample and both labels.

One documented rule instead of an error: a recording whose timestamps decrease somewhere is
sorted by time (stable, so equal times keep their order) with a warning naming the file; the
events are the same, only their order changes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from harness.data.catalogue import DatasetRecord
from harness.errors import RecordingError

__all__ = ["check_class_folders", "check_events", "check_file", "check_label_lists",
           "sort_by_time"]


def check_file(rec: DatasetRecord, path: str) -> None:
    """Refuse files that cannot hold a recording before a reader parses them."""
    size = Path(path).stat().st_size
    if size == 0:
        raise RecordingError(f"{path}: zero-byte file (dataset '{rec.name}'); delete it or "
                             f"fetch it again")
    if rec.extension == ".bin" and size % 5:
        raise RecordingError(f"{path}: {size} bytes is not a whole number of 5-byte N-MNIST "
                             f"events (truncated file?); delete it or fetch it again")


def check_events(rec: DatasetRecord, path: str, events: np.ndarray) -> None:
    """Refuse an empty recording or one with events outside ``rec.sensor_size``."""
    if len(events) == 0:
        raise RecordingError(f"{path}: the recording has no events (dataset '{rec.name}')")
    w, h, p = rec.sensor_size
    x, y = events["x"], events["y"]
    # A one-channel sensor (audio) has no polarity: the pipeline sets it to 0.
    pol = events["p"] if p > 1 else np.zeros(1, np.int64)
    max_x, max_y, max_p = int(x.max()), int(y.max()), int(pol.max())
    min_all = min(int(x.min()), int(y.min()), int(pol.min()))
    if max_x >= w or max_y >= h or max_p >= p or min_all < 0:
        found = f"max x {max_x}, max y {max_y}"
        if max_p >= p:
            found += f", max polarity {max_p}"
        if min_all < 0:
            found += ", negative coordinates"
        raise RecordingError(
            f"{path}: events outside the {rec.name} sensor: found {found} (a sensor of at least "
            f"{max_x + 1}x{max_y + 1}), expected {w}x{h} with {p} polarities (x < {w}, "
            f"y < {h}); this file is not a {rec.name} recording")


def sort_by_time(path: str, events: np.ndarray) -> np.ndarray:
    """The documented rule for decreasing timestamps: stable sort by time, with a warning."""
    if len(events) > 1 and np.any(np.diff(events["t"]) < 0):
        warnings.warn(f"{path}: timestamps decrease; events sorted by time", stacklevel=2)
        return events[np.argsort(events["t"], kind="stable")]
    return events


def check_class_folders(rec: DatasetRecord, top: Path) -> None:
    """Every folder under ``top`` holding recordings must be one of the dataset's classes."""
    if rec.class_folders is None or rec.extension is None or not top.is_dir():
        return
    allowed = set(rec.class_folders)
    for child in sorted(top.iterdir()):
        if child.is_dir() and child.name not in allowed and \
                next(child.glob(f"**/*{rec.extension}"), None) is not None:
            raise RecordingError(
                f"{child}: unexpected class folder '{child.name}' for dataset '{rec.name}' "
                f"(expected one of: {', '.join(rec.class_folders)})")


def check_label_lists(rec: DatasetRecord, root: Path, split: str, paths: list[str],
                      labels: np.ndarray) -> None:
    """Where a ``<sample id> <label>`` list sits beside the tree, it must agree with it."""
    if not rec.label_lists or split not in rec.label_lists:
        return
    pattern, offset = rec.label_lists[split]
    by_number = {}
    for path, label in zip(paths, labels.tolist()):
        stem = Path(path).stem
        if stem.isdigit():
            by_number[int(stem)] = (path, label)
    for listing in sorted(root.glob(pattern)):
        entries = _label_list(listing)
        if entries is None:
            continue  # not a label list (some other text file matching the pattern)
        for line_no, sample, listed in entries:
            hit = by_number.get(sample - offset)
            if hit is not None and hit[1] != listed:
                raise RecordingError(
                    f"{listing}:{line_no}: sample {sample} has label {listed}, but its file "
                    f"{hit[0]} lies in class folder {hit[1]}")


def _label_list(path: Path) -> list[tuple[int, int, int]] | None:
    """(line, sample id, label) of a ``<sample id> <label>`` list ('#' lines are comments);
    None if some other line is not two integers (the file is not such a list)."""
    out = []
    for line_no, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != 2 or not all(f.lstrip("-").isdigit() for f in fields):
            return None
        out.append((line_no, int(fields[0]), int(fields[1])))
    return out

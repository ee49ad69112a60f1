"""The real event datasets, read through tonic's own dataset classes.

tonic's classes download when their ``_check_exists`` fails, and that check wants the original
archive next to at least 1,000-10,000 extracted files. Here each class is subclassed (tonic's
documented extension point, no patching) so that:

* the check accepts any extracted copy in tonic's layout (the archive may be deleted, the tree
  may be partial, like the 1,100-file N-MNIST subset in ``../shared/data``);
* a missing dataset raises :class:`~harness.errors.DatasetMissingError`, naming the path, the
  expected layout and how to get the data, unless the run asked for downloads
  (``dataset.download: true``).

Every file is checked (:mod:`harness.data.checks`) before and after tonic parses it: malformed,
empty, mislabelled or oversized recordings end in one :class:`~harness.errors.RecordingError`
naming the file. What each dataset is (layout, source, sensor, classes) is its record in
:mod:`harness.data.catalogue`.

Samples are returned as :data:`~harness.data.dvs_sim.EVENT_DTYPE` events (audio: ``y = 0``)
in a deterministic order sorted by file path (tonic's walk order depends on the filesystem).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tonic

from harness.data import checks
from harness.data.catalogue import CATALOGUE, DatasetRecord
from harness.data.dvs_sim import EVENT_DTYPE
from harness.errors import DatasetMissingError, RecordingError

__all__ = ["LAYOUTS", "RealPool", "data_root", "open_pool"]


def data_root(root: str | None) -> Path:
    """``dataset.root``, else ``$BSNN_DATA_DIR``, else ``~/.cache/bsnn-bench/data``."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get("BSNN_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "bsnn-bench" / "data"


#: What each real dataset's folder must hold (under the data root), shown when it is missing.
LAYOUTS = {name: rec.layout for name, rec in CATALOGUE.items() if rec.layout is not None}


def _missing(rec: DatasetRecord, location: str) -> DatasetMissingError:
    return DatasetMissingError(
        f"dataset '{rec.name}' not found at {location}: expected {rec.layout} under the data "
        f"root (dataset.root, $BSNN_DATA_DIR or ~/.cache/bsnn-bench/data). Get it from "
        f"{rec.source}, or let tonic download it with dataset.download: true")


class _Offline:
    """Mixin over a tonic dataset: lenient presence check, downloads only when allowed."""

    _bench_name: str = ""
    _bench_ext: str = ""
    _bench_allow_download: bool = False
    location_on_system: str
    folder_name: str

    def _check_exists(self) -> bool:
        folder = Path(self.location_on_system, self.folder_name)
        return folder.is_dir() and next(folder.glob(f"**/*{self._bench_ext}"), None) is not None

    def download(self) -> None:
        if not self._bench_allow_download:
            raise _missing(CATALOGUE[self._bench_name],
                           str(Path(self.location_on_system, self.folder_name)))
        super().download()  # type: ignore[misc]


class NMNIST(_Offline, tonic.datasets.NMNIST):
    _bench_name, _bench_ext = "nmnist", ".bin"


class DVSGesture(_Offline, tonic.datasets.DVSGesture):
    _bench_name, _bench_ext = "dvsgesture", ".npy"


class CIFAR10DVS(_Offline, tonic.datasets.CIFAR10DVS):
    _bench_name, _bench_ext = "cifar10dvs", ".aedat4"


class SHD(_Offline, tonic.datasets.SHD):
    _bench_name = "shd"

    def _check_exists(self) -> bool:
        return Path(self.location_on_system, self.filename[:-4]).is_file()


_READERS: dict[str, type] = {"NMNIST": NMNIST, "DVSGesture": DVSGesture,
                             "CIFAR10DVS": CIFAR10DVS, "SHD": SHD}


@dataclasses.dataclass
class RealPool:
    """One tonic split (``train``/``test``; CIFAR10-DVS: ``all``) with labels and a reader."""

    labels: np.ndarray
    read: Callable[[int], np.ndarray]
    #: Identifies the files read, for the cache key (path and sample count).
    identity: dict
    #: One path per sample, in pool order (None: one file holds the split).
    paths: list[str] | None = None

    @property
    def size(self) -> int:
        return len(self.labels)


def _to_common(events: np.ndarray) -> np.ndarray:
    out = np.zeros(len(events), dtype=EVENT_DTYPE)
    for name in ("x", "y", "t", "p"):
        if name in events.dtype.names:
            out[name] = events[name]
    return out


def _split_folder(cls: type, pool: str) -> str:
    """tonic's folder of one split (the class attribute tonic's __init__ would pick)."""
    if cls is NMNIST:
        return cls.train_folder if pool == "train" else cls.test_folder
    if cls is DVSGesture:
        return "ibmGestureTrain" if pool == "train" else "ibmGestureTest"
    return getattr(cls, "folder_name", "")


def open_pool(name: str, pool: str, root: str | None, *, download: bool = False) -> RealPool:
    """Open one split of a real dataset; a missing dataset raises DatasetMissingError, a
    malformed tree or recording RecordingError (naming the file)."""
    rec = CATALOGUE[name]
    assert rec.tonic_class is not None, f"{name} is not a real dataset"
    cls = _READERS[rec.tonic_class]
    base = data_root(root)
    if rec.needs_module:
        try:
            __import__(rec.needs_module)
        except ImportError:
            raise DatasetMissingError(
                f"dataset '{name}' needs the '{rec.needs_module}' reader, which tonic does not "
                f"install: pip install 'bsnn-bench[{name}]' (or pip install "
                f"{rec.needs_module})") from None
    if not download and not base.is_dir():
        raise _missing(rec, str(base / cls.__name__))
    checks.check_class_folders(rec, base / cls.__name__ / _split_folder(cls, pool))
    subclass = type(cls.__name__, (cls,), {"_bench_allow_download": download})
    kwargs = {"train": pool == "train"} if rec.has_tonic_split else {}
    ds = subclass(str(base), **kwargs)
    if rec.extension is None:  # one file holds the split (SHD)
        import h5py

        path = Path(ds.location_on_system, ds.data_filename)
        with h5py.File(path, "r") as fh:
            labels = np.asarray(fh["labels"][()], dtype=np.int64)

        def read_sample(i: int) -> np.ndarray:
            events = _to_common(ds[i][0])
            checks.check_events(rec, f"{path} (sample {i})", events)
            return checks.sort_by_time(f"{path} (sample {i})", events)

        return RealPool(labels, read_sample, {"path": str(path.resolve()), "n": len(labels)})
    order = np.argsort(np.asarray(ds.data, dtype=str), kind="stable")
    paths = [ds.data[i] for i in order]
    labels = np.asarray([ds.targets[i] for i in order], dtype=np.int64)
    if not paths:
        raise _missing(rec, str(Path(ds.location_on_system, ds.folder_name)))
    bad = np.flatnonzero((labels < 0) | (labels >= rec.num_classes))
    if len(bad):
        raise RecordingError(f"{paths[bad[0]]}: label {labels[bad[0]]} is not one of the "
                             f"{rec.num_classes} classes of dataset '{name}'")
    checks.check_label_lists(rec, base, pool, paths, labels)

    def read(i: int) -> np.ndarray:
        path = paths[i]
        checks.check_file(rec, path)
        try:
            raw = ds[int(order[i])][0]
        except RecordingError:
            raise
        except Exception as exc:  # the reader's own failure on this file, named
            raise RecordingError(f"{path}: {rec.reader} cannot read it: "
                                 f"{type(exc).__name__}: {exc}") from None
        events = _to_common(raw)
        checks.check_events(rec, path, events)
        return checks.sort_by_time(path, events)

    return RealPool(labels, read,
                    {"path": str(Path(ds.location_on_system).resolve()), "n": len(paths)}, paths)

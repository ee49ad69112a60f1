"""The real event datasets, read through tonic's own dataset classes.

tonic's classes download when their ``_check_exists`` fails, and that check wants the original
archive next to at least 1,000-10,000 extracted files. Here each class is subclassed (tonic's
documented extension point, no patching) so that:

* the check accepts any extracted copy in tonic's layout (the archive may be deleted);
* ``download`` raises :class:`~harness.errors.DatasetMissingError`, naming the path, the expected
  layout and how to get the data, unless the run asked for downloads (``dataset.download: true``).

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

from harness.data.dvs_sim import EVENT_DTYPE
from harness.errors import DatasetMissingError

__all__ = ["LAYOUTS", "RealPool", "data_root", "open_pool"]


def data_root(root: str | None) -> Path:
    """``dataset.root``, else ``$BSNN_DATA_DIR``, else ``~/.cache/bsnn-bench/data``."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get("BSNN_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "bsnn-bench" / "data"


#: What each dataset's folder must hold (under the data root), shown when it is missing.
LAYOUTS = {
    "nmnist": "NMNIST/Train/<digit folder ending in 0-9>/*.bin and NMNIST/Test/... "
              "(the extracted train.zip / test.zip of N-MNIST, 5-byte ATIS events)",
    "dvsgesture": "DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy and "
                  "DVSGesture/ibmGestureTest/... (tonic's preprocessed DVS128 Gesture archives)",
    "cifar10dvs": "CIFAR10DVS/<class name>/*.aedat4 for the ten classes airplane ... truck "
                  "(the extracted CIFAR10DVS.zip and its per-class zips)",
    "shd": "SHD/shd_train.h5 and SHD/shd_test.h5 (the unzipped Spiking Heidelberg Digits files)",
}

_SOURCES = {
    "nmnist": "https://www.garrickorchard.com/datasets/n-mnist",
    "dvsgesture": "https://research.ibm.com/interactive/dvsgesture/ (tonic's copy on figshare)",
    "cifar10dvs": "https://figshare.com/articles/dataset/CIFAR10-DVS_New/4724671",
    "shd": "https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/",
}


def _missing(name: str, location: str) -> DatasetMissingError:
    return DatasetMissingError(
        f"dataset '{name}' not found at {location}: expected {LAYOUTS[name]} under the data root "
        f"(dataset.root, $BSNN_DATA_DIR or ~/.cache/bsnn-bench/data). Get it from "
        f"{_SOURCES[name]}, or let tonic download it with dataset.download: true")


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
            raise _missing(self._bench_name, str(Path(self.location_on_system,
                                                      self.folder_name)))
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


_CLASSES: dict[str, type] = {"nmnist": NMNIST, "dvsgesture": DVSGesture,
                             "cifar10dvs": CIFAR10DVS, "shd": SHD}


@dataclasses.dataclass
class RealPool:
    """One tonic split (``train``/``test``; CIFAR10-DVS: ``all``) with labels and a reader."""

    labels: np.ndarray
    read: Callable[[int], np.ndarray]
    #: Identifies the files read, for the cache key (path and sample count).
    identity: dict

    @property
    def size(self) -> int:
        return len(self.labels)


def _to_common(events: np.ndarray) -> np.ndarray:
    out = np.zeros(len(events), dtype=EVENT_DTYPE)
    for name in ("x", "y", "t", "p"):
        if name in events.dtype.names:
            out[name] = events[name]
    # tonic's readers return time-sorted streams except for a few equal-time reorderings.
    if len(out) and np.any(np.diff(out["t"]) < 0):
        out = out[np.argsort(out["t"], kind="stable")]
    return out


def open_pool(name: str, pool: str, root: str | None, *, download: bool = False) -> RealPool:
    """Open one split of a real dataset; a missing dataset raises DatasetMissingError."""
    cls = _CLASSES[name]
    base = data_root(root)
    if name == "cifar10dvs":
        try:
            import aedat  # noqa: F401
        except ImportError:
            raise DatasetMissingError(
                "dataset 'cifar10dvs' needs the 'aedat' reader, which tonic does not install: "
                "pip install 'bsnn-bench[cifar10dvs]' (or pip install aedat)") from None
    if not download and not base.is_dir():
        raise _missing(name, str(base / cls.__name__))
    subclass = type(cls.__name__, (cls,), {"_bench_allow_download": download})
    kwargs = {} if name == "cifar10dvs" else {"train": pool == "train"}
    ds = subclass(str(base), **kwargs)
    if name == "shd":
        import h5py

        path = Path(ds.location_on_system, ds.data_filename)
        with h5py.File(path, "r") as fh:
            labels = np.asarray(fh["labels"][()], dtype=np.int64)
        return RealPool(labels, lambda i: _to_common(ds[i][0]),
                        {"path": str(path.resolve()), "n": len(labels)})
    order = np.argsort(np.asarray(ds.data, dtype=str), kind="stable")
    paths = [ds.data[i] for i in order]
    labels = np.asarray([ds.targets[i] for i in order], dtype=np.int64)
    if not paths:
        raise _missing(name, str(Path(ds.location_on_system, ds.folder_name)))

    def read(i: int) -> np.ndarray:
        return _to_common(ds[int(order[i])][0])

    return RealPool(labels, read,
                    {"path": str(Path(ds.location_on_system).resolve()), "n": len(paths)})

"""One declarative record per dataset: everything the pipeline, the readers and ``bsnn-bench
datasets`` need to know about it.

Adding a dataset is adding a :class:`DatasetRecord` to :data:`CATALOGUE` (and, for a new file
format, a reader class in :mod:`harness.data.real`); nothing else names datasets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.data import digits_dvs, synthetic_gestures

__all__ = ["CATALOGUE", "CIFAR10DVS_CLASSES", "DatasetRecord", "record"]

CIFAR10DVS_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                      "ship", "truck")


@dataclasses.dataclass(frozen=True)
class DatasetRecord:
    """A dataset as the project knows it.

    Attributes:
        name: ``dataset.name``.
        reader: what reads it (a tonic class or the embedded generator), for humans.
        source: where the data comes from (URL or the generating module).
        sensor_size: (W, H, P) of the recordings; every event is checked against it.
        num_classes: output classes.
        time_steps: default T (frames per sample).
        target_size: default (W, H) of the frames.
        split: the split rule, for humans (the rule itself is ``test_fraction`` + the pipeline).
        preprocessing: the default preprocessing, for humans.
        layout: what the data root must hold (real datasets); None: embedded.
        folder: the folder (or file) under the data root whose presence means "found".
        extension: the recordings' file extension (real datasets with one file per sample).
        class_folders: the allowed class folder names (real datasets labelled by folder).
        label_lists: optional ``<sample id> <label>`` list files beside the tree, per split:
            split -> (glob under the data root, id offset: file number = id - offset).
        tonic_class: the name of the reader class in :mod:`harness.data.real`.
        has_tonic_split: whether tonic's class takes ``train=`` (else one pool, ``all``).
        needs_module: a Python module the reader needs that tonic does not install.
        denoise_us: default ``Denoise`` filter time (None: the dataset has no such option).
        test_fraction: share of each class held out as test; None: the dataset's own split.
        generator: embedded datasets: (parameter class, generate, labels(params)).
    """

    name: str
    reader: str
    source: str
    sensor_size: tuple[int, int, int]
    num_classes: int
    time_steps: int
    target_size: tuple[int, int]
    split: str
    preprocessing: str
    layout: str | None = None
    folder: str | None = None
    extension: str | None = None
    class_folders: tuple[str, ...] | None = None
    label_lists: dict[str, tuple[str, int]] | None = None
    tonic_class: str | None = None
    has_tonic_split: bool = True
    needs_module: str | None = None
    denoise_us: float | None = None
    test_fraction: float | None = None
    generator: tuple[type, Callable[..., list[np.ndarray]], Callable[[Any], np.ndarray]] | None \
        = None

    @property
    def embedded(self) -> bool:
        return self.generator is not None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The default network input (P, H, W) or (channels,) for 1-D sensors."""
        w, h = self.target_size
        p = self.sensor_size[2]
        return (w,) if h == 1 and p == 1 else (p, h, w)

    def found(self, root: Path) -> bool:
        """Whether the data root holds this dataset (embedded: always)."""
        if self.embedded:
            return True
        assert self.folder is not None
        path = root / self.folder
        if self.extension is None:
            return path.is_file()
        return path.is_dir() and next(path.glob(f"**/*{self.extension}"), None) is not None


_DIGITS = tuple(str(d) for d in range(10))

CATALOGUE: dict[str, DatasetRecord] = {r.name: r for r in (
    DatasetRecord(
        "digits-dvs", reader="embedded generator (simulated DVS)",
        source="harness.data.digits_dvs: scikit-learn's 1,797 digits moved in N-MNIST's saccades",
        sensor_size=(34, 34, 2), num_classes=10, time_steps=6, target_size=(17, 17),
        split="stratified 15 % test, then dataset.val_fraction of train (seed 0)",
        preprocessing="tonic Downsample 34->17 (sum pooling), ToFrame counts",
        test_fraction=0.15,
        generator=(digits_dvs.DigitsDVSParams, digits_dvs.generate,
                   lambda params: digits_dvs.labels())),
    DatasetRecord(
        "synthetic-gestures", reader="embedded generator (simulated DVS)",
        source="harness.data.synthetic_gestures: 8 motion classes",
        sensor_size=(34, 34, 2), num_classes=len(synthetic_gestures.CLASSES), time_steps=10,
        target_size=(17, 17),
        split="stratified 15 % test, then dataset.val_fraction of train (seed 0)",
        preprocessing="tonic Downsample 34->17 (sum pooling), ToFrame counts",
        test_fraction=0.15,
        generator=(synthetic_gestures.SyntheticGesturesParams, synthetic_gestures.generate,
                   synthetic_gestures.labels)),
    DatasetRecord(
        "nmnist", reader="tonic.datasets.NMNIST (5-byte ATIS events)",
        source="https://www.garrickorchard.com/datasets/n-mnist",
        sensor_size=(34, 34, 2), num_classes=10, time_steps=18, target_size=(34, 34),
        split="tonic's Train/Test; dataset.val_fraction of each class of Train (seed 0)",
        preprocessing="tonic Denoise(10 ms) (He et al.'s code), ToFrame counts at 34x34",
        layout="NMNIST/Train/<digit 0-9>/*.bin and NMNIST/Test/<digit 0-9>/*.bin (the extracted "
               "train.zip / test.zip of N-MNIST, 5-byte ATIS events; a partial tree is fine); "
               "optional train*.txt / test*.txt lists of '<sample id> <label>' beside NMNIST/ "
               "(test ids are 60000 + file number) must agree with the folders",
        folder="NMNIST/Train", extension=".bin", class_folders=_DIGITS,
        label_lists={"train": ("train*.txt", 0), "test": ("test*.txt", 60000)},
        tonic_class="NMNIST", denoise_us=10_000.0),
    DatasetRecord(
        "dvsgesture", reader="tonic.datasets.DVSGesture (tonic's preprocessed .npy)",
        source="https://research.ibm.com/interactive/dvsgesture/ (tonic's copy on figshare)",
        sensor_size=(128, 128, 2), num_classes=11, time_steps=25, target_size=(32, 32),
        split="tonic's train (users 1-23) / test (24-29); dataset.val_fraction of train",
        preprocessing="tonic Downsample 128->32 (sum pooling), ToFrame counts",
        layout="DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy and "
               "DVSGesture/ibmGestureTest/... (tonic's preprocessed DVS128 Gesture archives)",
        folder="DVSGesture/ibmGestureTrain", extension=".npy", tonic_class="DVSGesture"),
    DatasetRecord(
        "cifar10dvs", reader="tonic.datasets.CIFAR10DVS over the 'aedat' package (AEDAT4)",
        source="https://figshare.com/articles/dataset/CIFAR10-DVS_New/4724671",
        sensor_size=(128, 128, 2), num_classes=10, time_steps=10, target_size=(48, 48),
        split="10 % of each class as test (dataset.options.split: seeded | file-order), then "
              "dataset.val_fraction of train",
        preprocessing="tonic Downsample 128->48 (sum pooling), ToFrame counts; "
                      "dataset.options.resize: bilinear for He et al.'s bilinear resize",
        layout="CIFAR10DVS/<class name>/*.aedat4 for the ten classes airplane ... truck "
               "(the extracted CIFAR10DVS.zip and its per-class zips)",
        folder="CIFAR10DVS", extension=".aedat4", class_folders=CIFAR10DVS_CLASSES,
        tonic_class="CIFAR10DVS", has_tonic_split=False, needs_module="aedat",
        test_fraction=0.10),
    DatasetRecord(
        "shd", reader="tonic.datasets.SHD (HDF5 spike times)",
        source="https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/",
        sensor_size=(700, 1, 1), num_classes=20, time_steps=50, target_size=(700, 1),
        split="the files' train / test; dataset.val_fraction of train",
        preprocessing="ToFrame counts per channel, T=50 bins of ~20 ms",
        layout="SHD/shd_train.h5 and SHD/shd_test.h5 (the unzipped Spiking Heidelberg Digits "
               "files)",
        folder="SHD/shd_train.h5", tonic_class="SHD"),
)}


def record(name: str) -> DatasetRecord:
    """The record of ``name``; raises ConfigError naming the known ones."""
    from harness.errors import ConfigError

    if name not in CATALOGUE:
        raise ConfigError(f"unknown dataset.name '{name}' (known: {', '.join(CATALOGUE)})")
    return CATALOGUE[name]

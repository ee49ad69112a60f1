"""The data of one run: ``build_data(cfg) -> DataBundle`` (see docs/architecture.md).

Datasets (``dataset.name``):

================== ========== ===== ================ ===============================================
name               sensor     T     input            notes
================== ========== ===== ================ ===============================================
digits-dvs         34x34x2    6     2x17x17          embedded: sklearn digits, simulated saccades
synthetic-gestures 34x34x2    10    2x17x17          embedded: 8 motion classes (see its module)
nmnist             34x34x2    18    2x34x34          tonic; Denoise(10 ms) first (He et al.'s code)
dvsgesture         128x128x2  25    2x32x32          tonic; 11 classes
cifar10dvs         128x128x2  10    2x48x48          tonic + ``aedat``; seeded 90/10 per-class split
shd                700x1x1    50    700              tonic; audio channels, ~20 ms bins (see below)
================== ========== ===== ================ ===============================================

SHD: recordings last about 1 s and spoken digits change on the 10-50 ms scale of formants;
T=50 bins of ~20 ms keep that while a run costs half of Cramer et al.'s 100 x 10 ms.

Splits are fixed (seed :data:`SPLIT_SEED`, never the run's seed): embedded datasets hold out a
stratified 15 % test split; CIFAR10-DVS 10 % of each class; the others use tonic's test split.
Validation is a per-class ``dataset.val_fraction`` of the training data. Each split is stored in a
fixed shuffled order, so ``dataset.limit`` (the first N of each split) keeps every class.

Frames are event counts (tonic ``ToFrame``), stored as uint8 (clipped at 255) and fed as float
counts, not clipped to 1: the first layer is full precision in every binarization level, and
counts carry how much changed, which binary frames discard. Spatial downsampling is tonic's
``Downsample`` on events, which is sum pooling of the frames.

Where things live: real datasets under ``dataset.root``, else ``$BSNN_DATA_DIR``, else
``~/.cache/bsnn-bench/data`` (layouts in :data:`harness.data.real.LAYOUTS`); generated events
and frames under ``$BSNN_CACHE_DIR``, else ``~/.cache/bsnn-bench`` (safe to delete).

``dataset.options`` (all optional): embedded datasets take their generator parameters
(``samples_per_class``, ``seed``, ... and ``sensor: {threshold_on: ..., shot_noise_hz: ...}``);
``nmnist`` takes ``denoise_us`` (null: off).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from harness.config import RunConfig, _build, _plain
from harness.data import cache, digits_dvs, real, synthetic_gestures
from harness.data.dvs_sim import EVENT_DTYPE
from harness.data.frames import Preprocess, fast_frames, to_frames
from harness.data.loaders import FrameLoader
from harness.errors import ConfigError
from tricks._registry import _coerce
from tricks.augmentation import Augmentation

__all__ = ["DATASETS", "DataBundle", "DatasetSpec", "SPLIT_SEED", "build_data", "check_dataset"]

#: Seed of every train/val/test split (fixed: runs with different seeds see the same splits).
SPLIT_SEED = 0


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Per-dataset defaults."""

    name: str
    sensor_size: tuple[int, int, int]
    num_classes: int
    time_steps: int
    target_size: tuple[int, int]
    #: Default ``Denoise`` filter time (the one dataset option of a real dataset that has it).
    denoise_us: float | None = None
    embedded: bool = False
    #: Share of each class held out as the test split; None: the dataset's own test split.
    test_fraction: float | None = None


DATASETS: dict[str, DatasetSpec] = {s.name: s for s in (
    DatasetSpec("digits-dvs", (34, 34, 2), 10, 6, (17, 17), embedded=True, test_fraction=0.15),
    DatasetSpec("synthetic-gestures", (34, 34, 2), len(synthetic_gestures.CLASSES), 10, (17, 17),
                embedded=True, test_fraction=0.15),
    DatasetSpec("nmnist", (34, 34, 2), 10, 18, (34, 34), denoise_us=10_000.0),
    DatasetSpec("dvsgesture", (128, 128, 2), 11, 25, (32, 32)),
    DatasetSpec("cifar10dvs", (128, 128, 2), 10, 10, (48, 48), test_fraction=0.10),
    DatasetSpec("shd", (700, 1, 1), 20, 50, (700, 1)),
)}


@dataclasses.dataclass
class DataBundle:
    train: FrameLoader
    val: FrameLoader
    test: FrameLoader
    input_shape: tuple[int, ...]
    num_classes: int
    time_steps: int
    name: str


def _spec(cfg: RunConfig) -> DatasetSpec:
    name = cfg.dataset.name
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset.name '{name}' (known: {', '.join(DATASETS)})")
    return DATASETS[name]


def _per_class_split(labels: np.ndarray, fraction: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, held) with round(fraction * count) of each class held out; both shuffled."""
    held, rest = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(fraction * len(idx)))
        held.append(idx[:k])
        rest.append(idx[k:])
    held_a = rng.permutation(np.concatenate(held)) if held else np.zeros(0, np.int64)
    rest_a = rng.permutation(np.concatenate(rest)) if rest else np.zeros(0, np.int64)
    return rest_a.astype(np.int64), held_a.astype(np.int64)


@dataclasses.dataclass
class _Pool:
    labels: np.ndarray
    #: Raw events of the given sample indices.
    read_many: Callable[[np.ndarray], list[np.ndarray]]
    identity: dict


#: The embedded datasets' generators: name -> (parameter class, generate, labels(params)).
_GENERATORS: dict[str, tuple[type, Callable[..., list[np.ndarray]],
                             Callable[[Any], np.ndarray]]] = {
    "digits-dvs": (digits_dvs.DigitsDVSParams, digits_dvs.generate,
                   lambda params: digits_dvs.labels()),
    "synthetic-gestures": (synthetic_gestures.SyntheticGesturesParams,
                           synthetic_gestures.generate, synthetic_gestures.labels),
}


class _Source:
    """Where a dataset's samples come from and how they are split."""

    def __init__(self, cfg: RunConfig, spec: DatasetSpec) -> None:
        self.cfg = cfg
        self.spec = spec
        self.options = dict(cfg.dataset.options)
        self._pools: dict[str, _Pool] = {}
        if spec.embedded:
            cls, self._generate, self._labels = _GENERATORS[spec.name]
            self.params = _build(cls, self.options, "dataset.options")
            self.denoise_us = None
        else:
            unknown = sorted(set(self.options) - ({"denoise_us"} if spec.denoise_us is not None
                                                  else set()))
            if unknown:
                raise ConfigError(f"unknown key 'dataset.options.{unknown[0]}' for dataset "
                                  f"'{spec.name}'")
            self.params = None
            self.denoise_us = self.options.get("denoise_us", spec.denoise_us)
            if self.denoise_us is not None:
                ok, self.denoise_us = _coerce(float, self.denoise_us)
                if not ok or self.denoise_us <= 0:
                    raise ConfigError("'dataset.options.denoise_us' must be a number > 0 or null")

    @property
    def sensor_size(self) -> tuple[int, int, int]:
        if self.params is not None:
            return self.params.sensor.sensor_size
        return self.spec.sensor_size

    def pool(self, name: str) -> _Pool:
        if name not in self._pools:
            self._pools[name] = self._open(name)
        return self._pools[name]

    def _open(self, name: str) -> _Pool:
        if self.params is not None:
            key = _plain(self.params)
            gen = self._generate
            params = self.params
            name_ = self.spec.name

            def read_many(indices: np.ndarray) -> list[np.ndarray]:
                # Only the samples a run uses are generated (a tiny `limit` run is fast); each
                # sample is the same recording whichever subset it is generated in.
                arrays = cache.load_or_build(
                    "events", f"{name_}-generated",
                    {"dataset": name_, "generator": key, "indices": _digest(indices)},
                    lambda: cache.pack_events(gen(params, indices)))
                return cache.unpack_events(arrays, EVENT_DTYPE)

            return _Pool(self._labels(params), read_many, {"generator": key})
        ds = self.cfg.dataset
        pool = real.open_pool(self.spec.name, name, ds.root, download=ds.download)
        return _Pool(pool.labels, lambda idx: [pool.read(int(i)) for i in idx], pool.identity)

    def plan(self) -> dict[str, tuple[str, np.ndarray]]:
        """split -> (pool name, indices into it), deterministic."""
        rng = np.random.default_rng(SPLIT_SEED)
        val_fraction = self.cfg.dataset.val_fraction
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"'dataset.val_fraction' must be in [0, 1), got {val_fraction}")
        if self.spec.test_fraction is not None:
            pool = "all"
            rest, test = _per_class_split(self.pool(pool).labels, self.spec.test_fraction, rng)
            labels = self.pool(pool).labels[rest]
            train_pos, val_pos = _per_class_split(labels, val_fraction, rng)
            return {"train": (pool, rest[train_pos]), "val": (pool, rest[val_pos]),
                    "test": (pool, test)}
        train_pos, val_pos = _per_class_split(self.pool("train").labels, val_fraction, rng)
        test = rng.permutation(len(self.pool("test").labels)).astype(np.int64)
        return {"train": ("train", train_pos), "val": ("train", val_pos),
                "test": ("test", test)}


def _resolve_sizes(cfg: RunConfig, spec: DatasetSpec, sensor: tuple[int, int, int]
                   ) -> tuple[int, tuple[int, int]]:
    steps = cfg.dataset.time_steps or spec.time_steps
    if steps < 1:
        raise ConfigError(f"'dataset.time_steps' must be >= 1, got {steps}")
    factor = cfg.dataset.downsample
    if factor is None:
        if spec.embedded:
            target = (max(1, sensor[0] * spec.target_size[0] // spec.sensor_size[0]),
                      max(1, sensor[1] * spec.target_size[1] // spec.sensor_size[1]))
        else:
            target = spec.target_size
    else:
        if factor < 1:
            raise ConfigError(f"'dataset.downsample' must be >= 1, got {factor}")
        target = (max(1, sensor[0] // factor), max(1, sensor[1] // factor))
    return steps, target


def _input_shape(sensor: tuple[int, int, int]) -> tuple[int, ...]:
    w, h, p = sensor
    return (w,) if h == 1 and p == 1 else (p, h, w)


def check_dataset(cfg: RunConfig) -> None:
    """Fail now (DatasetMissingError / ConfigError) if ``cfg``'s dataset cannot be loaded."""
    spec = _spec(cfg)
    source = _Source(cfg, spec)
    _resolve_sizes(cfg, spec, source.sensor_size)
    if not spec.embedded:
        source.plan()  # opens (and so checks) every pool the splits come from


def build_data(cfg: RunConfig) -> DataBundle:
    """Loaders of the train/val/test splits of ``cfg.dataset``, frames from the on-disk cache."""
    spec = _spec(cfg)
    aug = cfg.level("augmentation")
    if not isinstance(aug, Augmentation):
        raise ConfigError(f"factors.augmentation: {aug.label()} is not an augmentation level")
    source = _Source(cfg, spec)
    sensor = source.sensor_size
    steps, target = _resolve_sizes(cfg, spec, sensor)
    prep = Preprocess(sensor_size=sensor, target_size=target, denoise_us=source.denoise_us)
    out_sensor = prep.out_sensor_size
    input_shape = _input_shape(out_sensor)
    if aug.spatial and len(input_shape) != 3:
        raise ConfigError(f"factors.augmentation: {aug.label()} needs image frames, but "
                          f"'{spec.name}' has 1-D input {input_shape}")
    plan = source.plan()
    limit = cfg.dataset.limit
    if limit is not None and limit < 1:
        raise ConfigError(f"'dataset.limit' must be >= 1, got {limit}")
    loaders: dict[str, FrameLoader] = {}
    for split, (pool_name, indices) in plan.items():
        if limit is not None:
            indices = indices[:limit]
        pool = source.pool(pool_name)
        base = {"dataset": spec.name, "split": split, "source": pool.identity,
                "indices": _digest(indices), "preprocess": _plain(prep)}
        want_events = split == "train" and aug.needs_events

        def preprocessed(pool: _Pool = pool, indices: np.ndarray = indices) -> list[np.ndarray]:
            return [prep(e) for e in pool.read_many(indices)]

        events = None
        if want_events:
            arrays = cache.load_or_build("events", f"{spec.name}-{split}", base,
                                         lambda f=preprocessed: cache.pack_events(f()))
            events = cache.unpack_events(arrays, EVENT_DTYPE)

        def build(events: list[np.ndarray] | None = events,
                  f: Callable[[], list[np.ndarray]] = preprocessed) -> dict[str, np.ndarray]:
            evs = events if events is not None else f()
            frames = np.stack([to_frames(e, out_sensor, steps) for e in evs]) if evs else \
                np.zeros((0, steps, out_sensor[2], out_sensor[1], out_sensor[0]))
            return {"frames": np.clip(frames, 0, 255).astype(np.uint8)}

        arrays = cache.load_or_build("frames", f"{spec.name}-{split}",
                                     {**base, "time_steps": steps}, build)
        frames = torch.from_numpy(arrays["frames"]).reshape(len(indices), steps, *input_shape)
        labels = torch.from_numpy(pool.labels[indices].astype(np.int64))
        train = split == "train"

        def reframe(evs: list[np.ndarray]) -> np.ndarray:
            return fast_frames(evs, out_sensor, steps).reshape(len(evs), steps, *input_shape)

        loaders[split] = FrameLoader(
            frames, labels, batch_size=cfg.train.batch_size, shuffle=train,
            seed=cfg.train.seed, augmentation=aug if train and aug.stage != "none" else None,
            events=events, reframe=reframe if train else None,
            sensor_size=out_sensor if train else None,
            stream=_placebo_stream(cfg) if train else 0)
    return DataBundle(train=loaders["train"], val=loaders["val"], test=loaders["test"],
                      input_shape=input_shape, num_classes=spec.num_classes, time_steps=steps,
                      name=spec.name)


def _placebo_stream(cfg: RunConfig) -> int:
    """The placebo level's generator stream (tricks/placebo.py): the data order only."""
    return int(getattr(cfg.level("placebo"), "stream", 0)) if "placebo" in cfg.factors else 0


def _digest(indices: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(indices, dtype=np.int64).tobytes()).hexdigest()


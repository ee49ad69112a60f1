"""The data of one run: ``build_data(cfg) -> DataBundle`` (see docs/architecture.md).

Datasets (``dataset.name``): one record each in :mod:`harness.data.catalogue` (sensor, default
T and input, reader, layout, split rule, default preprocessing); ``bsnn-bench datasets`` lists them
and whether each is found on this machine.

SHD: recordings last about 1 s and spoken digits change on the 10-50 ms scale of formants;
T=50 bins of ~20 ms keep that while a run costs half of Cramer et al.'s 100 x 10 ms.

Splits are fixed (seed :data:`SPLIT_SEED`, never the run's seed): embedded datasets hold out a
stratified 15 % test split; CIFAR10-DVS 10 % of each class; the others use tonic's test split.
Validation is a per-class ``dataset.val_fraction`` of the training data. Each split is stored in a
fixed shuffled order, so ``dataset.limit`` (the first N of each split) keeps every class.

Frames are event counts (tonic ``ToFrame``), stored as uint8 (clipped at 255) and fed as float
counts, not clipped to 1: counts carry how much changed, which binary frames discard. Spatial
downsampling is tonic's ``Downsample`` on events, which is sum pooling of the frames, unless
``dataset.options.resize: bilinear`` (He et al.'s resize of CIFAR10-DVS and DVS Gesture frames).
Every real recording is checked against its dataset's sensor size before it reaches tonic's
kernels (:mod:`harness.data.checks`).

Where things live: real datasets under ``dataset.root``, else ``$BSNN_DATA_DIR``, else
``~/.cache/bsnn-bench/data`` (layouts in :mod:`harness.data.catalogue`); generated events
and frames under ``$BSNN_CACHE_DIR``, else ``~/.cache/bsnn-bench`` (safe to delete).

``dataset.options`` (all optional): embedded datasets take their generator parameters
(``samples_per_class``, ``seed``, ... and ``sensor: {threshold_on: ..., shot_noise_hz: ...}``);
real datasets take ``denoise_us``, ``resize``, ``normalize`` and ``split`` where they apply
(:mod:`harness.data.options`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

from harness.config import RunConfig, build_dataclass, plain_data
from harness.data import cache, memo
from harness.data.catalogue import CATALOGUE, DatasetRecord, record
from harness.data.dvs_sim import EVENT_DTYPE
from harness.data.frames import Preprocess, fast_frames
from harness.data.loaders import FrameLoader
from harness.data.options import RealOptions, parse_real_options
from harness.data.splits import file_order_split
from harness.errors import ConfigError
from tricks.augmentation import Augmentation

__all__ = ["DATASETS", "DataBundle", "DatasetSpec", "SPLIT_SEED", "build_data", "check_dataset"]

#: Seed of every train/val/test split (fixed: runs with different seeds see the same splits).
SPLIT_SEED = 0


#: The datasets (one record each, :mod:`harness.data.catalogue`), by ``dataset.name``.
DATASETS = CATALOGUE
DatasetSpec = DatasetRecord


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
    return record(cfg.dataset.name)


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
    #: The recordings' paths (real datasets with one file per sample), in pool order.
    paths: list[str] | None = None


class _Source:
    """Where a dataset's samples come from and how they are split."""

    def __init__(self, cfg: RunConfig, spec: DatasetSpec) -> None:
        self.cfg = cfg
        self.spec = spec
        self.options = dict(cfg.dataset.options)
        self._pools: dict[str, _Pool] = {}
        if spec.embedded:
            assert spec.generator is not None
            cls, self._generate, self._labels = spec.generator
            self.params = build_dataclass(cls, self.options, "dataset.options")
            self.real_options = RealOptions()
            self.denoise_us = None
        else:
            self.params = None
            self.real_options = parse_real_options(spec, self.options)
            self.denoise_us = self.real_options.denoise_us

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
            key = plain_data(self.params)
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
        from harness.data import real  # tonic's readers: a second to import, only when used

        pool = real.open_pool(self.spec.name, name, ds.root, download=ds.download)
        return _Pool(pool.labels, lambda idx: [pool.read(int(i)) for i in idx], pool.identity,
                     pool.paths)

    def plan(self) -> dict[str, tuple[str, np.ndarray]]:
        """split -> (pool name, indices into it), deterministic."""
        rng = np.random.default_rng(SPLIT_SEED)
        val_fraction = self.cfg.dataset.val_fraction
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"'dataset.val_fraction' must be in [0, 1), got {val_fraction}")
        if self.spec.test_fraction is not None:
            pool = "all"
            if self.real_options.split == "file-order":
                rest, test = file_order_split(self.pool(pool).labels, self.pool(pool).paths,
                                              self.spec.test_fraction)
            else:
                rest, test = _per_class_split(self.pool(pool).labels, self.spec.test_fraction,
                                              rng)
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
    options = source.real_options
    prep = Preprocess(sensor_size=sensor, target_size=target, denoise_us=source.denoise_us,
                      resize=options.resize, normalize=options.normalize)
    if options.resize == "bilinear" and aug.needs_events:
        raise ConfigError(f"factors.augmentation: {aug.label()} acts on events, but "
                          f"dataset.options.resize: bilinear makes real-valued frames; use a "
                          f"frame-level augmentation (random-crop, flip-lr) or resize: sum")
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
                "indices": _digest(indices), "preprocess": plain_data(prep)}
        want_events = split == "train" and aug.needs_events

        def preprocessed(pool: _Pool = pool, indices: np.ndarray = indices) -> list[np.ndarray]:
            return [prep(e) for e in pool.read_many(indices)]

        events = None
        if want_events:
            arrays = memo.load_or_build("events", f"{spec.name}-{split}", base,
                                        lambda f=preprocessed: cache.pack_events(f()))
            events = cache.unpack_events(arrays, EVENT_DTYPE)

        def build(events: list[np.ndarray] | None = events,
                  f: Callable[[], list[np.ndarray]] = preprocessed) -> dict[str, np.ndarray]:
            evs = events if events is not None else f()
            return {"frames": prep.frames(evs, steps)}

        arrays = memo.load_or_build("frames", f"{spec.name}-{split}",
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


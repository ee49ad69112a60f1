"""The configuration of one run: dataset, model, training parameters, one level per factor, a seed.

A :class:`RunConfig` is built from a plain mapping (YAML, JSON, ``--set`` overrides) by
:meth:`RunConfig.from_dict`, which rejects unknown keys and bad types with a message naming the
key path. ``to_dict`` gives back the same mapping with every default filled in: that is what the
results database stores, and ``from_dict(to_dict(c)) == c``.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, Literal

import yaml

import tricks
from harness.errors import ConfigError
from tricks._registry import Level, TrickError, _coerce, _type_name

__all__ = [
    "DatasetConfig",
    "ModelConfig",
    "NeuronConfig",
    "RunConfig",
    "TrainConfig",
    "apply_overrides",
    "load_config_file",
]


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    #: digits-dvs | synthetic-gestures | nmnist | dvsgesture | cifar10dvs | shd
    name: str = "digits-dvs"
    #: Number of frames T the event stream is binned into (tonic ToFrame n_time_bins).
    #: None: the dataset's own default (digits-dvs 8, N-MNIST 18, DVS Gesture 25, ...).
    time_steps: int | None = None
    #: Spatial downsampling factor applied before framing; None: the dataset's default.
    downsample: int | None = None
    #: Where real datasets live; None: $BSNN_DATA_DIR or ~/.cache/bsnn-bench/data.
    root: str | None = None
    download: bool = False
    #: Fraction of the training split held out for validation (fixed seed).
    val_fraction: float = 0.15
    #: Cap on samples per split (tiny test runs); None: all.
    limit: int | None = None
    #: Extra dataset-specific generator / reader parameters.
    options: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class NeuronConfig:
    beta: float = 0.9
    threshold: float = 1.0
    reset: Literal["subtract", "zero"] = "subtract"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    arch: Literal["conv", "mlp"] = "conv"
    #: Conv channels per block (conv) — the paper-sized net is (64, 128).
    channels: tuple[int, ...] = (16, 32)
    #: Hidden fully connected width (both archs) — the paper-sized net uses 256.
    hidden: int = 128
    kernel_size: int = 3
    pool: Literal["max", "avg"] = "max"
    #: Where normalization and neuron sit around pooling in a conv block.
    block_order: Literal[
        "conv-norm-neuron-pool", "conv-norm-pool-neuron", "conv-pool-norm-neuron",
        "conv-norm-neuron-pool-norm-neuron"
    ] = "conv-norm-neuron-pool"
    #: Conv padding: "same" (kernel_size // 2, H and W kept) or "valid" (none, He et al.'s code).
    padding: Literal["same", "valid"] = "same"
    #: A normalization layer between the last FC layer and its neuron (He et al.'s output block).
    output_norm: bool = False
    neuron: NeuronConfig = dataclasses.field(default_factory=NeuronConfig)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    epochs: int = 4
    batch_size: int = 64
    lr: float = 1.0e-3
    seed: int = 0
    weight_decay: float = 0.0
    #: Whether weight decay also pulls latent binary weights towards 0 (it flips signs).
    weight_decay_binary: bool = True
    #: Gradient-norm clipping (max L2 norm); None: off.
    grad_clip: float | None = None
    bn_momentum: float = 0.1
    #: torch threads for this run; None: leave torch's setting.
    num_threads: int | None = None
    #: Lightning accelerator: auto | cpu | gpu | mps.
    accelerator: str = "auto"
    #: A run whose training loss exceeds this (or is NaN/inf) is stopped as diverged.
    divergence_loss: float = 1.0e6


_SECTIONS = {"dataset": DatasetConfig, "model": ModelConfig, "train": TrainConfig}


def _build(cls: type, data: Any, path: str) -> Any:
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"'{path}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key '{path}.{unknown[0]}' (expected one of: "
                          f"{', '.join(fields)})")
    kwargs = {}
    for key, value in data.items():
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{path}.{key}")
            continue
        if tp is dict:
            if not isinstance(value, Mapping):
                raise ConfigError(f"'{path}.{key}' must be a mapping, got {value!r}")
            kwargs[key] = dict(value)
            continue
        ok, coerced = _coerce(tp, value)
        if not ok:
            raise ConfigError(f"'{path}.{key}' expected {_type_name(tp)}, got {value!r}")
        kwargs[key] = coerced
    try:
        return cls(**kwargs)
    except ValueError as exc:  # a dataclass's own range checks (dataset generator options)
        raise ConfigError(f"{path}: {exc}") from None


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


@dataclasses.dataclass(frozen=True)
class RunConfig:
    dataset: DatasetConfig = dataclasses.field(default_factory=DatasetConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    #: One level per factor; factors not named take their default level.
    factors: Mapping[str, Level] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        # Default levels only for the factors not given (building one validates its fields).
        full = {f: self.factors[f] if f in self.factors else tricks.default_level(f)
                for f in tricks.registry()}
        full.update(self.factors)
        object.__setattr__(self, "factors", full)

    def level(self, factor: str) -> Level:
        return self.factors[factor]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RunConfig:
        data = dict(data or {})
        unknown = sorted(set(data) - {*_SECTIONS, "factors"})
        if unknown:
            raise ConfigError(f"unknown section '{unknown[0]}' (expected: dataset, model, "
                              f"train, factors)")
        kwargs: dict[str, Any] = {
            name: _build(sec, data.get(name) or {}, name) for name, sec in _SECTIONS.items()
        }
        raw_factors = data.get("factors") or {}
        if not isinstance(raw_factors, Mapping):
            raise ConfigError(f"'factors' must be a mapping of factor to level, got "
                              f"{raw_factors!r}")
        factors = {}
        for factor, spec in raw_factors.items():
            try:
                factors[factor] = tricks.make(factor, spec)
            except TrickError as exc:
                raise ConfigError(f"factors.{factor}: {exc}") from None
        kwargs["factors"] = factors
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        out = {name: _plain(getattr(self, name)) for name in _SECTIONS}
        out["factors"] = {f: lvl.to_dict() for f, lvl in self.factors.items()}
        return out

    def labels(self) -> dict[str, str]:
        """Canonical label per factor, as stored in ``bench_run_factors``."""
        return {f: lvl.label() for f, lvl in self.factors.items()}

    def with_path(self, path: str, value: Any) -> RunConfig:
        """A copy with one dotted path set (``train.lr``, ``factors.optimizer``, ...)."""
        return RunConfig.from_dict(set_path(self.to_dict(), path, value))


def set_path(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    keys = path.split(".")
    if len(keys) < 2:
        raise ConfigError(f"'{path}' is not a dotted path like train.lr")
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set '{path}': '{key}' is not a section")
        node = child
    node[keys[-1]] = value
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides; the value is parsed as YAML (``train.lr=1e-3``)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got '{item}'")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {key}: cannot parse value '{raw}': {exc}") from None
        if isinstance(value, str):
            # YAML does not read 1e-3 as a float; numbers with an exponent should be numbers.
            try:
                value = float(value) if any(c in value for c in "eE") else value
            except ValueError:
                pass
        data = set_path(data, key.strip(), value)
    return data


def load_config_file(path: str) -> dict[str, Any]:
    from harness.yamlio import load_yaml

    data = load_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a run configuration must be a mapping")
    return data

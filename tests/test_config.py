"""Run configuration: defaults, validation messages, overrides, round trip."""

from __future__ import annotations

import pytest

from harness.config import RunConfig, apply_overrides
from harness.errors import ConfigError


def test_defaults_fill_every_factor_and_round_trip() -> None:
    cfg = RunConfig()
    assert set(cfg.factors) >= {"binarization", "optimizer", "surrogate", "loss"}
    again = RunConfig.from_dict(cfg.to_dict())
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()


def test_unknown_key_is_named_with_its_path() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'train\.epochz'"):
        RunConfig.from_dict({"train": {"epochz": 3}})
    with pytest.raises(ConfigError, match=r"unknown key 'model\.neuron\.tau'"):
        RunConfig.from_dict({"model": {"neuron": {"tau": 3}}})
    with pytest.raises(ConfigError, match="unknown section 'trian'"):
        RunConfig.from_dict({"trian": {}})


def test_bad_types_are_named() -> None:
    with pytest.raises(ConfigError, match=r"'train\.epochs' expected int, got 'six'"):
        RunConfig.from_dict({"train": {"epochs": "six"}})
    with pytest.raises(ConfigError, match=r"'model\.pool' expected 'max' \| 'avg'"):
        RunConfig.from_dict({"model": {"pool": "min"}})
    with pytest.raises(ConfigError, match=r"factors\.optimizer: unknown optimizer level"):
        RunConfig.from_dict({"factors": {"optimizer": "adamw2"}})


def test_overrides_parse_values_as_yaml() -> None:
    data = apply_overrides({}, ["train.lr=1e-2", "train.epochs=2", "model.channels=[8, 16]",
                               "factors.optimizer={name: hybrid, switch_at: 0.25}"])
    cfg = RunConfig.from_dict(data)
    assert cfg.train.lr == pytest.approx(0.01) and cfg.train.epochs == 2
    assert cfg.model.channels == (8, 16)
    assert cfg.level("optimizer").label().startswith("hybrid(")
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["train.lr"])


def test_with_path_and_labels() -> None:
    cfg = RunConfig().with_path("dataset.time_steps", 12)
    assert cfg.dataset.time_steps == 12
    assert cfg.labels()["binarization"] == cfg.level("binarization").label()

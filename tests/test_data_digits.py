"""digits-dvs through build_data: shapes, splits, determinism, per-epoch shuffling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.config import RunConfig
from harness.data.digits_dvs import DigitsDVSParams, generate, labels
from harness.data.pipeline import DATASETS, build_data
from harness.errors import ConfigError

TINY = {"dataset": {"name": "digits-dvs", "limit": 24}, "train": {"batch_size": 8, "seed": 3}}


@pytest.fixture(scope="module")
def bundle():
    return build_data(RunConfig.from_dict(TINY))


def test_shapes_and_types(bundle) -> None:
    assert bundle.input_shape == (2, 17, 17) and bundle.time_steps == 6
    assert bundle.num_classes == 10 and bundle.name == "digits-dvs"
    assert len(bundle.train) == 3  # 24 // 8
    batches = list(bundle.train)
    assert len(batches) == 3
    x, y = batches[0]
    assert x.shape == (6, 8, 2, 17, 17) and x.dtype == torch.float32
    assert y.shape == (8,) and y.dtype == torch.int64
    assert x.sum() > 0 and torch.all(x == x.round()) and x.min() >= 0
    # Time-major: sample b of the batch is frames[idx[b]] along T.
    assert len(list(bundle.test)) == 3 and bundle.test.num_samples == 24


def test_train_reshuffles_per_epoch_deterministically(bundle) -> None:
    def epoch_labels(loader):
        return torch.cat([y for _, y in loader]).tolist()

    loader = bundle.train
    loader.set_epoch(0)
    e0, e1 = epoch_labels(loader), epoch_labels(loader)
    assert sorted(e0) == sorted(e1) and e0 != e1
    again = build_data(RunConfig.from_dict(TINY)).train
    assert epoch_labels(again) == e0 and epoch_labels(again) == e1
    other = build_data(RunConfig.from_dict({**TINY, "train": {"batch_size": 8, "seed": 4}}))
    assert epoch_labels(other.train) != e0
    # Evaluation order never changes.
    assert epoch_labels(bundle.test) == epoch_labels(bundle.test)


def test_splits_are_fixed_disjoint_and_stratified() -> None:
    data = build_data(RunConfig.from_dict({"dataset": {"name": "digits-dvs", "limit": 5},
                                           "train": {"seed": 9}}))
    ref = build_data(RunConfig.from_dict({"dataset": {"name": "digits-dvs", "limit": 5}}))
    for split in ("train", "val", "test"):
        a, b = getattr(data, split), getattr(ref, split)
        assert torch.equal(a.frames, b.frames) and torch.equal(a.labels, b.labels)
    from harness.data.pipeline import _Source

    cfg = RunConfig()
    plan = _Source(cfg, DATASETS["digits-dvs"]).plan()
    sets = {k: set(v[1].tolist()) for k, v in plan.items()}
    assert sum(len(s) for s in sets.values()) == 1797
    assert not (sets["train"] & sets["val"]) and not (sets["train"] & sets["test"])
    y = labels()
    test_share = np.bincount(y[plan["test"][1]], minlength=10) / np.bincount(y, minlength=10)
    assert np.all(np.abs(test_share - 0.15) < 0.02)
    assert 1250 < len(sets["train"]) < 1350


def test_generation_is_per_sample_deterministic() -> None:
    params = DigitsDVSParams()
    alone = generate(params, [7])[0]
    with_others = generate(params, [2, 7])[1]
    assert np.array_equal(alone, with_others)
    assert len(alone) > 1000  # three saccades of a 24x24 digit
    assert np.all(np.diff(alone["t"]) >= 0) and alone["t"].max() <= 315_000
    assert 0.3 < alone["p"].mean() < 0.7
    noisy = generate(DigitsDVSParams(seed=1), [7])[0]
    assert not np.array_equal(alone, noisy)


def test_options_reach_the_generator_and_are_validated() -> None:
    with pytest.raises(ConfigError, match="dataset.options.nope"):
        build_data(RunConfig.from_dict({"dataset": {"limit": 2, "options": {"nope": 1}}}))
    with pytest.raises(ConfigError, match="dataset.options.sensor.threshold_on"):
        build_data(RunConfig.from_dict({"dataset": {"limit": 2, "options": {
            "sensor": {"threshold_on": "high"}}}}))
    with pytest.raises(ConfigError, match="unknown dataset.name"):
        build_data(RunConfig.from_dict({"dataset": {"name": "mnist"}}))
    full = build_data(RunConfig.from_dict({"dataset": {"limit": 2, "downsample": 1}}))
    assert full.input_shape == (2, 34, 34)


def test_labels_come_from_the_cache_without_scikit_learn(tmp_path, monkeypatch) -> None:
    import sys

    from sklearn.datasets import load_digits

    from harness.data import memo

    monkeypatch.setenv("BSNN_CACHE_DIR", str(tmp_path))
    memo.clear()
    expected = load_digits().target
    np.testing.assert_array_equal(labels(), expected)  # builds the entry
    memo.clear()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # any import of it fails now
    with pytest.raises(ImportError):
        load_digits_again = __import__("sklearn.datasets", fromlist=["load_digits"])
        del load_digits_again
    y = labels()
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, expected)

"""Augmentation levels: they change training samples only, deterministically per seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tricks
from harness.config import RunConfig
from harness.data.pipeline import build_data
from tricks import augmentation as aug
from tricks._registry import TrickError

LEVELS = [n for n in aug.LEVELS if n != "none"]


def cfg(level, seed: int = 0) -> RunConfig:
    return RunConfig.from_dict({"dataset": {"name": "digits-dvs", "limit": 16},
                                "train": {"batch_size": 8, "seed": seed},
                                "factors": {"augmentation": level}})


def epoch(loader, e: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.set_epoch(e)
    return list(loader)


@pytest.fixture(scope="module")
def plain():
    return build_data(cfg("none"))


@pytest.mark.parametrize("name", LEVELS)
def test_level_changes_train_only_and_is_seeded(name: str, plain) -> None:
    data = build_data(cfg(name))
    base, augmented = epoch(plain.train), epoch(data.train)
    # Same seed -> same order; the augmentation changes some samples.
    assert all(torch.equal(yb, ya) for (_, yb), (_, ya) in zip(base, augmented))
    assert any(not torch.equal(xb, xa) for (xb, _), (xa, _) in zip(base, augmented))
    for split in ("val", "test"):
        for (xb, yb), (xa, ya) in zip(epoch(getattr(plain, split)),
                                      epoch(getattr(data, split))):
            assert torch.equal(xb, xa) and torch.equal(yb, ya)
    again = build_data(cfg(name))
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(augmented, epoch(again.train)))
    # Another epoch draws anew.
    assert any(not torch.equal(a, b) for (a, _), (b, _) in zip(augmented, epoch(data.train, 1)))
    assert all(x.shape == (6, 8, 2, 17, 17) for x, _ in augmented)


def test_global_numpy_random_state_is_untouched() -> None:
    data = build_data(cfg("drop-event"))
    np.random.seed(5)
    expected = np.random.random()
    np.random.seed(5)
    epoch(data.train)
    assert np.random.random() == expected


def test_frame_levels_on_chosen_inputs() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 1 * 2 * 3 * 4, dtype=torch.float32).reshape(2, 1, 2, 3, 4)
    flipped = aug.FlipLR(p=1.0).frame_transform(x, g)
    assert torch.equal(flipped, x.flip(-1))
    assert torch.equal(aug.FlipLR(p=0.0).frame_transform(x, g), x)
    assert torch.equal(aug.FlipPolarity(p=1.0).frame_transform(x, g), x.flip(2))
    crop = aug.RandomCrop(pad=1).frame_transform(torch.ones(1, 50, 1, 3, 3), g)
    # Each crop keeps a 2x2..3x3 block of ones and zeros where the padding came in.
    kept = crop.sum(dim=(0, 2, 3, 4))
    assert set(kept.tolist()) <= {4.0, 6.0, 9.0} and len(set(kept.tolist())) > 1
    ones = torch.ones(1, 64, 1, 10, 10)
    nda = aug.NDA(roll=0.0, rotate=0.0, shear=0.0, cutout=0.3).frame_transform(ones, g)
    sums = nda.sum(dim=(0, 2, 3, 4))
    # Roll/rotate/shear with zero magnitude are identities; cutout zeroes up to a 3x3 square.
    assert sums.max() == 100 and sums.min() >= 91 and (sums < 100).any()


def test_parameters_are_validated_and_labelled() -> None:
    with pytest.raises(TrickError, match="'p'"):
        tricks.make("augmentation", {"name": "flip-lr", "p": 1.5})
    with pytest.raises(TrickError, match="'pad'"):
        tricks.make("augmentation", {"name": "random-crop", "pad": 0})
    with pytest.raises(TrickError, match="'mode'"):
        tricks.make("augmentation", {"name": "event-drop", "mode": "sideways"})
    with pytest.raises(TrickError, match="'std'"):
        tricks.make("augmentation", {"name": "time-jitter", "std": -1})
    with pytest.raises(TrickError, match="'rotate'"):
        tricks.make("augmentation", {"name": "nda", "rotate": 400})
    assert tricks.make("augmentation", {"name": "random-crop", "pad": 4}).label() == \
        "random-crop(pad=4)"
    assert tricks.make("augmentation", {"name": "event-drop", "mode": "area"}).label() == \
        "event-drop(mode=area)"
    for name in aug.LEVELS:  # the rest of the contract: tests/test_registry.py
        assert tricks.make("augmentation", name).stage in {"none", "event", "frame"}

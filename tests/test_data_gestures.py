"""synthetic-gestures: time-summed frames cannot tell the rotation (and radial) pairs apart,
time-resolved frames can."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import cross_val_score

from harness.datasets.frames import Preprocess, fast_frames
from harness.datasets.synthetic_gestures import CLASSES, SyntheticGesturesParams, generate

PER_CLASS = 50


@pytest.fixture(scope="module")
def frames_by_class() -> tuple[np.ndarray, np.ndarray]:
    params = SyntheticGesturesParams(samples_per_class=PER_CLASS)
    wanted = [CLASSES.index(c) for c in ("clockwise", "counter-clockwise", "expanding",
                                        "contracting")]
    idx = np.array([i for i in range(PER_CLASS * len(CLASSES)) if i % len(CLASSES) in wanted])
    events = generate(params, idx)
    prep = Preprocess(sensor_size=(34, 34, 2), target_size=(17, 17))
    frames = fast_frames([prep(e) for e in events], prep.out_sensor_size, 10)
    return frames.astype(np.float32), idx % len(CLASSES)


def accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    # A linear classifier (ridge: closed form, fast) on log counts, 5-fold cross-validated.
    model = RidgeClassifier(alpha=10.0)
    return float(cross_val_score(model, np.log1p(features), labels, cv=5).mean())


@pytest.mark.parametrize("pair,timed_min", [(("clockwise", "counter-clockwise"), 0.8),
                                            (("expanding", "contracting"), 0.65)])
def test_time_summed_frames_are_near_chance(frames_by_class, pair, timed_min: float) -> None:
    frames, labels = frames_by_class
    keep = np.isin(labels, [CLASSES.index(c) for c in pair])
    x, y = frames[keep], labels[keep]
    summed = accuracy(x.sum(axis=1).reshape(len(x), -1), y)
    timed = accuracy(x.reshape(len(x), -1), y)
    assert summed < 0.62, f"time-summed frames separate {pair}: {summed:.2f}"
    assert timed > timed_min, f"time-resolved frames fail on {pair}: {timed:.2f}"


def test_every_class_has_events_and_translations_are_easy() -> None:
    params = SyntheticGesturesParams(samples_per_class=2)
    events = generate(params)
    assert len(events) == 2 * len(CLASSES)
    assert all(len(e) > 500 for e in events)
    assert all(np.all(np.diff(e["t"]) >= 0) for e in events)
    assert np.array_equal(generate(params, [9])[0], events[9])

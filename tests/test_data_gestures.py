"""synthetic-gestures: time-summed frames cannot tell the rotation (and radial) pairs apart,
time-resolved frames can."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import cross_val_score

from harness.data.frames import Preprocess, fast_frames
from harness.data.synthetic_gestures import CLASSES, SyntheticGesturesParams, generate

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


def train_snn(frames: np.ndarray, labels: np.ndarray, epochs: int = 5) -> dict[str, float]:
    """A small conv SNN (LIF, BN) on 4 motion classes; pairwise held-out accuracy per pair."""
    import torch

    from harness.config import RunConfig
    from harness.run.build import build_model

    torch.manual_seed(0)
    cfg = RunConfig.from_dict({"dataset": {"time_steps": frames.shape[1]},
                               "model": {"arch": "conv", "channels": [8, 16], "hidden": 64},
                               "factors": {"loss": "ce-membrane"}})
    net = build_model(cfg, input_shape=(2, 17, 17), num_classes=4)
    loss = cfg.level("loss")
    x_all = torch.from_numpy(frames)
    y_all = torch.from_numpy(labels - 4)
    order = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(0))
    train, test = order[:150], order[150:]
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(epochs):
        net.train()
        for b in torch.split(train[torch.randperm(len(train), generator=gen)], 25):
            opt.zero_grad()
            loss.loss(net(x_all[b].transpose(0, 1)), y_all[b]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        logits = loss.logits(net(x_all[test].transpose(0, 1)))
    y = y_all[test]
    out = {}
    for name, pair in (("rotation", (0, 1)), ("radial", (2, 3))):
        m = (y == pair[0]) | (y == pair[1])
        pred = torch.tensor(pair)[logits[m][:, list(pair)].argmax(1)]
        out[name] = float((pred == y[m]).float().mean())
    return out


def test_snn_separates_the_pairs_but_not_from_summed_frames(frames_by_class) -> None:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: a second thread only adds contention
    try:
        check_snn(*frames_by_class)
    finally:
        torch.set_num_threads(threads)


def check_snn(frames: np.ndarray, labels: np.ndarray) -> None:
    timed = train_snn(frames, labels)
    assert timed["rotation"] > 0.85 and timed["radial"] > 0.85, timed
    # The same network fed the time-summed frame at every step has nothing to go on.
    summed = np.repeat(frames.mean(axis=1, keepdims=True), frames.shape[1], axis=1)
    blind = train_snn(summed, labels)
    assert blind["rotation"] < 0.7 and blind["radial"] < 0.7, blind
    print("SNN pairwise accuracy, time-resolved:", timed, "time-summed:", blind)

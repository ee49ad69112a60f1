"""The simulated DVS pixel model, checked against its formulas at chosen points."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.data.dvs_sim import EVENT_DTYPE, DVSSensor

IDEAL = dict(threshold_sigma=0.0, refractory_us=0.0, jitter_us=0.0, shot_noise_hz=0.0,
             leak_hz=0.0, noise_rate_sigma=0.0, log_eps=1e-12)


def ramp(i0: float, i1: float, width: int = 2) -> np.ndarray:
    """Pixel 0 goes from i0 to i1, the others stay at i0: [K=2, B=1, H=1, W]."""
    scene = np.full((2, 1, 1, width), i0)
    scene[1, 0, 0, 0] = i1
    return scene


def test_on_events_count_and_interpolated_times() -> None:
    sensor = DVSSensor(width=2, height=1, threshold_on=0.2, **IDEAL)
    (ev,) = sensor.record(ramp(0.1, 0.5), np.array([0.0, 1000.0]), np.random.default_rng(0))
    dl = math.log(0.5) - math.log(0.1)  # 1.609: 8 crossings of 0.2
    assert len(ev) == math.floor(dl / 0.2) == 8
    assert ev.dtype == EVENT_DTYPE
    assert set(ev["p"]) == {1} and set(ev["x"]) == {0} and set(ev["y"]) == {0}
    # Crossing i is where the linear log ramp reaches i * 0.2.
    expected = np.round(1000.0 * 0.2 * np.arange(1, 9) / dl)
    np.testing.assert_array_equal(ev["t"], expected)


def test_off_events_use_the_off_threshold() -> None:
    sensor = DVSSensor(width=2, height=1, threshold_on=0.1, threshold_off=0.5, **IDEAL)
    (ev,) = sensor.record(ramp(0.8, 0.2), np.array([0.0, 1000.0]), np.random.default_rng(0))
    assert len(ev) == math.floor((math.log(0.8) - math.log(0.2)) / 0.5) == 2
    assert set(ev["p"]) == {0}


def test_reference_carries_over_between_steps() -> None:
    # 0.15 then 0.3 in log units: no event in the first step, one at the second.
    sensor = DVSSensor(width=1, height=1, threshold_on=0.2, **IDEAL)
    scene = np.exp(np.array([0.0, 0.15, 0.3]))[:, None, None, None]
    (ev,) = sensor.record(scene, np.array([0.0, 1000.0, 2000.0]), np.random.default_rng(0))
    assert len(ev) == 1
    # The level 0.2 is crossed a third of the way through the second step.
    assert ev["t"][0] == round(1000 + 1000 * (0.2 - 0.15) / 0.15)


def test_refractory_period_drops_crossings() -> None:
    ideal = {**IDEAL, "refractory_us": 400.0}
    sensor = DVSSensor(width=2, height=1, threshold_on=0.2, **ideal)
    (ev,) = sensor.record(ramp(0.1, 0.5), np.array([0.0, 1000.0]), np.random.default_rng(0))
    spacing = 1000.0 * 0.2 / (math.log(0.5) - math.log(0.1))  # 124 us between crossings
    keep_every = math.ceil(400.0 / spacing)  # every 4th crossing survives
    assert len(ev) == len(range(0, 8, keep_every)) == 2
    assert np.all(np.diff(ev["t"]) >= 400)


def test_background_noise_rate_and_determinism() -> None:
    sensor = DVSSensor(width=20, height=20, shot_noise_hz=5.0, leak_hz=1.0, jitter_us=0.0)
    scene = np.full((2, 3, 20, 20), 0.5)
    times = np.array([0.0, 1e6])  # one second, static scene: only noise
    rec = sensor.record(scene, times, np.random.default_rng(1))
    counts = [len(e) for e in rec]
    expected = 400 * 6.0
    assert all(abs(c - expected) < 5 * math.sqrt(expected) for c in counts)
    for ev in rec:
        assert np.all(np.diff(ev["t"]) >= 0)
        assert ev["x"].min() >= 0 and ev["x"].max() < 20
    again = sensor.record(scene, times, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(rec, again))
    other = sensor.record(scene, times, np.random.default_rng(2))
    assert not np.array_equal(rec[0], other[0])


def test_threshold_mismatch_is_fixed_per_sensor() -> None:
    sensor = DVSSensor(width=30, height=30, threshold_on=0.2, threshold_sigma=0.03)
    maps = sensor.mismatch()
    assert maps["on"].shape == (30, 30)
    assert abs(maps["on"].mean() - 0.2) < 0.01 and abs(maps["on"].std() - 0.03) < 0.01
    np.testing.assert_array_equal(maps["on"], sensor.mismatch()["on"])
    assert not np.array_equal(maps["on"], DVSSensor(mismatch_seed=7, width=30,
                                                    height=30).mismatch()["on"])


def test_bad_parameters_and_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="threshold_on"):
        DVSSensor(threshold_on=0.0)
    with pytest.raises(ValueError, match="intensity"):
        DVSSensor(width=4, height=4).record(np.zeros((2, 1, 3, 3)), np.array([0.0, 1.0]),
                                            np.random.default_rng(0))

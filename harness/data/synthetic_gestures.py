"""``synthetic-gestures``: motion patterns recorded by the simulated DVS; classes differ in motion.

Eight classes, each a pattern moving through the sensor for ``duration_ms``:

====  ==================  ===================================================================
 0    left                a bar or a Gaussian blob translating leftwards
 1    right               ... rightwards
 2    up                  ... upwards (towards y = 0)
 3    down                ... downwards
 4    clockwise           a pinwheel of 2-4 soft spokes rotating clockwise
 5    counter-clockwise   the same pinwheel rotating counter-clockwise
 6    expanding           concentric rings (radial cosine grating) moving out by one period
 7    contracting         the same rings moving inwards
====  ==================  ===================================================================

Per sample: random centre / start position, speed, size, spoke count, ring period, start phase,
background and contrast, and the sensor's noise.

The rotating and radial patterns move by an exact whole number of their spatial periods, so the
first and the last image are the same and every pixel runs through whole cycles of its intensity:
the events summed over time have the same distribution for clockwise and counter-clockwise (and for
expanding and contracting). Only the order of events in time tells those pairs apart, which is
what a network with temporal dynamics must use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from harness.data.dvs_sim import DVSSensor

__all__ = ["CLASSES", "SyntheticGesturesParams", "generate", "labels"]

CLASSES = ("left", "right", "up", "down", "clockwise", "counter-clockwise", "expanding",
           "contracting")


@dataclasses.dataclass(frozen=True)
class SyntheticGesturesParams:
    """Generator parameters; every one is part of the on-disk cache key.

    Attributes:
        sensor: the simulated pixel array.
        samples_per_class: recordings per class.
        duration_ms: length of one recording.
        step_ms: simulation time step.
        background: screen intensity range (uniform per sample).
        contrast: pattern intensity range above the background.
        centre_jitter: random offset of rotation / ring centres from the sensor centre, pixels.
        start_phase: range of the random start phase of spokes and rings (radians of their
            periodic phase; 2*pi makes the start fully random). Like the arms of DVS Gesture, a
            pattern starts from roughly the same place, so a pair is separable from when things
            happen, never from what the time-summed image shows.
        seed: seed of every per-sample choice and of the sensor noise.
    """

    sensor: DVSSensor = dataclasses.field(default_factory=DVSSensor)
    samples_per_class: int = 200
    duration_ms: float = 300.0
    step_ms: float = 2.0
    background: tuple[float, float] = (0.15, 0.3)
    contrast: tuple[float, float] = (0.4, 0.7)
    centre_jitter: float = 3.0
    start_phase: float = float(np.pi / 2)
    seed: int = 0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _translate(cls: int, t: np.ndarray, xx: np.ndarray, yy: np.ndarray, w: int, h: int,
               rng: np.random.Generator) -> np.ndarray:
    """Pattern in [0, 1] over t [K, 1, 1]: a bar or a blob crossing part of the sensor."""
    direction = {0: (-1.0, 0.0), 1: (1.0, 0.0), 2: (0.0, -1.0), 3: (0.0, 1.0)}[cls]
    travel = rng.uniform(12.0, 24.0)
    # Start so that the whole path stays near the sensor, with a random lateral position.
    along0 = rng.uniform(4.0, max(w, h) - 4.0 - travel)
    across = rng.uniform(6.0, min(w, h) - 6.0)
    dx, dy = direction
    along = along0 + travel * t  # position along the motion axis; start side chosen by sign
    if dx != 0:
        cx = along if dx > 0 else w - along
        cy = np.full_like(t, across)
    else:
        cy = along if dy > 0 else h - along
        cx = np.full_like(t, across)
    if rng.random() < 0.5:
        sigma = rng.uniform(2.0, 4.0)
        return np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    half_width = rng.uniform(1.0, 3.0)
    half_length = rng.uniform(5.0, 12.0)
    # Soft-edged bar perpendicular to the motion.
    u = (xx - cx) if dx != 0 else (yy - cy)
    v = (yy - cy) if dx != 0 else (xx - cx)
    return _sigmoid(2.0 * (half_width - np.abs(u))) * _sigmoid(2.0 * (half_length - np.abs(v)))


def _rotate(cls: int, t: np.ndarray, xx: np.ndarray, yy: np.ndarray, cx: float, cy: float,
            start_phase: float, rng: np.random.Generator) -> np.ndarray:
    spokes = int(rng.integers(2, 5))
    turns = int(rng.integers(1, 3))  # whole periods of the pinwheel, so start == end image
    phase0 = rng.uniform(0.0, start_phase)
    radius = rng.uniform(9.0, 15.0)
    sign = -1.0 if cls == 4 else 1.0  # y grows downwards: clockwise on screen is decreasing angle
    angle = np.arctan2(yy - cy, xx - cx)
    phase = spokes * angle - sign * 2 * np.pi * turns * t + phase0
    r = np.hypot(xx - cx, yy - cy)
    window = _sigmoid(2.0 * (r - 2.0)) * _sigmoid(2.0 * (radius - r))
    return window * ((1.0 + np.cos(phase)) / 2.0) ** 3


def _radial(cls: int, t: np.ndarray, xx: np.ndarray, yy: np.ndarray, cx: float, cy: float,
            start_phase: float, rng: np.random.Generator) -> np.ndarray:
    period = rng.uniform(6.0, 8.0)
    cycles = 1
    phase0 = rng.uniform(0.0, start_phase)
    radius = rng.uniform(11.0, 16.0)
    sign = 1.0 if cls == 6 else -1.0
    r = np.hypot(xx - cx, yy - cy)
    phase = 2 * np.pi * (r / period - sign * cycles * t) + phase0
    window = _sigmoid(2.0 * (radius - r))
    return window * (1.0 + np.cos(phase)) / 2.0


def labels(params: SyntheticGesturesParams) -> np.ndarray:
    """The class of each sample, in :func:`generate`'s order: classes interleaved."""
    return np.tile(np.arange(len(CLASSES), dtype=np.int64), params.samples_per_class)


def generate(params: SyntheticGesturesParams, indices: Sequence[int] | None = None, *,
             chunk: int = 64) -> list[np.ndarray]:
    """Record samples ``indices`` (default all; classes interleaved); events per sample.

    Sample i draws only from a generator seeded by ``(params.seed, i)``.
    """
    sensor = params.sensor
    w, h = sensor.width, sensor.height
    classes = labels(params)
    idx = np.arange(len(classes)) if indices is None else np.asarray(indices, dtype=np.int64)
    k = int(round(params.duration_ms / params.step_ms)) + 1
    t = np.linspace(0.0, 1.0, k)[:, None, None]  # fraction of the recording
    times_us = np.linspace(0.0, params.duration_ms * 1000.0, k)
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    events: list[np.ndarray] = []
    for start in range(0, len(idx), chunk):
        scenes, rngs = [], []
        for i in idx[start:start + chunk]:
            rng = np.random.default_rng([params.seed, int(i)])
            cls = int(classes[i])
            cx = w / 2 + rng.uniform(-params.centre_jitter, params.centre_jitter)
            cy = h / 2 + rng.uniform(-params.centre_jitter, params.centre_jitter)
            if cls < 4:
                pattern = _translate(cls, t, xx, yy, w, h, rng)
            elif cls < 6:
                pattern = _rotate(cls, t, xx, yy, cx, cy, params.start_phase, rng)
            else:
                pattern = _radial(cls, t, xx, yy, cx, cy, params.start_phase, rng)
            bg = rng.uniform(*params.background)
            contrast = rng.uniform(*params.contrast)
            scenes.append((bg + contrast * pattern).astype(np.float32))
            rngs.append(rng)
        events.extend(sensor.record(np.stack(scenes, axis=1), times_us, rngs))
    return events

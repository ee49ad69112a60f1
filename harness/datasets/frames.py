"""Event preprocessing and binning into frames (tonic's ToFrame with a fixed number of bins).

:func:`to_frames` bins with tonic's ``ToFrame(n_time_bins=T)``; :func:`fast_frames` computes the
same frames for a whole list of samples in one vectorized pass (used to re-bin augmented training
events every epoch; tests hold it equal to tonic's).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tonic

__all__ = ["Preprocess", "fast_frames", "to_frames"]


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """Deterministic event preprocessing before binning (part of every frame cache key).

    Attributes:
        sensor_size: the recording's (W, H, P).
        target_size: (W, H) after spatial downsampling (tonic ``Downsample``: coordinates scaled
            and floored, so pixels merge and their events add up, like sum pooling).
        denoise_us: tonic ``Denoise(filter_time)`` before downsampling; None: off.
    """

    sensor_size: tuple[int, int, int]
    target_size: tuple[int, int]
    denoise_us: float | None = None

    @property
    def out_sensor_size(self) -> tuple[int, int, int]:
        return (self.target_size[0], self.target_size[1], self.sensor_size[2])

    def __call__(self, events: np.ndarray) -> np.ndarray:
        if len(events) and self.denoise_us is not None:
            events = tonic.transforms.Denoise(filter_time=self.denoise_us)(events)
        if tuple(self.target_size) != tuple(self.sensor_size[:2]):
            events = tonic.transforms.Downsample(sensor_size=self.sensor_size,
                                                 target_size=self.target_size)(events)
        if self.sensor_size[2] == 1 and len(events):
            events = events.copy()
            events["p"] = 0
        return events


def to_frames(events: np.ndarray, sensor_size: tuple[int, int, int], steps: int) -> np.ndarray:
    """One sample's frames ``[T, P, H, W]`` (int16 counts), through tonic's ToFrame."""
    frames = tonic.transforms.ToFrame(sensor_size=sensor_size, n_time_bins=steps)(events)
    w, h, p = sensor_size
    return np.asarray(frames).reshape(steps, p, h, w)


def fast_frames(samples: list[np.ndarray], sensor_size: tuple[int, int, int],
                steps: int) -> np.ndarray:
    """Frames ``[N, T, P, H, W]`` (int64 counts) of many samples, equal to :func:`to_frames`.

    tonic's bins: width ``(t_last - t_first) // T``, bin k = [t_first + k*width, t_first +
    (k+1)*width), events past the last bin dropped; a zero width gives empty frames.
    """
    w, h, p = sensor_size
    n = len(samples)
    lengths = np.array([len(s) for s in samples], dtype=np.int64)
    out = np.zeros((n, steps, p, h, w), dtype=np.int64)
    if lengths.sum() == 0:
        return out
    sample = np.repeat(np.arange(n), lengths)
    t = np.concatenate([s["t"] for s in samples]).astype(np.int64)
    x = np.concatenate([s["x"] for s in samples]).astype(np.int64)
    y = np.concatenate([s["y"] for s in samples]).astype(np.int64)
    pol = np.concatenate([s["p"] for s in samples]).astype(np.int64)
    if p == 1:
        pol = np.zeros_like(pol)
    nonempty = lengths > 0
    t_first = np.zeros(n, dtype=np.int64)
    t_last = np.zeros(n, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    t_first[nonempty] = np.minimum.reduceat(t, starts[nonempty])
    t_last[nonempty] = np.maximum.reduceat(t, starts[nonempty])
    width = (t_last - t_first) // steps
    wid = width[sample]
    ok = wid > 0
    k = np.zeros_like(t)
    k[ok] = (t[ok] - t_first[sample][ok]) // wid[ok]
    ok &= (k < steps) & (x >= 0) & (x < w) & (y >= 0) & (y < h) & (pol >= 0) & (pol < p)
    flat = (((sample[ok] * steps + k[ok]) * p + pol[ok]) * h + y[ok]) * w + x[ok]
    out.reshape(-1)[:] = np.bincount(flat, minlength=out.size)
    return out

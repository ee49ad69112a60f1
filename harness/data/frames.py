"""Event preprocessing and binning into frames (tonic's ToFrame with a fixed number of bins).

:func:`to_frames` bins with tonic's ``ToFrame(n_time_bins=T)``; :func:`fast_frames` computes the
same frames for a whole list of samples in one vectorized pass (used to re-bin augmented training
events every epoch; tests hold it equal to tonic's).
"""

from __future__ import annotations

import dataclasses

import numpy as np

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
    #: ``sum``: tonic Downsample on events; ``bilinear``: frames binned at the sensor size, then
    #: bilinearly resized (align_corners=True) to ``target_size``.
    resize: str = "sum"
    #: (mean per polarity, std per polarity) applied after a bilinear resize; None: off.
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    @property
    def out_sensor_size(self) -> tuple[int, int, int]:
        return (self.target_size[0], self.target_size[1], self.sensor_size[2])

    @property
    def _events_downsampled(self) -> bool:
        return self.resize == "sum" and tuple(self.target_size) != tuple(self.sensor_size[:2])

    def __call__(self, events: np.ndarray) -> np.ndarray:
        # tonic is imported lazily: it takes a second, and a worker reading cached frames never
        # needs it.
        import tonic.transforms

        if len(events) and self.denoise_us is not None:
            events = tonic.transforms.Denoise(filter_time=self.denoise_us)(events)
        if self._events_downsampled:
            events = tonic.transforms.Downsample(sensor_size=self.sensor_size,
                                                 target_size=self.target_size)(events)
        if self.sensor_size[2] == 1 and len(events):
            events = events.copy()
            events["p"] = 0
        return events


    @property
    def event_sensor_size(self) -> tuple[int, int, int]:
        """(W, H, P) of the events this returns (the target size unless resizing frames)."""
        return self.out_sensor_size if self.resize == "sum" else tuple(self.sensor_size)

    def frames(self, samples: list[np.ndarray], steps: int) -> np.ndarray:
        """Frames ``[N, T, P, H, W]`` of preprocessed events at the target size: uint8 counts
        (clipped at 255), or float32 after a bilinear resize (and normalization)."""
        w, h, p = self.out_sensor_size
        if not samples:
            return np.zeros((0, steps, p, h, w), np.uint8 if self.resize == "sum"
                            else np.float32)
        if self.resize == "sum":
            counts = np.stack([to_frames(e, self.out_sensor_size, steps) for e in samples])
            return np.clip(counts, 0, 255).astype(np.uint8)
        import torch
        import torch.nn.functional as F

        out = np.empty((len(samples), steps, p, h, w), np.float32)
        for i, ev in enumerate(samples):
            full = torch.from_numpy(to_frames(ev, self.sensor_size, steps).astype(np.float32))
            x = F.interpolate(full, size=(h, w), mode="bilinear", align_corners=True)
            if self.normalize is not None:
                mean = torch.tensor(self.normalize[0]).view(1, p, 1, 1)
                std = torch.tensor(self.normalize[1]).view(1, p, 1, 1)
                x = (x - mean) / std
            out[i] = x.numpy()
        return out


def to_frames(events: np.ndarray, sensor_size: tuple[int, int, int], steps: int) -> np.ndarray:
    """One sample's frames ``[T, P, H, W]`` (int16 counts), through tonic's ToFrame."""
    import tonic.transforms

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
    out = np.zeros((len(samples), steps, p, h, w), dtype=np.int64)
    size = steps * p * h * w
    # Per sample, not over one concatenation: the arrays stay cache-sized, and concatenating
    # millions of structured events cost more than the binning itself.
    for i, ev in enumerate(samples):
        if len(ev) == 0:
            continue
        t = ev["t"].astype(np.int64, copy=False)
        t_first = int(t.min())
        width = (int(t.max()) - t_first) // steps
        if width <= 0:
            continue
        k = (t - t_first) // width
        x, y = ev["x"].astype(np.int64, copy=False), ev["y"].astype(np.int64, copy=False)
        pol = 0 if p == 1 else ev["p"].astype(np.int64, copy=False)
        flat = ((k * p + pol) * h + y) * w + x
        ok = (k < steps) & (x >= 0) & (x < w) & (y >= 0) & (y < h)
        if p != 1:
            ok &= (pol >= 0) & (pol < p)
        out[i].reshape(-1)[:] = np.bincount(flat[ok], minlength=size)
    return out

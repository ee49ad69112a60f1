"""Factor ``augmentation``: train-time transforms of events or frames, never of val/test data.

A level acts at one of two stages (``stage``):

* ``"event"``: :meth:`Augmentation.event_transform` returns a callable applied to each training
  sample's raw events every epoch (the data layer keeps the training events in memory and bins
  them into frames again each epoch). These wrap tonic's transforms.
* ``"frame"``: :meth:`Augmentation.frame_transform` acts on a batch of cached frames
  ``[T, B, C, H, W]`` (one draw per sample, the same for all its T frames).

Randomness comes only from the generators the data layer passes in (seeded per run and epoch).
tonic's transforms draw from the global ``np.random``; :class:`SeededTransform` runs them with the
global state seeded from the run's generator and restores it afterwards, so neither leaks into the
other.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F

from tricks._registry import Level

DEFAULT = "none"

__all__ = [
    "DEFAULT",
    "LEVELS",
    "Augmentation",
    "DropEvent",
    "EventDrop",
    "FlipLR",
    "FlipPolarity",
    "NDA",
    "NoAugmentation",
    "RandomCrop",
    "SeededTransform",
    "SpatialJitter",
    "TimeJitter",
]

EventFn = Callable[[np.ndarray], np.ndarray]


def _tonic():  # type: ignore[no-untyped-def]
    """tonic, imported when an event-level level first builds a transform: importing it takes
    about a second (its dataset readers pull in scipy.io and more), which every command that
    merely names a level (parsing a study, a worker's start) would pay otherwise."""
    import tonic

    return tonic


def _tonic_functional():  # type: ignore[no-untyped-def]
    import tonic.functional

    return tonic.functional


class SeededTransform:
    """Run a tonic transform with ``np.random`` seeded from ``rng`` for each call, then restore."""

    def __init__(self, transform: EventFn, rng: np.random.Generator) -> None:
        self.transform = transform
        self.rng = rng

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return self.apply_all([events])[0]

    def apply_all(self, samples: list[np.ndarray]) -> list[np.ndarray]:
        """Transform many samples under one seeding (re-seeding per sample costs ~1 ms)."""
        state = np.random.get_state()
        np.random.seed(int(self.rng.integers(2**32)))
        try:
            return [self.transform(events) for events in samples]
        finally:
            np.random.set_state(state)


@dataclasses.dataclass(frozen=True)
class Augmentation(Level):
    """Base of the augmentation levels.

    ``stage`` says where a level acts (``none``, ``event``, ``frame``); ``spatial`` levels need
    frames with a 2-D image (not audio channels).
    """

    factor: ClassVar[str] = "augmentation"
    stage: ClassVar[str] = "frame"
    spatial: ClassVar[bool] = True

    @property
    def needs_events(self) -> bool:
        return self.stage == "event"

    def event_transform(self, sensor_size: tuple[int, int, int],
                        rng: np.random.Generator) -> EventFn | None:
        """A callable on one sample's events (tonic dtype); None for frame-level levels."""
        return None

    def frame_transform(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a batch ``[T, B, C, H, W]``; identity for event-level levels."""
        return frames

    def _check_probability(self, name: str) -> None:
        value = getattr(self, name)
        if not 0.0 <= value <= 1.0:
            raise self.error(name, f"must be in [0, 1], got {value}")


def _sample_mask(batch: int, p: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(batch, generator=generator) < p


@dataclasses.dataclass(frozen=True)
class NoAugmentation(Augmentation):
    name: ClassVar[str] = "none"
    summary: ClassVar[str] = "no augmentation"
    stage: ClassVar[str] = "none"
    spatial: ClassVar[bool] = False


@dataclasses.dataclass(frozen=True)
class RandomCrop(Augmentation):
    """Zero-pad each frame by ``pad`` pixels and crop back to its size at a random offset
    (torchvision's ``RandomCrop(size, padding)``, the He et al. authors' choice for DVS Gesture
    and CIFAR10-DVS); one offset per sample, shared by its T frames."""

    name: ClassVar[str] = "random-crop"
    summary: ClassVar[str] = "zero-pad by `pad` and crop back at a random offset (frames)"
    param_help: ClassVar[dict[str, str]] = {"pad": "padding in pixels on each side"}
    always_show: ClassVar[tuple[str, ...]] = ("pad",)
    pad: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pad < 1:
            raise self.error("pad", f"must be >= 1, got {self.pad}")

    def frame_transform(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch, h, w = frames.shape[1], frames.shape[-2], frames.shape[-1]
        pad = self.pad
        padded = F.pad(frames, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (batch,), generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (batch,), generator=generator)
        out = torch.empty_like(frames)
        for b in range(batch):
            y0, x0 = int(dy[b]), int(dx[b])
            out[:, b] = padded[:, b, :, y0:y0 + h, x0:x0 + w]
        return out


@dataclasses.dataclass(frozen=True)
class FlipLR(Augmentation):
    """Mirror a sample left-right with probability ``p`` (x' = W - 1 - x, tonic's RandomFlipLR).
    Done on frames: mirroring commutes with binning, so this equals the event-level transform."""

    name: ClassVar[str] = "flip-lr"
    summary: ClassVar[str] = "mirror left-right with probability p (frames)"
    param_help: ClassVar[dict[str, str]] = {"p": "probability per sample"}
    p: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_probability("p")

    def frame_transform(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        mask = _sample_mask(frames.shape[1], self.p, generator)
        out = frames.clone()
        out[:, mask] = frames[:, mask].flip(-1)
        return out


@dataclasses.dataclass(frozen=True)
class FlipPolarity(Augmentation):
    """Swap ON and OFF for a whole sample with probability ``p`` (tonic's RandomFlipPolarity);
    done on frames by swapping the two polarity channels, which is the same thing."""

    name: ClassVar[str] = "flip-polarity"
    summary: ClassVar[str] = "swap ON/OFF polarity of a sample with probability p (frames)"
    param_help: ClassVar[dict[str, str]] = {"p": "probability per sample"}
    spatial: ClassVar[bool] = False
    p: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_probability("p")

    def frame_transform(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if frames.ndim < 3 or frames.shape[2] != 2:
            return frames  # a single-polarity input has nothing to swap
        mask = _sample_mask(frames.shape[1], self.p, generator)
        out = frames.clone()
        out[:, mask] = frames[:, mask].flip(2)
        return out


@dataclasses.dataclass(frozen=True)
class DropEvent(Augmentation):
    """Drop a fraction ``p`` of a sample's events at random (tonic's DropEvent)."""

    name: ClassVar[str] = "drop-event"
    summary: ClassVar[str] = "drop a fraction p of the events at random (events)"
    param_help: ClassVar[dict[str, str]] = {"p": "fraction of events dropped"}
    always_show: ClassVar[tuple[str, ...]] = ("p",)
    stage: ClassVar[str] = "event"
    spatial: ClassVar[bool] = False
    p: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.p < 1.0:
            raise self.error("p", f"must be in [0, 1), got {self.p}")

    def event_transform(self, sensor_size: tuple[int, int, int],
                        rng: np.random.Generator) -> EventFn | None:
        return SeededTransform(_tonic().transforms.DropEvent(p=self.p), rng)


@dataclasses.dataclass(frozen=True)
class TimeJitter(Augmentation):
    """Add Gaussian noise of ``std`` microseconds to every timestamp (tonic's TimeJitter);
    events pushed before 0 are dropped and the stream is re-sorted."""

    name: ClassVar[str] = "time-jitter"
    summary: ClassVar[str] = "Gaussian timestamp noise of std microseconds (events)"
    param_help: ClassVar[dict[str, str]] = {"std": "standard deviation, microseconds"}
    always_show: ClassVar[tuple[str, ...]] = ("std",)
    stage: ClassVar[str] = "event"
    spatial: ClassVar[bool] = False
    std: float = 1000.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.std > 0:
            raise self.error("std", f"must be > 0, got {self.std}")

    def event_transform(self, sensor_size: tuple[int, int, int],
                        rng: np.random.Generator) -> EventFn | None:
        return SeededTransform(_tonic().transforms.TimeJitter(std=self.std, clip_negative=True,
                                                           sort_timestamps=True), rng)


@dataclasses.dataclass(frozen=True)
class SpatialJitter(Augmentation):
    """Move every event by Gaussian noise of variance ``var`` pixels^2 in x and y (tonic's
    SpatialJitter); events pushed off the sensor are dropped."""

    name: ClassVar[str] = "spatial-jitter"
    summary: ClassVar[str] = "Gaussian pixel noise of variance var on x and y (events)"
    param_help: ClassVar[dict[str, str]] = {"var": "variance in pixels^2 (x and y)"}
    always_show: ClassVar[tuple[str, ...]] = ("var",)
    stage: ClassVar[str] = "event"
    var: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.var > 0:
            raise self.error("var", f"must be > 0, got {self.var}")

    def event_transform(self, sensor_size: tuple[int, int, int],
                        rng: np.random.Generator) -> EventFn | None:
        return SeededTransform(_tonic().transforms.SpatialJitter(
            sensor_size=sensor_size, var_x=self.var, var_y=self.var, clip_outliers=True), rng)


@dataclasses.dataclass(frozen=True)
class EventDrop(Augmentation):
    """EventDrop (Gu et al., IJCAI 2021): drop events by time, by area or at random.

    ``mode: any`` is tonic's EventDrop (one of identity / by time / by area / random, equally
    likely, with the paper's ratios); ``time``, ``area`` and ``random`` always use that strategy,
    drawing its ratio from the same ranges: a time span of 10-90 % of the recording, a box of
    5-25 % of the sensor side, 10-90 % of the events.
    """

    name: ClassVar[str] = "event-drop"
    summary: ClassVar[str] = "EventDrop (Gu 2021): drop by time, area or at random (events)"
    param_help: ClassVar[dict[str, str]] = {"mode": "any | time | area | random"}
    stage: ClassVar[str] = "event"
    mode: Literal["any", "time", "area", "random"] = "any"

    def event_transform(self, sensor_size: tuple[int, int, int],
                        rng: np.random.Generator) -> EventFn | None:
        if self.mode == "any":
            return SeededTransform(_tonic().transforms.EventDrop(sensor_size=sensor_size), rng)
        mode = self.mode

        tonic_f = _tonic_functional()

        def drop(events: np.ndarray) -> np.ndarray:
            if len(events) == 0:
                return events
            if mode == "time":
                return tonic_f.drop_by_time_numpy(events, int(rng.integers(1, 10)) / 10.0)
            if mode == "area":
                return tonic_f.drop_by_area_numpy(events, sensor_size,
                                                  int(rng.integers(1, 6)) / 20.0)
            return tonic_f.drop_event_numpy(events, int(rng.integers(1, 10)) / 10.0)

        return SeededTransform(drop, rng)


@dataclasses.dataclass(frozen=True)
class NDA(Augmentation):
    """Neuromorphic Data Augmentation (Li et al., ECCV 2022) on frames: each sample gets one of
    roll (cyclic shift up to ``roll`` of the size), rotate (up to +-``rotate`` degrees), cutout
    (a zeroed square of side ``cutout`` of the size) or shear (x-shear up to +-``shear``),
    chosen uniformly; the same geometric change for all T frames of a sample."""

    name: ClassVar[str] = "nda"
    summary: ClassVar[str] = "NDA (Li 2022): roll, rotate, cutout or shear per sample (frames)"
    param_help: ClassVar[dict[str, str]] = {
        "roll": "max cyclic shift, fraction of the size",
        "rotate": "max rotation, degrees",
        "cutout": "side of the erased square, fraction of the size",
        "shear": "max x-shear factor",
    }
    roll: float = 0.15
    rotate: float = 15.0
    cutout: float = 0.3
    shear: float = 0.3

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, hi in (("roll", 0.5), ("rotate", 180.0), ("cutout", 1.0), ("shear", 1.0)):
            value = getattr(self, name)
            if not 0.0 <= value <= hi:
                raise self.error(name, f"must be in [0, {format(hi, 'g')}], got {value}")

    def frame_transform(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        steps, batch, c, h, w = frames.shape
        op = torch.randint(0, 4, (batch,), generator=generator)
        u = torch.rand(batch, 2, generator=generator) * 2 - 1  # magnitudes in [-1, 1]
        out = frames.clone()
        # Roll: integer cyclic shifts.
        for b in torch.nonzero(op == 0).flatten().tolist():
            sy = int(round(float(u[b, 0]) * self.roll * h))
            sx = int(round(float(u[b, 1]) * self.roll * w))
            out[:, b] = torch.roll(frames[:, b], shifts=(sy, sx), dims=(-2, -1))
        # Rotate and shear: one affine warp (nearest sampling keeps event counts integral).
        warp = torch.nonzero((op == 1) | (op == 3)).flatten()
        if warp.numel():
            theta = torch.zeros(warp.numel(), 2, 3)
            angle = u[warp, 0] * math.radians(self.rotate)
            is_rot = op[warp] == 1
            cos, sin = torch.cos(angle), torch.sin(angle)
            shear = u[warp, 0] * self.shear
            theta[:, 0, 0] = torch.where(is_rot, cos, torch.ones_like(cos))
            theta[:, 0, 1] = torch.where(is_rot, -sin, shear)
            theta[:, 1, 0] = torch.where(is_rot, sin, torch.zeros_like(sin))
            theta[:, 1, 1] = torch.where(is_rot, cos, torch.ones_like(cos))
            x = frames[:, warp].permute(1, 0, 2, 3, 4).reshape(warp.numel(), steps * c, h, w)
            grid = F.affine_grid(theta.to(frames.dtype), list(x.shape), align_corners=False)
            y = F.grid_sample(x, grid.to(frames.device), mode="nearest", align_corners=False)
            out[:, warp] = y.reshape(warp.numel(), steps, c, h, w).permute(1, 0, 2, 3, 4)
        # Cutout: a zeroed square at a random centre.
        side_h, side_w = max(1, round(self.cutout * h)), max(1, round(self.cutout * w))
        for b in torch.nonzero(op == 2).flatten().tolist():
            cy = int(torch.randint(0, h, (1,), generator=generator))
            cx = int(torch.randint(0, w, (1,), generator=generator))
            y0, x0 = max(0, cy - side_h // 2), max(0, cx - side_w // 2)
            out[:, b, :, y0:y0 + side_h, x0:x0 + side_w] = 0
        return out


LEVELS: dict[str, type[Augmentation]] = {
    cls.name: cls
    for cls in (NoAugmentation, RandomCrop, FlipLR, DropEvent, TimeJitter, SpatialJitter,
                FlipPolarity, EventDrop, NDA)
}

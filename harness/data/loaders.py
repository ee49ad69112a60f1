"""Batches straight from in-memory tensors: no per-sample Dataset/DataLoader machinery.

A study runs hundreds of short runs; a torch DataLoader's per-sample indexing, collation and
worker start-up would cost more than the tiny networks' steps. Frames are held as one uint8
tensor ``[N, T, *input_shape]`` per split, batches are index gathers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from tricks.augmentation import Augmentation

__all__ = ["FrameLoader"]


class FrameLoader:
    """A re-iterable loader yielding ``(x [T, B, *input_shape] float32, y [B] int64)``.

    Args:
        frames: ``[N, T, *input_shape]`` counts (uint8).
        labels: ``[N]`` int64.
        batch_size: samples per batch.
        shuffle: reshuffle every epoch (training); else fixed order, last batch partial.
        seed: run seed; epoch e draws from generators seeded by (seed, e), so an epoch's order
            and augmentation do not depend on how many epochs ran before in this process
            (a resumed run sees the same data as an uninterrupted one).
        augmentation: applied to this loader's batches (only the training loader gets one).
        events: the split's preprocessed events, needed by event-level augmentation.
        reframe: bins a list of (augmented) events into ``[N, T, *input_shape]`` counts.
        sensor_size: (W, H, P) of the events, passed to event transforms.
        stream: another stream of the generators, ``(seed, e, stream)``; 0 (the default) is
            the seed's own ``(seed, e)``. Set by the ``placebo`` factor only.
    """

    def __init__(self, frames: torch.Tensor, labels: torch.Tensor, *, batch_size: int,
                 shuffle: bool = False, seed: int = 0,
                 augmentation: Augmentation | None = None,
                 events: list[np.ndarray] | None = None,
                 reframe: Callable[[list[np.ndarray]], np.ndarray] | None = None,
                 sensor_size: tuple[int, int, int] | None = None, stream: int = 0) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if len(frames) != len(labels):
            raise ValueError("frames and labels differ in length")
        self.frames = frames
        self.labels = labels
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.stream = stream
        self.augmentation = augmentation
        self.events = events
        self.reframe = reframe
        self.sensor_size = sensor_size
        self.epoch = 0
        if augmentation is not None and augmentation.needs_events and (
                events is None or reframe is None or sensor_size is None):
            raise ValueError(f"{augmentation.label()} needs the split's events and a reframe "
                             f"function")

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    def __len__(self) -> int:
        n = self.num_samples
        if self.shuffle and n >= self.batch_size:
            # Training drops the ragged last batch: a batch of 1 breaks batch norm.
            return n // self.batch_size
        return max(1, -(-n // self.batch_size)) if n else 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (its shuffle and augmentation draws)."""
        self.epoch = epoch

    def _generators(self, epoch: int) -> tuple[torch.Generator, np.random.Generator]:
        entropy = [self.seed, epoch] + ([self.stream] if self.stream else [])
        seq = np.random.SeedSequence(entropy)
        torch_seed, np_seed = seq.generate_state(2, dtype=np.uint64)
        gen = torch.Generator().manual_seed(int(torch_seed) & ((1 << 63) - 1))
        return gen, np.random.default_rng(int(np_seed))

    def epoch_frames(self, epoch: int, rng: np.random.Generator) -> torch.Tensor:
        """This epoch's frames: re-binned from augmented events for event-level levels."""
        aug = self.augmentation
        if aug is None or not aug.needs_events:
            return self.frames
        assert self.events is not None and self.reframe is not None and self.sensor_size
        transform = aug.event_transform(self.sensor_size, rng)
        assert transform is not None
        # tonic's transforms copy before they modify, so the stored events stay intact.
        many = getattr(transform, "apply_all", None)
        augmented = many(self.events) if many else [transform(ev) for ev in self.events]
        counts = self.reframe(augmented)
        return torch.from_numpy(np.clip(counts, 0, 255).astype(np.uint8))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self.epoch
        self.epoch += 1
        gen, rng = self._generators(epoch)
        frames = self.epoch_frames(epoch, rng)
        n = self.num_samples
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            # [B, T, ...] -> time-major [T, B, ...]
            x = frames[idx].to(torch.float32).transpose(0, 1).contiguous()
            if self.augmentation is not None and self.augmentation.stage == "frame":
                x = self.augmentation.frame_transform(x, gen)
            yield x, self.labels[idx]

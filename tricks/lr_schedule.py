"""Factor ``lr_schedule``: the learning-rate schedule, one torch scheduler stepped once per epoch.

``build(optimizer, epochs=E, start_epoch=k)`` returns torch's scheduler for the level, already
advanced to epoch ``k`` by stepping it ``k`` times. The training loop builds a new one after an
optimizer switch that way, so the schedule continues where it was, applied to the new
optimizer's base learning rate (``lr(e) = base_new * f(e)``, the same multiplier ``f``).

With base rate ``b`` and ``E`` epochs, the rate in epoch ``e`` (0-based) is:

- ``constant``: ``b``
- ``step``: ``b * gamma ** (e // s)``, ``s`` = step_size epochs
- ``cosine``: ``b * (1 + cos(pi e / E)) / 2``
- ``exponential``: ``b * gamma ** e``
- ``warmup-cosine``: ``b (e + 1) / (w + 1)`` for ``e < w``, then
  ``b (1 + cos(pi (e - w) / (E - w))) / 2``
- ``linear-decay``: ``b (1 - e / E)`` (reaching zero at the end of training)
- ``one-cycle``: torch's OneCycleLR with ``max_lr = b``, ``total_steps = E``, cosine annealing,
  momentum not cycled (the optimizer level owns momentum)
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import ClassVar

import torch
from torch.optim import lr_scheduler

from tricks._registry import Level

__all__ = ["DEFAULT", "LEVELS", "Constant", "Cosine", "Exponential", "LRSchedule",
           "LinearDecay", "OneCycle", "Step", "WarmupCosine", "epochs_of"]

DEFAULT = "constant"


def epochs_of(amount: int | float, epochs: int) -> int:
    """An amount of epochs given as a fraction (float < 1) or a count (int): the count."""
    if isinstance(amount, int):
        return amount
    return math.floor(amount * epochs + 0.5)


@dataclasses.dataclass(frozen=True)
class LRSchedule(Level):
    factor: ClassVar[str] = "lr_schedule"

    def make(self, optimizer: torch.optim.Optimizer, epochs: int) -> lr_scheduler.LRScheduler:
        """torch's scheduler at epoch 0 (subclasses implement this)."""
        raise NotImplementedError

    def build(self, optimizer: torch.optim.Optimizer, *, epochs: int,
              start_epoch: int = 0) -> lr_scheduler.LRScheduler:
        """The scheduler advanced to ``start_epoch``: the rate in the optimizer is ``f(start)``."""
        if epochs < 1:
            raise ValueError(f"a schedule needs at least one epoch, got {epochs}")
        with warnings.catch_warnings():
            # Advancing a fresh scheduler before any optimizer step is intended here; torch
            # warns about the order, and SequentialLR about its own internal step(0).
            warnings.simplefilter("ignore", UserWarning)
            scheduler = self.make(optimizer, epochs)
            for _ in range(start_epoch):
                scheduler.step()
        return scheduler


def _fraction_or_count(level: LRSchedule, param: str, value: int | float) -> None:
    if isinstance(value, float) and not 0.0 <= value < 1.0:
        raise level.error(param, f"a float is a fraction of the epochs and must be in [0, 1), "
                                 f"got {value}; write a number of epochs as an integer")
    if isinstance(value, int) and value < 0:
        raise level.error(param, f"a number of epochs must be >= 0, got {value}")


@dataclasses.dataclass(frozen=True)
class Constant(LRSchedule):
    """The base rate in every epoch."""

    name: ClassVar[str] = "constant"
    summary: ClassVar[str] = "constant learning rate"

    def make(self, optimizer: torch.optim.Optimizer, epochs: int) -> lr_scheduler.LRScheduler:
        return lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


@dataclasses.dataclass(frozen=True)
class Step(LRSchedule):
    """StepLR: multiply by ``gamma`` every ``step_size`` epochs (the paper's authors' choice)."""

    name: ClassVar[str] = "step"
    summary: ClassVar[str] = "multiply by gamma every step_size epochs"
    param_help: ClassVar[dict[str, str]] = {
        "step_size": "float in (0,1): fraction of epochs; int >= 1: epochs",
        "gamma": "decay factor in (0, 1]"}
    step_size: int | float = 0.5
    gamma: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        _fraction_or_count(self, "step_size", self.step_size)
        if self.step_size == 0:
            raise self.error("step_size", "must be > 0")
        if not 0.0 < self.gamma <= 1.0:
            raise self.error("gamma", f"must be in (0, 1], got {self.gamma}")

    def make(self, optimizer: torch.optim.Optimizer, epochs: int) -> lr_scheduler.LRScheduler:
        size = max(1, epochs_of(self.step_size, epochs))
        return lr_scheduler.StepLR(optimizer, step_size=size, gamma=self.gamma)


@dataclasses.dataclass(frozen=True)
class Cosine(LRSchedule):
    """Cosine annealing from the base rate to zero over the run."""

    name: ClassVar[str] = "cosine"
    summary: ClassVar[str] = "cosine annealing to zero over the run"

    def make(self, optimizer: torch.optim.Optimizer, epochs: int) -> lr_scheduler.LRScheduler:
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=0.0)


@dataclasses.dataclass(frozen=True)
class Exponential(LRSchedule):
    """Multiply by ``gamma`` every epoch."""

    name: ClassVar[str] = "exponential"
    summary: ClassVar[str] = "multiply by gamma every epoch"
    always_show: ClassVar[tuple[str, ...]] = ("gamma",)
    param_help: ClassVar[dict[str, str]] = {"gamma": "decay factor per epoch in (0, 1]"}
    gamma: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.gamma <= 1.0:
            raise self.error("gamma", f"must be in (0, 1], got {self.gamma}")

    def make(self, optimizer: torch.optim.Optimizer, epochs: int) -> lr_scheduler.LRScheduler:
        return lr_scheduler.ExponentialLR(optimizer, gamma=self.gamma)


@dataclasses.dataclass(frozen=True)
class WarmupCosine(LRSchedule):
    """Linear warm-up over ``warmup`` epochs, then cosine annealing to zero.

    The warm-up length is at most ``epochs - 1`` so the cosine part has at least one epoch.
    """

    name: ClassVar[str] = "warmup-cosine"
    summary: ClassVar[str] = "linear warm-up, then cosine annealing to zero"
    param_help: ClassVar[dict[str, str]] = {
        "warmup": "float in [0,1): fraction of epochs; int >= 0: epochs"}
    warmup: int | float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        _fraction_or_count(self, "warmup", self.warmup)

    def make(self, optimizer: torch.optim.Optimizer, epochs: int) -> lr_scheduler.LRScheduler:
        w = min(max(1, epochs_of(self.warmup, epochs)) if self.warmup else 0, epochs - 1)
        cosine = lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs - w, eta_min=0.0)
        if w == 0:
            return cosine
        warm = lr_scheduler.LinearLR(optimizer, start_factor=1.0 / (w + 1), end_factor=1.0,
                                     total_iters=w)
        return lr_scheduler.SequentialLR(optimizer, [warm, cosine], milestones=[w])


@dataclasses.dataclass(frozen=True)
class LinearDecay(LRSchedule):
    """Linear decay from the base rate to zero at the end of training."""

    name: ClassVar[str] = "linear-decay"
    summary: ClassVar[str] = "linear decay to zero at the end of training"

    def make(self, optimizer: torch.optim.Optimizer, epochs: int) -> lr_scheduler.LRScheduler:
        return lr_scheduler.LinearLR(optimizer, start_factor=1.0, end_factor=0.0,
                                     total_iters=epochs)


@dataclasses.dataclass(frozen=True)
class OneCycle(LRSchedule):
    """1cycle (Smith & Topin 2019), torch's OneCycleLR with the base rate as its peak."""

    name: ClassVar[str] = "one-cycle"
    summary: ClassVar[str] = "1cycle: warm up to the base rate, then anneal far below it"
    param_help: ClassVar[dict[str, str]] = {
        "pct_start": "fraction of the run spent increasing the rate, in (0, 1)",
        "div_factor": "initial rate = base / div_factor (> 1)",
        "final_div_factor": "final rate = initial / final_div_factor (> 1)"}
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1.0e4

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.pct_start < 1.0:
            raise self.error("pct_start", f"must be in (0, 1), got {self.pct_start}")
        for param in ("div_factor", "final_div_factor"):
            if not getattr(self, param) > 1.0:
                raise self.error(param, f"must be > 1, got {getattr(self, param)}")

    def make(self, optimizer: torch.optim.Optimizer, epochs: int) -> lr_scheduler.LRScheduler:
        max_lr = [g["lr"] for g in optimizer.param_groups]
        return lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=epochs,
                                       pct_start=self.pct_start, anneal_strategy="cos",
                                       cycle_momentum=False, div_factor=self.div_factor,
                                       final_div_factor=self.final_div_factor)


LEVELS: dict[str, type[LRSchedule]] = {cls.name: cls for cls in (
    Constant, Step, Cosine, Exponential, WarmupCosine, LinearDecay, OneCycle)}

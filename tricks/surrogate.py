"""Factor ``surrogate``: the spike function's backward.

Forward is always the Heaviside of ``x = U - threshold`` (a spike iff ``U > threshold``, as
snntorch). Each level builds a :class:`models.surrogates.SpikeFunction` whose backward multiplies
the incoming gradient by the surrogate derivative ``g(x)`` below; ``alpha`` is the sharpness
(larger is sharper), except for ``rectangle`` whose parameter is its width.

| level | g(x) | reference |
|---|---|---|
| rectangle(width=0.8) | 1/w if abs(x) < w/2 | Wu et al. 2018 (the paper's authors' choice) |
| atan(alpha=2) | (alpha/2) / (1 + (pi/2 alpha x)^2) | Fang et al. 2021 (snntorch default) |
| sigmoid(alpha=4) | alpha s (1 - s), s = sigmoid(alpha x) | Zenke & Vogels 2021 |
| fast-sigmoid(alpha=25) | 1 / (1 + alpha abs(x))^2 | SuperSpike, Zenke & Ganguli 2018 |
| triangle(alpha=1) | alpha max(0, 1 - alpha abs(x)) | Esser et al. 2016 |
| erf(alpha=2) | alpha/sqrt(pi) exp(-(alpha x)^2) | Gaussian window |
| piecewise-exp(alpha=2) | alpha/2 exp(-alpha abs(x)) | SpikingJelly PiecewiseExp |
| ste | 1 | Bengio et al. 2013 |
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

from models import surrogates as sg
from tricks._registry import Level

DEFAULT = "atan"

__all__ = [
    "ATan",
    "DEFAULT",
    "Erf",
    "FastSigmoid",
    "LEVELS",
    "PiecewiseExp",
    "Rectangle",
    "STE",
    "Sigmoid",
    "Surrogate",
    "Triangle",
]


@dataclasses.dataclass(frozen=True)
class Surrogate(Level):
    """Base of the surrogate levels. ``spike_fn()`` builds a fresh module each call."""

    factor: ClassVar[str] = "surrogate"
    module: ClassVar[type[sg.SpikeFunction]]

    def spike_fn(self) -> sg.SpikeFunction:
        """A module mapping x = U - threshold to spikes {0., 1.} with this surrogate backward."""
        params = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return self.module(**params)


def _positive(level: Level, param: str) -> None:
    value = getattr(level, param)
    if not (math.isfinite(value) and value > 0):
        raise level.error(param, f"must be a positive finite number, got {value!r}")


@dataclasses.dataclass(frozen=True)
class _Alpha(Surrogate):
    param_help: ClassVar[dict[str, str]] = {"alpha": "sharpness (larger: narrower, taller)"}
    alpha: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "alpha")


@dataclasses.dataclass(frozen=True)
class Rectangle(Surrogate):
    name: ClassVar[str] = "rectangle"
    summary: ClassVar[str] = "rectangular window 1/width on |x| < width/2 (Wu et al. 2018)"
    param_help: ClassVar[dict[str, str]] = {"width": "window width (height is 1/width)"}
    module: ClassVar[type[sg.SpikeFunction]] = sg.Rectangle
    width: float = 0.8

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "width")



@dataclasses.dataclass(frozen=True)
class ATan(_Alpha):
    name: ClassVar[str] = "atan"
    summary: ClassVar[str] = "arc-tangent, (alpha/2)/(1+(pi/2 alpha x)^2) (Fang et al. 2021)"
    module: ClassVar[type[sg.SpikeFunction]] = sg.ATan
    alpha: float = 2.0


@dataclasses.dataclass(frozen=True)
class Sigmoid(_Alpha):
    name: ClassVar[str] = "sigmoid"
    summary: ClassVar[str] = "logistic, alpha s(1-s) with s = sigmoid(alpha x)"
    module: ClassVar[type[sg.SpikeFunction]] = sg.Sigmoid
    alpha: float = 4.0


@dataclasses.dataclass(frozen=True)
class FastSigmoid(_Alpha):
    name: ClassVar[str] = "fast-sigmoid"
    summary: ClassVar[str] = "SuperSpike fast sigmoid, 1/(1+alpha|x|)^2 (Zenke & Ganguli 2018)"
    module: ClassVar[type[sg.SpikeFunction]] = sg.FastSigmoid
    alpha: float = 25.0


@dataclasses.dataclass(frozen=True)
class Triangle(_Alpha):
    name: ClassVar[str] = "triangle"
    summary: ClassVar[str] = "triangle, alpha max(0, 1 - alpha|x|) (Esser et al. 2016)"
    module: ClassVar[type[sg.SpikeFunction]] = sg.Triangle
    alpha: float = 1.0


@dataclasses.dataclass(frozen=True)
class Erf(_Alpha):
    name: ClassVar[str] = "erf"
    summary: ClassVar[str] = "Gaussian window alpha/sqrt(pi) exp(-(alpha x)^2), erf primitive"
    module: ClassVar[type[sg.SpikeFunction]] = sg.Erf
    alpha: float = 2.0


@dataclasses.dataclass(frozen=True)
class PiecewiseExp(_Alpha):
    name: ClassVar[str] = "piecewise-exp"
    summary: ClassVar[str] = "piecewise exponential, alpha/2 exp(-alpha|x|)"
    module: ClassVar[type[sg.SpikeFunction]] = sg.PiecewiseExp
    alpha: float = 2.0


@dataclasses.dataclass(frozen=True)
class STE(Surrogate):
    name: ClassVar[str] = "ste"
    summary: ClassVar[str] = "straight-through: gradient 1 everywhere (Bengio et al. 2013)"
    module: ClassVar[type[sg.SpikeFunction]] = sg.STE


LEVELS: dict[str, type[Surrogate]] = {
    cls.name: cls
    for cls in (Rectangle, ATan, Sigmoid, FastSigmoid, Triangle, Erf, PiecewiseExp, STE)
}

"""Factor ``normalization``: which normalization layer the model is built with.

All BN kinds take time-major ``[T, B, C, ...]`` (see :mod:`models.norm` for the formulas):

* ``none`` — no normalization layer.
* ``bn`` — one BatchNorm over all steps, time folded into the batch.
* ``bntt`` — BN through time: statistics and affine parameters per step (Kim & Panda 2021).
* ``tdbn`` — threshold-dependent BN: normalized to ``alpha * V_th`` (Zheng et al., AAAI 2021).
* ``tebn`` — temporal effective BN: shared statistics, a learnable scale per step
  (Duan et al., NeurIPS 2022).

Every BN kind honours the ``shift_bn`` mode (power-of-two scales) passed as ``shift``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

from torch import nn

from models.norm import NormKind, TemporalBatchNorm
from tricks._registry import Level

DEFAULT = "bn"

__all__ = ["BN", "BNTT", "DEFAULT", "LEVELS", "TEBN", "TDBN", "NoNorm", "Normalization"]


@dataclasses.dataclass(frozen=True)
class Normalization(Level):
    factor: ClassVar[str] = "normalization"
    kind: ClassVar[NormKind | None] = None

    def make(self, num_features: int, *, time_steps: int, spatial: bool, threshold: float,
             momentum: float, shift: str) -> nn.Module | None:
        """A module normalizing time-major input [T, B, C, ...], or None for no normalization.

        ``shift`` is the shift_bn mode ("off", "on", "inference").
        """
        if self.kind is None:
            return None
        return TemporalBatchNorm(num_features, kind=self.kind, time_steps=time_steps,
                                 factor=self._factor(threshold), momentum=momentum,
                                 shift=shift)  # type: ignore[arg-type]

    def _factor(self, threshold: float) -> float:
        return 1.0


@dataclasses.dataclass(frozen=True)
class NoNorm(Normalization):
    name: ClassVar[str] = "none"
    summary: ClassVar[str] = "no normalization layer"


@dataclasses.dataclass(frozen=True)
class BN(Normalization):
    name: ClassVar[str] = "bn"
    summary: ClassVar[str] = "BatchNorm over all time steps (time folded into the batch)"
    kind: ClassVar[NormKind | None] = "bn"


@dataclasses.dataclass(frozen=True)
class BNTT(Normalization):
    name: ClassVar[str] = "bntt"
    summary: ClassVar[str] = "BN through time: statistics and affine per step (Kim & Panda 2021)"
    kind: ClassVar[NormKind | None] = "bntt"


@dataclasses.dataclass(frozen=True)
class TDBN(Normalization):
    name: ClassVar[str] = "tdbn"
    summary: ClassVar[str] = "threshold-dependent BN, normalized to alpha*V_th (Zheng et al. 2021)"
    param_help: ClassVar[dict[str, str]] = {"alpha": "target scale in units of the threshold"}
    kind: ClassVar[NormKind | None] = "tdbn"
    alpha: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.alpha) and self.alpha > 0):
            raise self.error("alpha", f"must be a positive finite number, got {self.alpha!r}")

    def _factor(self, threshold: float) -> float:
        return self.alpha * threshold


@dataclasses.dataclass(frozen=True)
class TEBN(Normalization):
    name: ClassVar[str] = "tebn"
    summary: ClassVar[str] = ("temporal effective BN: shared statistics, learnable scale per "
                              "step (Duan et al. 2022)")
    kind: ClassVar[NormKind | None] = "tebn"


LEVELS: dict[str, type[Normalization]] = {
    cls.name: cls for cls in (NoNorm, BN, BNTT, TDBN, TEBN)}

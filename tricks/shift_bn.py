"""Factor ``shift_bn``: power-of-two BN scales, in training or at inference only.

``AP2(x) = sign(x) * 2^round(log2|x|)`` (Hubara et al. 2016), straight-through gradient:

* ``off`` — float BN.
* ``on`` — the per-channel ``1/sqrt(var + eps)`` and ``gamma`` are each rounded by AP2 in training
  and inference, so inference is one shift and one add per channel.
* ``inference`` — float BN in training; for evaluation the whole per-channel scale is rounded.

Whatever the level, a run whose model has BN also reports ``test_acc_shift_bn`` through the
post-hoc conversion :func:`harness.run.build.to_shift_bn`.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from tricks._registry import Level

DEFAULT = "off"

__all__ = ["DEFAULT", "LEVELS", "Inference", "Off", "On", "ShiftBN"]


@dataclasses.dataclass(frozen=True)
class ShiftBN(Level):
    factor: ClassVar[str] = "shift_bn"
    #: "off" | "on" (AP2 in training and inference) | "inference" (float training, AP2 at eval)
    mode: ClassVar[str] = "off"


@dataclasses.dataclass(frozen=True)
class Off(ShiftBN):
    name: ClassVar[str] = "off"
    summary: ClassVar[str] = "float BN scales"
    mode: ClassVar[str] = "off"


@dataclasses.dataclass(frozen=True)
class On(ShiftBN):
    name: ClassVar[str] = "on"
    summary: ClassVar[str] = "AP2-rounded gamma and 1/sqrt(var+eps) in training and inference"
    mode: ClassVar[str] = "on"


@dataclasses.dataclass(frozen=True)
class Inference(ShiftBN):
    name: ClassVar[str] = "inference"
    summary: ClassVar[str] = "float BN in training, power-of-two scales at evaluation"
    mode: ClassVar[str] = "inference"


LEVELS: dict[str, type[ShiftBN]] = {cls.name: cls for cls in (Off, On, Inference)}

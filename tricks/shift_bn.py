"""Factor ``shift_bn``: power-of-two BN scales, in training or at inference only. (Contract.)"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from tricks._registry import Level

DEFAULT = "off"


@dataclasses.dataclass(frozen=True)
class ShiftBN(Level):
    factor: ClassVar[str] = "shift_bn"
    #: "off" | "on" (AP2 in training and inference) | "inference" (float training, AP2 at eval)
    mode: ClassVar[str] = "off"


LEVELS: dict[str, type[ShiftBN]] = {}

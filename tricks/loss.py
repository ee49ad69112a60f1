"""Factor ``loss``: readout and loss. (Contract.)"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from tricks._registry import Level

DEFAULT = "mse-rate"


@dataclasses.dataclass(frozen=True)
class Loss(Level):
    factor: ClassVar[str] = "loss"


LEVELS: dict[str, type[Loss]] = {}

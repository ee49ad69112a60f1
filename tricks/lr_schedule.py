"""Factor ``lr_schedule``: learning-rate scheduler construction. (Contract.)"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from tricks._registry import Level

DEFAULT = "constant"


@dataclasses.dataclass(frozen=True)
class LRSchedule(Level):
    factor: ClassVar[str] = "lr_schedule"


LEVELS: dict[str, type[LRSchedule]] = {}

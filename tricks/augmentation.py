"""Factor ``augmentation``: train-time event / frame transforms. (Contract.)"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from tricks._registry import Level

DEFAULT = "none"


@dataclasses.dataclass(frozen=True)
class Augmentation(Level):
    factor: ClassVar[str] = "augmentation"


LEVELS: dict[str, type[Augmentation]] = {}

"""Factor ``optimizer``: optimizer construction and switches mid-training. (Contract.)"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from tricks._registry import Level

DEFAULT = "adam"


@dataclasses.dataclass(frozen=True)
class Optimizer(Level):
    factor: ClassVar[str] = "optimizer"


LEVELS: dict[str, type[Optimizer]] = {}

"""Factor ``normalization``: which normalization layer the model is built with. (Contract.)"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from torch import nn

from tricks._registry import Level

DEFAULT = "bn"


@dataclasses.dataclass(frozen=True)
class Normalization(Level):
    factor: ClassVar[str] = "normalization"

    def make(self, num_features: int, *, time_steps: int, spatial: bool, threshold: float,
             momentum: float, shift: str) -> nn.Module | None:
        """A module normalizing time-major input [T, B, C, ...], or None for no normalization.

        ``shift`` is the shift_bn mode ("off", "on", "inference").
        """
        raise NotImplementedError


LEVELS: dict[str, type[Normalization]] = {}

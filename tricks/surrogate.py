"""Factor ``surrogate``: the spike function's backward. (Contract; levels to be added.)

Forward is the Heaviside of x = U - threshold (a spike iff U > threshold, as snntorch).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from torch import nn

from tricks._registry import Level

DEFAULT = "atan"


@dataclasses.dataclass(frozen=True)
class Surrogate(Level):
    factor: ClassVar[str] = "surrogate"

    def spike_fn(self) -> nn.Module:
        """A module mapping x = U - threshold to spikes {0., 1.} with this surrogate backward."""
        raise NotImplementedError


LEVELS: dict[str, type[Surrogate]] = {}

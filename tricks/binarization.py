"""Factor ``binarization``: how synaptic weights are quantized. (Contract; levels to be added.)

A level gives each synaptic layer a weight quantizer module (or None for full precision) by
the layer's role ("first", "hidden", "last"), and may act on the model after every optimizer
step (ste-clip clips latent weights).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from torch import nn

from tricks._registry import Level

DEFAULT = "fp32"


@dataclasses.dataclass(frozen=True)
class Binarization(Level):
    factor: ClassVar[str] = "binarization"
    #: Whether the quantized forward weights are binary (drives memory accounting and Bop).
    binary: ClassVar[bool] = True
    keep_first_last_fp: bool = False

    def quantizer(self, role: str) -> nn.Module | None:
        """The weight quantizer for a layer of this role, or None for full precision."""
        raise NotImplementedError

    def after_step(self, model: nn.Module) -> None:
        """Called after every optimizer step (e.g. clip latent weights)."""


LEVELS: dict[str, type[Binarization]] = {}

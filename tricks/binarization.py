"""Factor ``binarization``: how synaptic weights are quantized.

A level gives each synaptic layer a weight quantizer module (or None for full precision) by the
layer's role (``first``, ``hidden``, ``last``), and may act on the model after every optimizer
step. By default every synaptic layer is binarized, the first conv and the last FC included (as
in He et al.'s code). Every level takes ``full_precision``, the layers kept in full precision:
``none`` (default), ``first``, ``last`` or ``first-last`` (the usual convention of BNN papers);
``keep_first_last_fp: true`` is the older spelling of ``first-last``.

* ``fp32`` — no quantization.
* ``ste`` — forward ``sign(w)`` with ``sign(0) = +1`` (exactly ±1), backward identity.
* ``ste-clip`` — same forward; gradient cancelled where ``|w| > 1`` and latent weights clipped to
  [-1, 1] after every optimizer step (BinaryConnect, Courbariaux et al. 2015; Hubara et al. 2016).
* ``xnor`` — ``alpha * sign(W)``, ``alpha = mean |W|`` per output channel (Rastegari et al. 2016).

``ste`` and ``ste-clip`` layers multiply their output by the constant ``1/sqrt(fan_in)`` (see
:mod:`models.quantizers`): ±1 weights over hundreds of inputs otherwise saturate the neurons of
a layer that no BN follows (the last FC layer), which made fully binary nets fail to train.

Extension of the base API: ``binary_layers(model)`` yields the synaptic layers whose forward
weights are binary (used by ``after_step``, the sign-flip tracker and Bop).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import ClassVar, Literal

import torch
from torch import nn

from models.layers import _Synaptic
from models.quantizers import XNOR, SignSTE, SignSTEClip, WeightQuantizer
from tricks._registry import Level

DEFAULT = "fp32"

__all__ = ["DEFAULT", "FP32", "LEVELS", "STE", "STEClip", "Binarization", "XNORNet",
           "binary_layers"]

_ROLES = ("first", "hidden", "last")


def binary_layers(model: nn.Module) -> Iterator[_Synaptic]:
    """Synaptic layers of ``model`` whose forward weights are binarized."""
    for m in model.modules():
        if isinstance(m, _Synaptic) and m.binary:
            yield m


@dataclasses.dataclass(frozen=True)
class Binarization(Level):
    factor: ClassVar[str] = "binarization"
    #: Whether the quantized forward weights are binary (drives memory accounting and Bop).
    binary: ClassVar[bool] = True
    param_help: ClassVar[dict[str, str]] = {
        "keep_first_last_fp": "keep the first and the last synaptic layer in full precision",
        "full_precision": "layers kept in full precision: none | first | last | first-last"}
    keep_first_last_fp: bool = False
    full_precision: Literal["none", "first", "last", "first-last"] = "none"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.keep_first_last_fp and self.full_precision not in ("none", "first-last"):
            raise self.error("full_precision", f"'{self.full_precision}' contradicts "
                                               f"keep_first_last_fp: true (first-last)")

    def full_precision_roles(self) -> frozenset[str]:
        """The layer roles this level keeps in full precision."""
        spec = "first-last" if self.keep_first_last_fp else self.full_precision
        return frozenset() if spec == "none" else frozenset(spec.split("-"))

    def _make(self) -> WeightQuantizer:
        raise NotImplementedError

    def quantizer(self, role: str) -> nn.Module | None:
        """The weight quantizer for a layer of this role, or None for full precision."""
        if role not in _ROLES:
            raise ValueError(f"layer role must be one of {_ROLES}, got {role!r}")
        if not self.binary or role in self.full_precision_roles():
            return None
        return self._make()

    def after_step(self, model: nn.Module) -> None:
        """Called after every optimizer step (e.g. clip latent weights)."""


@dataclasses.dataclass(frozen=True)
class FP32(Binarization):
    name: ClassVar[str] = "fp32"
    summary: ClassVar[str] = "full-precision weights (the reference)"
    binary: ClassVar[bool] = False


@dataclasses.dataclass(frozen=True)
class STE(Binarization):
    name: ClassVar[str] = "ste"
    summary: ClassVar[str] = "sign(w) forward (±1), identity gradient (straight-through)"

    def _make(self) -> WeightQuantizer:
        return SignSTE()


@dataclasses.dataclass(frozen=True)
class STEClip(Binarization):
    name: ClassVar[str] = "ste-clip"
    summary: ClassVar[str] = ("sign(w) forward, gradient cancelled where |w| > 1, latent "
                              "weights clipped to [-1, 1] (BinaryConnect)")

    def _make(self) -> WeightQuantizer:
        return SignSTEClip()

    def after_step(self, model: nn.Module) -> None:
        with torch.no_grad():
            for layer in binary_layers(model):
                layer.weight.clamp_(-1.0, 1.0)


@dataclasses.dataclass(frozen=True)
class XNORNet(Binarization):
    name: ClassVar[str] = "xnor"
    summary: ClassVar[str] = "alpha * sign(W), alpha = mean |W| per output channel (XNOR-Net)"

    def _make(self) -> WeightQuantizer:
        return XNOR()


LEVELS: dict[str, type[Binarization]] = {cls.name: cls for cls in (FP32, STE, STEClip, XNORNet)}

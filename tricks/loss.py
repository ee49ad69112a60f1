"""Factor ``loss``: the readout and the loss on the network's output ``out [T, B, K]``.

Each level says which readout the model must build (``spike``: the last layer is a spiking
LIF layer and ``out`` holds its spikes; ``membrane``: a non-spiking readout and ``out`` holds
its membrane potential), computes ``loss(out, y)`` and gives ``logits(out) [B, K]`` whose
argmax is the prediction.

Formulas (``s_t`` the output at step t, ``r = (1/T) sum_t s_t`` the rate, ``onehot(y)``):

- ``mse-rate``: ``mean_{b,k} (r - onehot(y))^2`` (He et al. 2025's choice). snntorch's
  ``mse_count_loss`` is ``T`` times this (it compares counts and divides by T once), so a
  given learning rate would mean something different with T; it is written out here.
- ``ce-rate``: ``(1/T) sum_t CE(s_t, y)`` — snntorch's ``ce_rate_loss``.
- ``ce-count``: ``CE(sum_t s_t, y)`` — snntorch's ``ce_count_loss``.
- ``ce-membrane``: ``CE((1/T) sum_t u_t, y)`` on the non-spiking readout's membrane.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import torch.nn.functional as F
from torch import Tensor

from tricks._registry import Level

__all__ = ["DEFAULT", "LEVELS", "CECount", "CEMembrane", "CERate", "Loss", "MSERate"]

DEFAULT = "mse-rate"


@dataclasses.dataclass(frozen=True)
class Loss(Level):
    factor: ClassVar[str] = "loss"
    #: What the network's last layer outputs for this loss.
    readout: ClassVar[Literal["spike", "membrane"]] = "spike"

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        """Scalar loss of ``out [T, B, K]`` against class indices ``y [B]``."""
        raise NotImplementedError

    def logits(self, out: Tensor) -> Tensor:
        """``[B, K]`` scores whose argmax is the predicted class."""
        return out.mean(0)


@dataclasses.dataclass(frozen=True)
class MSERate(Loss):
    """Mean output spike rate against the one-hot target, squared error."""

    name: ClassVar[str] = "mse-rate"
    summary: ClassVar[str] = "MSE of the mean output spike rate vs one-hot (default)"

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        rate = out.mean(0)
        return F.mse_loss(rate, F.one_hot(y, rate.shape[-1]).to(rate.dtype))


@dataclasses.dataclass(frozen=True)
class CERate(Loss):
    """Cross-entropy of the output spikes at every step, averaged over T (snntorch)."""

    name: ClassVar[str] = "ce-rate"
    summary: ClassVar[str] = "cross-entropy per time step on output spikes, mean over T"

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        from snntorch import functional as SF

        return SF.ce_rate_loss()(out, y)


@dataclasses.dataclass(frozen=True)
class CECount(Loss):
    """Cross-entropy of the output spike counts (snntorch)."""

    name: ClassVar[str] = "ce-count"
    summary: ClassVar[str] = "cross-entropy on output spike counts"

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        from snntorch import functional as SF

        return SF.ce_count_loss()(out, y)

    def logits(self, out: Tensor) -> Tensor:
        return out.sum(0)


@dataclasses.dataclass(frozen=True)
class CEMembrane(Loss):
    """Cross-entropy of the mean membrane potential of a non-spiking readout layer."""

    name: ClassVar[str] = "ce-membrane"
    summary: ClassVar[str] = "non-spiking readout, cross-entropy on its mean membrane"
    readout: ClassVar[Literal["spike", "membrane"]] = "membrane"

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(out.mean(0), y)


LEVELS: dict[str, type[Loss]] = {cls.name: cls for cls in (MSERate, CERate, CECount, CEMembrane)}


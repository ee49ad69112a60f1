"""Weight quantizers: modules applied to a synaptic layer's latent weight in every forward.

* :class:`SignSTE` — ``sign(w)`` with ``sign(0) = +1`` (forward weights exactly ±1); backward
  identity (straight-through; Bengio et al. 2013).
* :class:`SignSTEClip` — same forward; backward cancels the gradient where ``|w| > 1``
  (BinaryConnect, Courbariaux et al. 2015; BNN, Hubara et al. 2016). The latent weights are
  clipped to [-1, 1] after each optimizer step by the ``ste-clip`` trick, not here.
* :class:`XNOR` — ``alpha * sign(w)`` with ``alpha = mean |w|`` per output channel (XNOR-Net,
  Rastegari et al. 2016); sign with the clipped STE, gradient through ``alpha`` by autograd.

``binary`` says the deployed weights are one bit each (XNOR adds one float per output channel:
``scale_per_channel``). ``fixed_fan_in_scale`` asks the layer to multiply its output by
``1/sqrt(fan_in)``: ±1 weights over hundreds of inputs would otherwise drive currents far beyond
the threshold where no normalization follows (the last FC layer). The factor is a constant of
the architecture, equivalent to scaling the neuron threshold, so it costs no stored bits.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["SignSTE", "SignSTEClip", "WeightQuantizer", "XNOR", "sign_pm1"]


def sign_pm1(w: Tensor) -> Tensor:
    """``sign`` with ``sign(0) = +1``: values exactly in {-1, +1}."""
    return torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: Tensor, clip: bool) -> Tensor:  # type: ignore[override]
        if clip:
            ctx.save_for_backward(w)
        ctx.clip = clip
        return sign_pm1(w)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        if not ctx.clip:
            return grad, None
        (w,) = ctx.saved_tensors
        return grad * (w.abs() <= 1).to(grad.dtype), None


class WeightQuantizer(nn.Module):
    """Base class. ``forward(w)`` returns the weight the layer computes with."""

    binary: bool = True
    fixed_fan_in_scale: bool = False
    #: Whether one full-precision scale per output channel is deployed beside the bits.
    scale_per_channel: bool = False


class SignSTE(WeightQuantizer):
    fixed_fan_in_scale = True

    def forward(self, w: Tensor) -> Tensor:
        return _SignSTE.apply(w, False)


class SignSTEClip(WeightQuantizer):
    fixed_fan_in_scale = True

    def forward(self, w: Tensor) -> Tensor:
        return _SignSTE.apply(w, True)


class XNOR(WeightQuantizer):
    scale_per_channel = True

    def forward(self, w: Tensor) -> Tensor:
        alpha = w.abs().mean(dim=tuple(range(1, w.dim())), keepdim=True)
        return alpha * _SignSTE.apply(w, True)

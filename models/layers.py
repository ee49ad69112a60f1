"""Stateless time-major layers: synaptic conv / linear with a pluggable weight quantizer, pooling,
flattening. All take and return ``[T, B, ...]``.

Only the membrane recurrence is sequential; these layers may run over all steps at once (time
folded into the batch) or step by step. Linear layers always fold (one GEMM, 1.5-1.9x faster
here).

Convolutions on the CPU fold and work in the channels-last memory format (``channels_last``,
default on): the conv writes channels-last output, and the BN, LIF and pooling after it keep
that layout (their buffers follow their input's strides), so every one of them runs its
channels-last kernel, vectorized over channels. On the 2-core CPU this made the paper-sized
training step 1.16-1.24x faster and the default one 1.2-1.3x (``benchmarks/step_throughput.py``;
BN forward+backward alone 1.3x, max pooling 2.9x). The conv network's ``Flatten`` orders
features ``(H, W, C)``, which is a view of a channels-last map rather than two layout copies
(the first FC layer's weight columns are permuted to match, :func:`hwc_columns`). With
``channels_last`` off, :class:`SynapticConv` takes ``per_step`` and :func:`conv_per_step_default`
holds the rule measured for the contiguous (NCHW) layout, where
folding was slower for few input channels on large maps. Other devices fold in NCHW (folding is
the faster choice on GPUs).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models import fused
from models.quantizers import WeightQuantizer

__all__ = [
    "Flatten",
    "Role",
    "SynapticConv",
    "SynapticLinear",
    "TimePool",
    "conv_per_step_default",
    "hwc_columns",
]

Role = Literal["first", "hidden", "last"]


def conv_per_step_default(in_channels: int, height: int, width: int) -> bool:
    """Whether a contiguous-layout (NCHW) conv runs step by step rather than folded, from timings
    on this 2-core CPU; not used when the conv is channels-last (the CPU default).

    Few input channels over a large map (the 2-channel event input at 34x34) ran faster step by
    step; everything else (17x17 input, wider layers) ran faster folded.
    """
    return in_channels <= 4 and height * width > 600


class _Synaptic(nn.Module):
    """Shared parts: latent weight, quantizer, role, the fixed fan-in scale."""

    weight: nn.Parameter

    def _setup(self, quantizer: WeightQuantizer | None, role: Role, fan_in: int) -> None:
        if role not in ("first", "hidden", "last"):
            raise ValueError(f"layer role must be first, hidden or last, got {role!r}")
        self.role = role
        self.weight_quantizer = quantizer
        self.fan_in = fan_in
        # A constant of the architecture (equivalent to a threshold scale), not a weight.
        self.out_scale = (1.0 / math.sqrt(fan_in)
                          if quantizer is not None and quantizer.fixed_fan_in_scale else 1.0)
        # Kaiming-uniform, as torch's own Conv2d / Linear initialise.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    @property
    def binary(self) -> bool:
        return self.weight_quantizer is not None and self.weight_quantizer.binary

    def effective_weight(self) -> Tensor:
        """The weight the forward computes with (quantized when a quantizer is set)."""
        w = self.weight
        return self.weight_quantizer(w) if self.weight_quantizer is not None else w


class SynapticConv(_Synaptic):
    """Bias-free 2-D convolution (stride 1) on ``[T, B, C, H, W]``.

    ``padding``: zeros on each side; None: ``kernel_size // 2`` ("same": H, W kept). He et al.'s
    code pads nothing (0: H and W shrink by ``kernel_size - 1``).

    On the CPU: folded and channels-last when ``channels_last`` (default), else step by step
    when ``per_step``, else folded. Elsewhere: folded. Every path computes the same convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *,
                 quantizer: WeightQuantizer | None = None, role: Role = "hidden",
                 per_step: bool = False, channels_last: bool = True,
                 padding: int | None = None) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        if padding is not None and padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        self.in_channels, self.out_channels, self.kernel_size = (in_channels, out_channels,
                                                                 kernel_size)
        self.padding = kernel_size // 2 if padding is None else padding
        self.per_step = per_step
        self.channels_last = channels_last
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size,
                                               kernel_size))
        self._setup(quantizer, role, in_channels * kernel_size * kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        w = self.effective_weight()
        if self.out_scale != 1.0:
            w = w * self.out_scale
        if x.device.type == "cpu":
            if self.channels_last:
                # Folded, channels-last in and out, so the BN, pooling and LIF after it run
                # their channels-last CPU kernels too (module docstring).
                xf = x.flatten(0, 1)
                if not xf.is_contiguous(memory_format=torch.channels_last):
                    xf = xf.contiguous(memory_format=torch.channels_last)
                w = w.contiguous(memory_format=torch.channels_last)
                return F.conv2d(xf, w, padding=self.padding).unflatten(0, x.shape[:2])
            if self.per_step:
                return torch.stack([F.conv2d(xt, w, padding=self.padding)
                                    for xt in x.unbind(0)])
        return F.conv2d(x.flatten(0, 1), w, padding=self.padding).unflatten(0, x.shape[:2])

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"padding={self.padding}, role={self.role}, channels_last={self.channels_last}, "
                f"per_step={self.per_step}"
                + (f", out_scale={self.out_scale:.4g}" if self.out_scale != 1.0 else ""))


class SynapticLinear(_Synaptic):
    """Bias-free linear layer on ``[T, B, F]``, time folded into the batch."""

    def __init__(self, in_features: int, out_features: int, *,
                 quantizer: WeightQuantizer | None = None, role: Role = "hidden") -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self._setup(quantizer, role, in_features)

    def forward(self, x: Tensor) -> Tensor:
        w = self.effective_weight()
        if self.out_scale != 1.0:
            w = w * self.out_scale
        return F.linear(x, w)

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, role={self.role}"
                + (f", out_scale={self.out_scale:.4g}" if self.out_scale != 1.0 else ""))


class _MaxPool2(torch.autograd.Function):
    """``F.max_pool2d(x, 2)`` of a channels-last CPU map through the fused kernel
    (:mod:`models.fused`): the same outputs and gradients, less memory traffic."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        y, where = fused.kernels().maxpool2(x)
        ctx.save_for_backward(where)
        ctx.shape = x.shape
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor) -> Tensor:  # type: ignore[override]
        (where,) = ctx.saved_tensors
        return fused.kernels().maxpool2_grad(g, where, ctx.shape)


def _max_pool(x: Tensor, size: int) -> Tensor:
    if size == 2 and x.device.type == "cpu":
        kernels = fused.kernels()
        if kernels is not None and kernels.pools(x):
            return _MaxPool2.apply(x)
    return F.max_pool2d(x, size)


class TimePool(nn.Module):
    """2x2 max or average pooling, time folded into the batch."""

    def __init__(self, kind: Literal["max", "avg"] = "max", size: int = 2) -> None:
        super().__init__()
        if kind not in ("max", "avg"):
            raise ValueError(f"pool must be 'max' or 'avg', got {kind!r}")
        self.kind, self.size = kind, size

    def forward(self, x: Tensor) -> Tensor:
        pool = _max_pool if self.kind == "max" else F.avg_pool2d
        return pool(x.flatten(0, 1), self.size).unflatten(0, x.shape[:2])

    def extra_repr(self) -> str:
        return f"{self.kind}, size={self.size}"


class Flatten(nn.Module):
    """``[T, B, ...] -> [T, B, features]``.

    ``order="chw"`` flattens in the logical order; ``"hwc"`` flattens a ``[T, B, C, H, W]`` map
    in ``(H, W, C)`` order, a view of the channels-last layout (and one copy in any other),
    on every device alike, so a model's weights mean the same wherever it runs.
    """

    def __init__(self, order: Literal["chw", "hwc"] = "chw",
                 map_shape: tuple[int, int, int] | None = None) -> None:
        super().__init__()
        if order not in ("chw", "hwc"):
            raise ValueError(f"Flatten order must be 'chw' or 'hwc', got {order!r}")
        self.order = order
        #: ``(C, H, W)`` of the maps it flattens, when known (the export puts the next layer's
        #: weight columns back in ``(C, H, W)`` order with it).
        self.map_shape = map_shape

    def forward(self, x: Tensor) -> Tensor:
        if self.order == "hwc" and x.dim() == 5:
            return x.permute(0, 1, 3, 4, 2).flatten(2)
        return x.flatten(2)

    def extra_repr(self) -> str:
        return f"order={self.order}"


def hwc_columns(weight: Tensor, channels: int, height: int, width: int) -> Tensor:
    """A weight ``[out, C*H*W]`` over ``(C, H, W)``-ordered features, its columns reordered for
    ``(H, W, C)``-ordered ones: ``hwc_columns(W) @ x_hwc == W @ x_chw``."""
    out = weight.shape[0]
    return weight.reshape(out, channels, height, width).permute(0, 2, 3, 1).reshape(out, -1)

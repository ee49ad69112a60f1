"""The spiking network container and the two architectures, ``conv`` and ``mlp``.

A :class:`Network` is a sequence of time-major modules ``[T, B, ...] -> [T, B, K]``. Its output is
the last LIF layer's spikes, or (``readout="membrane"``) the membrane of a non-spiking leaky
integrator as last layer. After a forward, :meth:`Network.spike_rates` gives the mean firing rate
per spiking layer and overall (spikes over neuron-steps, all layers pooled).

Default ``conv`` (the paper's authors' network, sizes configurable)::

    Conv(C->c1) -> norm -> LIF -> pool -> Conv(c1->c2) -> norm -> LIF -> pool
        -> FC(hidden) -> norm -> LIF -> FC(classes) -> LIF

``block_order`` moves the pooling: ``conv-norm-neuron-pool`` (above), ``conv-norm-pool-neuron``,
``conv-pool-norm-neuron``, or ``conv-norm-neuron-pool-norm-neuron`` (a norm and a LIF on each
side of the pooling: He et al.'s ``CBNPBN``). ``padding="valid"`` convolves without padding
(each conv shrinks H and W by ``kernel_size - 1``, as in He et al.'s code); ``output_norm`` puts
a norm between the last FC layer and its LIF (He et al.'s output block).

``mlp``: ``FC(hidden) -> norm -> LIF -> FC(hidden) -> norm -> LIF ->
FC(classes) -> LIF`` on the flattened input. Every synaptic layer is bias-free and has a role
(``first`` / ``hidden`` / ``last``) so a binarization level can keep the first and last layers in
full precision.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

from torch import Tensor, nn

from models.layers import (
    Flatten,
    Role,
    SynapticConv,
    SynapticLinear,
    TimePool,
    _Synaptic,
    conv_per_step_default,
)
from models.neurons import LIF, Reset
from models.norm import TemporalBatchNorm
from models.quantizers import WeightQuantizer
from models.surrogates import SpikeFunction

__all__ = [
    "BLOCK_ORDERS",
    "Network",
    "conv_network",
    "conv_output_size",
    "has_batch_norm",
    "mlp_network",
    "to_shift_bn",
]

BLOCK_ORDERS = ("conv-norm-neuron-pool", "conv-norm-pool-neuron", "conv-pool-norm-neuron",
                "conv-norm-neuron-pool-norm-neuron")

QuantizerFor = Callable[[Role], WeightQuantizer | None]
#: ``norm_for(num_features, spatial)`` -> a ``[T, B, C, ...]`` normalization module or None.
NormFor = Callable[[int, bool], nn.Module | None]


class Network(nn.Module):
    """Time-major spiking network: ``forward(x [T, B, ...]) -> [T, B, K]``."""

    def __init__(self, layers: Sequence[nn.Module], *, readout: str = "spike") -> None:
        super().__init__()
        if readout not in ("spike", "membrane"):
            raise ValueError(f"readout must be 'spike' or 'membrane', got {readout!r}")
        self.layers = nn.Sequential(*layers)
        self.readout = readout

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 3:
            raise ValueError(f"Network expects time-major input [T, B, ...], got "
                             f"{tuple(x.shape)}")
        return self.layers(x)

    def synaptic_layers(self) -> Iterator[tuple[str, _Synaptic]]:
        for name, m in self.named_modules():
            if isinstance(m, _Synaptic):
                yield name, m

    def neurons(self) -> Iterator[tuple[str, LIF]]:
        for name, m in self.named_modules():
            if isinstance(m, LIF) and m.fire:
                yield name, m

    def spike_rates(self) -> dict[str, float]:
        """Mean firing rate per spiking layer of the last forward, and ``overall``."""
        rates: dict[str, float] = {}
        spikes, steps = 0.0, 0
        for name, lif in self.neurons():
            if lif.spike_count is None:
                continue
            count = float(lif.spike_count)
            rates[name] = count / max(lif.neuron_steps, 1)
            spikes += count
            steps += lif.neuron_steps
        if steps:
            rates["overall"] = spikes / steps
        return rates


def _neuron(beta: float, threshold: float, reset: Reset,
            spike_fn: Callable[[], SpikeFunction]) -> LIF:
    return LIF(beta, threshold, reset, spike_fn())


def conv_network(input_shape: tuple[int, int, int], num_classes: int, *,
                 channels: Sequence[int], hidden: int, kernel_size: int = 3,
                 pool: Literal["max", "avg"] = "max",
                 block_order: str = "conv-norm-neuron-pool",
                 beta: float = 0.9, threshold: float = 1.0, reset: Reset = "subtract",
                 spike_fn: Callable[[], SpikeFunction], quantizer_for: QuantizerFor,
                 norm_for: NormFor, readout: str = "spike",
                 padding: Literal["same", "valid"] = "same",
                 output_norm: bool = False) -> Network:
    """The conv architecture on ``(C, H, W)`` frames; each block halves H and W by pooling."""
    if block_order not in BLOCK_ORDERS:
        raise ValueError(f"block_order must be one of {BLOCK_ORDERS}, got {block_order!r}")
    if padding not in ("same", "valid"):
        raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
    if not channels:
        raise ValueError("conv architecture needs at least one conv block (channels)")
    c, h, w = input_shape
    out_h, out_w = conv_output_size((h, w), len(channels), kernel_size, padding)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"input {h}x{w} is too small for {len(channels)} pooling blocks")
    shrink = 0 if padding == "same" else kernel_size - 1
    layers: list[nn.Module] = []
    in_c = c
    for i, out_c in enumerate(channels):
        role: Role = "first" if i == 0 else "hidden"
        conv = SynapticConv(in_c, out_c, kernel_size, quantizer=quantizer_for(role), role=role,
                            per_step=conv_per_step_default(in_c, h, w),
                            padding=None if padding == "same" else 0)
        for key in block_order.split("-"):  # a fresh norm / LIF at each place the order names
            if key == "conv":
                part: nn.Module | None = conv
            elif key == "norm":
                part = norm_for(out_c, True)
            elif key == "neuron":
                part = _neuron(beta, threshold, reset, spike_fn)
            else:
                part = TimePool(pool)
            if part is not None:
                layers.append(part)
        in_c, h, w = out_c, (h - shrink) // 2, (w - shrink) // 2
    layers.append(Flatten())
    features = in_c * h * w
    layers += _head(features, num_classes, [hidden], first_is_input=False, beta=beta,
                    threshold=threshold, reset=reset, spike_fn=spike_fn,
                    quantizer_for=quantizer_for, norm_for=norm_for, readout=readout,
                    output_norm=output_norm)
    return Network(layers, readout=readout)


def conv_output_size(size: tuple[int, int], blocks: int, kernel_size: int,
                     padding: str) -> tuple[int, int]:
    """(H, W) after ``blocks`` conv blocks (conv, then 2x2 pooling, floored)."""
    shrink = 0 if padding == "same" else kernel_size - 1
    h, w = size
    for _ in range(blocks):
        h, w = (h - shrink) // 2, (w - shrink) // 2
    return h, w


def mlp_network(input_shape: tuple[int, ...], num_classes: int, *, hidden: int,
                depth: int = 2, beta: float = 0.9, threshold: float = 1.0,
                reset: Reset = "subtract", spike_fn: Callable[[], SpikeFunction],
                quantizer_for: QuantizerFor, norm_for: NormFor,
                readout: str = "spike", output_norm: bool = False) -> Network:
    """``depth`` hidden FC layers on the flattened input (frames or audio channels)."""
    features = 1
    for d in input_shape:
        features *= d
    layers: list[nn.Module] = [Flatten()] if len(input_shape) > 1 else []
    layers += _head(features, num_classes, [hidden] * depth, first_is_input=True, beta=beta,
                    threshold=threshold, reset=reset, spike_fn=spike_fn,
                    quantizer_for=quantizer_for, norm_for=norm_for, readout=readout,
                    output_norm=output_norm)
    return Network(layers, readout=readout)


def _head(features: int, num_classes: int, widths: Sequence[int], *, first_is_input: bool,
          beta: float, threshold: float, reset: Reset, spike_fn: Callable[[], SpikeFunction],
          quantizer_for: QuantizerFor, norm_for: NormFor, readout: str,
          output_norm: bool = False) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, width in enumerate(widths):
        role: Role = "first" if first_is_input and i == 0 else "hidden"
        layers.append(SynapticLinear(features, width, quantizer=quantizer_for(role), role=role))
        norm = norm_for(width, False)
        if norm is not None:
            layers.append(norm)
        layers.append(_neuron(beta, threshold, reset, spike_fn))
        features = width
    layers.append(SynapticLinear(features, num_classes, quantizer=quantizer_for("last"),
                                 role="last"))
    if output_norm:
        norm = norm_for(num_classes, False)
        if norm is not None:
            layers.append(norm)
    if readout == "membrane":
        layers.append(LIF(beta, threshold, reset, spike_fn(), fire=False))
    else:
        layers.append(_neuron(beta, threshold, reset, spike_fn))
    return layers


def to_shift_bn(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose every :class:`TemporalBatchNorm` rounds its inference scale to a
    power of two (mode ``inference``; a layer already trained with ``on`` keeps it)."""
    out = copy.deepcopy(model)
    for m in out.modules():
        if isinstance(m, TemporalBatchNorm) and m.shift == "off":
            m.shift = "inference"
    return out


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, TemporalBatchNorm) for m in model.modules())

"""Folding a trained network into a chain of deployable operations.

A synaptic layer, the normalization and pooling between it and its neuron, and the neuron are
folded into one :class:`Synapse` (weights, bias), an optional :class:`Pool` and one
:class:`Neuron` (leak, per-channel threshold, reset). In evaluation the current into a neuron is,
per output channel ``c``, ``z_c = a_c * (W x)_c + b_c`` where ``W`` is the layer's forward
weight without its constant gains (±1 for a binary layer), and ``a_c`` collects every gain:

* the fixed fan-in scale of ``ste`` / ``ste-clip`` layers (``1/sqrt(fan_in)``),
* ``1/k^2`` of an average pooling of the layer's *input* spikes (the pooling itself becomes a
  sum pooling of spike counts, integers),
* ``1/k^2`` of an average pooling between the layer and its neuron,
* the BN's inference scale (``models.norm.TemporalBatchNorm.deployed``; a power of two under
  shift-BN); ``b_c`` is the BN offset.

With ``s = sign(a)`` and ``m = |a|``, dividing the membrane by ``m`` changes no spike (the LIF
recurrence is linear between spikes and both resets scale with it), so the deployed layer has
weights ``s * W`` (still ±1), bias ``b / m`` and threshold ``theta / m``. A bias before a sum
pooling of ``k x k`` currents is divided by ``k^2`` more, since the pooling adds ``k^2`` copies.
Max pooling of *spikes* (after the neuron) is an OR, kept as :class:`Pool` ``kind="or"``.

Refused, naming the setting to change: max pooling of currents (before the neuron), per-step
normalization parameters (bntt, tebn), a non-spiking readout, a channel whose scale is zero.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import torch
from torch import nn

from harness.errors import UserError
from models.layers import Flatten as FlattenLayer
from models.layers import SynapticConv, SynapticLinear, TimePool, _Synaptic
from models.neurons import LIF
from models.norm import TemporalBatchNorm
from models.quantizers import sign_pm1

__all__ = ["DeployError", "Flatten", "Neuron", "Pool", "Synapse", "fold_network"]


class DeployError(UserError):
    """The trained model cannot be exported as asked; the message names the setting."""


@dataclasses.dataclass
class Synapse:
    kind: Literal["conv", "linear"]
    #: ``[C_out, C_in, k, k]`` or ``[C_out, F]``; exactly ±1 when ``binary``.
    weight: np.ndarray
    bias: np.ndarray  # [C_out], in units of the folded membrane
    binary: bool
    padding: int
    #: The folding: ``sign`` s and ``scale`` m per output channel (``a = s * m``).
    fold_sign: np.ndarray
    fold_scale: np.ndarray


@dataclasses.dataclass
class Pool:
    kind: Literal["sum", "or"]
    size: int


@dataclasses.dataclass
class Neuron:
    beta: float
    threshold: np.ndarray  # [C], in units of the folded membrane
    reset: Literal["zero", "subtract"]


@dataclasses.dataclass
class Flatten:
    pass


Op = Synapse | Pool | Neuron | Flatten


def _norm_affine(norm: TemporalBatchNorm) -> tuple[np.ndarray, np.ndarray]:
    scale, offset = norm.deployed()
    if scale.dim() != 1:
        raise DeployError(f"normalization '{norm.kind}' has parameters per time step, which a "
                          f"deployed layer cannot hold: set factors.normalization: bn (or tdbn)")
    return scale.double().numpy(), offset.double().numpy()


def _split_weight(layer: _Synaptic) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(W, per-channel gain, binary)``: the forward weight is ``gain * W``."""
    with torch.no_grad():
        w = layer.effective_weight().detach().double()
        out_c = w.shape[0]
        gain = np.full(out_c, float(layer.out_scale))
        if layer.binary:
            signs = sign_pm1(layer.weight.detach()).double()
            if layer.weight_quantizer is not None and layer.weight_quantizer.scale_per_channel:
                alpha = (w.flatten(1).abs().amax(1)).numpy()  # XNOR: alpha * sign(w)
                gain = gain * alpha
            return signs.numpy(), gain, True
        return w.numpy(), gain, False


def fold_network(model: nn.Module) -> list[Op]:
    """The folded operations of an evaluation-mode ``model`` (a :class:`models.Network`)."""
    if getattr(model, "readout", "spike") != "spike":
        raise DeployError("a non-spiking (membrane) readout cannot be exported: choose a loss "
                          "with a spike readout (factors.loss: ce-rate, mse-rate or ce-count)")
    layers = list(model.layers)  # type: ignore[attr-defined]
    ops: list[Op] = []
    in_gain = 1.0  # value of one unit of the next synapse's (integer) input
    i = 0
    while i < len(layers):
        m = layers[i]
        if isinstance(m, FlattenLayer):
            ops.append(Flatten())
            i += 1
        elif isinstance(m, TimePool):
            ops.append(Pool("or" if m.kind == "max" else "sum", m.size))
            if m.kind == "avg":
                in_gain /= m.size ** 2
            i += 1
        elif isinstance(m, _Synaptic):
            i = _fold_block(layers, i, in_gain, ops)
            in_gain = 1.0
        else:
            raise DeployError(f"cannot export a {type(m).__name__} layer")
    return ops


def _fold_block(layers: list[nn.Module], i: int, in_gain: float, ops: list[Op]) -> int:
    syn = layers[i]
    assert isinstance(syn, _Synaptic)
    w, gain, binary = _split_weight(syn)
    gain = gain * in_gain
    offset = np.zeros_like(gain)
    pool: Pool | None = None
    j = i + 1
    while j < len(layers) and not isinstance(layers[j], LIF):
        m = layers[j]
        if isinstance(m, TemporalBatchNorm):
            scale, off = _norm_affine(m)
            gain, offset = gain * scale, offset * scale + off
        elif isinstance(m, TimePool):
            if m.kind == "max":
                raise DeployError("max pooling before the neuron pools membrane currents, which "
                                  "neither format represents: set model.block_order: "
                                  "conv-norm-neuron-pool or model.pool: avg")
            pool = Pool("sum", m.size)
            gain = gain / m.size ** 2
        else:
            raise DeployError(f"cannot export a {type(m).__name__} between a synaptic layer "
                              f"and its neuron")
        j += 1
    if j == len(layers):
        raise DeployError("the network does not end in a spiking neuron")
    lif = layers[j]
    assert isinstance(lif, LIF)
    if lif.reset not in ("zero", "subtract"):
        raise DeployError(f"neuron reset {lif.reset!r} cannot be exported")
    sign, mag = np.sign(gain), np.abs(gain)
    if (mag == 0).any():
        raise DeployError("a channel's folded scale is zero (a BN weight of 0): the run cannot "
                          "be folded into thresholds")
    shape = (-1,) + (1,) * (w.ndim - 1)
    bias = offset / mag
    if pool is not None:
        bias = bias / pool.size ** 2
    ops.append(Synapse("conv" if isinstance(syn, SynapticConv) else "linear",
                       weight=w * sign.reshape(shape), bias=bias, binary=binary,
                       padding=syn.padding if isinstance(syn, SynapticConv) else 0,
                       fold_sign=sign, fold_scale=mag))
    assert isinstance(syn, SynapticConv | SynapticLinear)
    if pool is not None:
        ops.append(pool)
    ops.append(Neuron(lif.beta, lif.threshold / mag, lif.reset))  # type: ignore[arg-type]
    return j + 1

"""Cost metrics of a model: deployed weight memory, synaptic operations, energy.

API for the training code::

    bits = weight_memory_bits(model)             # bit-accurate deployed size
    ratio = weight_memory_ratio(model)           # bits / the same model in fp32
    with SynOpsCounter(model) as ops:            # hooks count while evaluating
        for x, _ in test_loader: model(x)
    ops.per_sample()   # synops, MACs, ACs, membrane updates, energy (compute, memory, total)
    cost_metrics(model, batch=x)                 # all of the above as metric names

Conventions (also in the README):

* **Memory** — 1 bit per binarized weight; 32 bits per full-precision weight; XNOR adds one
  32-bit scale per output channel. A BN layer is counted as deployed, folded into one scale and
  one offset per channel (per step and channel for bntt / tebn): the offset 32 bits, the scale
  32 bits, or for power-of-two BN the width of its integer exponent (two's complement bits to
  hold every exponent of the layer) plus one sign bit. Neuron constants (beta, threshold) and the
  fixed fan-in scale of ``ste`` layers are per-layer constants of the architecture and not
  counted. ``weight_memory_ratio`` divides by the same model with every weight and BN scale in
  fp32.
* **SynOps** — NeuroBench's definition: for each synaptic layer, the number of (nonzero input,
  nonzero weight) pairs it multiplies, summed over time steps and averaged over samples. A layer
  whose input holds only 0/1 values (spikes) does accumulates (ACs), any other layer
  multiply-accumulates (MACs); the event-count input of the first layer counts as MACs unless it
  is binary. Counted with a coverage map: for a conv, ``coverage[c, h, w]`` = number of nonzero
  weights connecting input pixel ``(c, h, w)`` to an output (borders see fewer), so a batch's
  count is ``sum((x != 0) * coverage)``; one elementwise pass per layer.
* **Energy** — compute plus memory access, 45 nm CMOS at 0.9 V (Horowitz, "Computing's energy
  problem", ISSCC 2014), constants in :data:`ENERGY_PJ`, in microjoules per sample:

  - ``energy_compute_uj_per_sample``: a synaptic operation on a full-precision weight costs an
    fp32 MAC (4.6 pJ = multiply 3.7 + add 0.9) on real-valued input, an fp32 add (0.9 pJ) on
    spikes; on a ±1 weight it is an add/subtract into a 32-bit integer accumulator (0.1 pJ),
    whatever the input (spikes, or the integer event counts of the first layer).
  - ``energy_memory_uj_per_sample``, dataflow *event-driven, no weight reuse*: every synaptic
    operation reads its weight from on-chip SRAM (1 bit for ±1 weights, 32 bits otherwise) and
    every membrane update reads and writes one 32-bit state word; SRAM costs 10 pJ per 64-bit
    access of an 8 KB array (0.156 pJ per bit), writes priced as reads.
  - ``energy_uj_per_sample`` = their sum. ``membrane_updates_per_sample`` is NeuroBench's
    MembraneUpdates: neuron state updates per sample (neurons x time steps, every LIF layer).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.layers import SynapticConv, SynapticLinear, _Synaptic
from models.neurons import LIF
from models.norm import TemporalBatchNorm

__all__ = [
    "ENERGY_PJ",
    "PJ_PER_AC",
    "PJ_PER_MAC",
    "STATE_BITS",
    "SynOpsCounter",
    "cost_metrics",
    "energy_compute_uj",
    "energy_memory_uj",
    "exponent_bits",
    "weight_memory_bits",
    "weight_memory_ratio",
]

#: The one energy table (pJ; 45 nm, 0.9 V; Horowitz, ISSCC 2014, Fig. 1.1.9).
ENERGY_PJ = {
    "fp32_mac": 4.6,        # fp32 multiply 3.7 + fp32 add 0.9
    "fp32_ac": 0.9,         # fp32 add
    "int32_add": 0.1,       # 32-bit integer add: a ±1 weight's add/subtract
    "sram_bit": 10.0 / 64,  # 64-bit access of an 8 KB SRAM, 10 pJ
}
PJ_PER_MAC = ENERGY_PJ["fp32_mac"]
PJ_PER_AC = ENERGY_PJ["fp32_ac"]
#: Width of a membrane state word, read and written at every membrane update.
STATE_BITS = 32


def exponent_bits(scales: Tensor) -> int:
    """Bits of one power-of-two scale: a two's complement exponent wide enough for every
    exponent in ``scales``, plus a sign bit. Zero scales carry no exponent."""
    nonzero = scales[scales != 0].abs()
    if nonzero.numel() == 0:
        return 1
    _, e = torch.frexp(nonzero)
    e = e - 1  # frexp's mantissa is in [0.5, 1): 2^k has exponent k + 1 there
    lo, hi = int(e.min()), int(e.max())
    width = 1
    while not (-(2 ** (width - 1)) <= lo and hi <= 2 ** (width - 1) - 1):
        width += 1
    return width + 1


def _synaptic_bits(layer: _Synaptic, *, fp32: bool) -> int:
    n = layer.weight.numel()
    q = layer.weight_quantizer
    if fp32 or q is None or not q.binary:
        return 32 * n
    bits = n
    if q.scale_per_channel:
        bits += 32 * layer.weight.shape[0]
    return bits


def _norm_bits(norm: TemporalBatchNorm, *, fp32: bool) -> int:
    scale, offset = norm.deployed()
    if fp32 or norm.shift == "off":
        return 32 * scale.numel() + 32 * offset.numel()
    return exponent_bits(scale) * scale.numel() + 32 * offset.numel()


def _bits(model: nn.Module, *, fp32: bool) -> int:
    total = 0
    for m in model.modules():
        if isinstance(m, _Synaptic):
            total += _synaptic_bits(m, fp32=fp32)
        elif isinstance(m, TemporalBatchNorm):
            total += _norm_bits(m, fp32=fp32)
    return total


def weight_memory_bits(model: nn.Module) -> int:
    """Deployed size of ``model``'s synaptic weights and normalization parameters in bits."""
    return _bits(model, fp32=False)


def weight_memory_ratio(model: nn.Module) -> float:
    """``weight_memory_bits(model)`` over the same model stored entirely in fp32."""
    return _memory(model)[1]


def _memory(model: nn.Module) -> tuple[int, float]:
    """``(weight_memory_bits, weight_memory_ratio)`` from one pass of each kind."""
    bits, full = _bits(model, fp32=False), _bits(model, fp32=True)
    return bits, bits / full if full else math.nan


def energy_compute_uj(fp_macs: float, fp_acs: float, int_adds: float) -> float:
    """Compute energy (µJ) of fp32 MACs, fp32 accumulates and ±1-weight integer adds."""
    return (fp_macs * PJ_PER_MAC + fp_acs * PJ_PER_AC + int_adds * ENERGY_PJ["int32_add"]) * 1e-6


def energy_memory_uj(weight_bits_read: float, membrane_updates: float) -> float:
    """Memory energy (µJ): weight bits read plus one state word read and written per update."""
    bits = weight_bits_read + membrane_updates * 2 * STATE_BITS
    return bits * ENERGY_PJ["sram_bit"] * 1e-6


class SynOpsCounter:
    """Counts NeuroBench synaptic operations of every synaptic layer while attached.

    Use as a context manager around evaluation forwards; counts accumulate over batches.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.macs = 0.0
        self.acs = 0.0
        self.samples = 0
        # Energy inputs: ops on full-precision weights (MAC / AC), on ±1 weights, bits read.
        self._fp_ops = [0.0, 0.0]
        self._int_adds = 0.0
        self._bits_read = 0.0
        self._updates = 0.0
        self._handles: list[Any] = []
        self._coverage: dict[int, Tensor] = {}
        self._first: _Synaptic | None = None

    def __enter__(self) -> SynOpsCounter:
        layers = [m for m in self.model.modules() if isinstance(m, _Synaptic)]
        self._first = layers[0] if layers else None
        for layer in layers:
            self._handles.append(layer.register_forward_pre_hook(self._hook))
        for m in self.model.modules():
            if isinstance(m, LIF):
                self._handles.append(m.register_forward_pre_hook(self._count_updates))
        return self

    def _count_updates(self, _lif: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        # [T, B, ...]: one membrane update per neuron and step.
        self._updates += float(inputs[0].numel())

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._coverage.clear()

    @torch.no_grad()
    def _coverage_of(self, layer: _Synaptic, x: Tensor) -> Tensor:
        key = id(layer)
        cov = self._coverage.get(key)
        shape = tuple(x.shape[2:])
        if cov is not None and tuple(cov.shape) == shape:
            return cov
        nz = (layer.effective_weight() != 0).to(x.dtype)
        if isinstance(layer, SynapticConv):
            # Transposed conv of an all-ones output map with the nonzero mask: for each input
            # pixel, how many (output, weight) pairs read it.
            ones = torch.ones(1, nz.shape[0], *shape[1:], dtype=x.dtype, device=x.device)
            cov = F.conv_transpose2d(ones, nz, padding=layer.padding)[0]
        elif isinstance(layer, SynapticLinear):
            cov = nz.sum(0)
        else:  # pragma: no cover - only the two synaptic layer types exist
            raise TypeError(f"no synop rule for {type(layer).__name__}")
        self._coverage[key] = cov
        return cov

    @torch.no_grad()
    def _hook(self, layer: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        (x,) = inputs
        assert isinstance(layer, _Synaptic)
        cov = self._coverage_of(layer, x)
        nonzero = x != 0
        ops = float((nonzero.to(cov.dtype) * cov).sum())
        binary = bool(((x == 0) | (x == 1)).all())
        if binary:
            self.acs += ops
        else:
            self.macs += ops
        if layer.binary:
            self._int_adds += ops
            self._bits_read += ops
        else:
            self._fp_ops[0 if not binary else 1] += ops
            self._bits_read += 32 * ops
        if layer is self._first:
            self.samples += x.shape[1]

    def per_sample(self) -> dict[str, float]:
        n = max(self.samples, 1)
        macs, acs = self.macs / n, self.acs / n
        compute = energy_compute_uj(self._fp_ops[0] / n, self._fp_ops[1] / n, self._int_adds / n)
        memory = energy_memory_uj(self._bits_read / n, self._updates / n)
        return {"synops_per_sample": macs + acs, "macs_per_sample": macs,
                "acs_per_sample": acs, "membrane_updates_per_sample": self._updates / n,
                "energy_compute_uj_per_sample": compute,
                "energy_memory_uj_per_sample": memory, "energy_uj_per_sample": compute + memory}


def cost_metrics(model: nn.Module, *, batch: Tensor | None = None,
                 synops: dict[str, float] | None = None) -> dict[str, float]:
    """Final cost metrics of a run under their documented names.

    Synaptic operations come from ``synops`` (a :meth:`SynOpsCounter.per_sample` result over the
    test set, preferred) or from one evaluation forward on ``batch`` ``[T, B, ...]``; with
    neither, the synop and energy metrics are left out rather than guessed.
    """
    bits, ratio = _memory(model)
    out: dict[str, float] = {"weight_memory_bits": float(bits), "weight_memory_ratio": ratio}
    if synops is None and batch is not None:
        was_training = model.training
        model.eval()
        try:
            with SynOpsCounter(model) as counter, torch.no_grad():
                model(batch)
        finally:
            model.train(was_training)
        synops = counter.per_sample()
    if synops is not None:
        out.update({k: float(v) for k, v in synops.items()})
    return out

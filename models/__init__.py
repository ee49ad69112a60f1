"""Spiking layers (LIF, binary-weight conv/linear, BN variants) and the architectures.

torch modules only: nothing here reads configuration files or imports ``tricks`` / ``harness``.
Tensors are time-major, ``[T, B, ...]``.
"""

from models.layers import Flatten, SynapticConv, SynapticLinear, TimePool
from models.network import (
    BLOCK_ORDERS,
    Network,
    conv_network,
    has_batch_norm,
    mlp_network,
    to_shift_bn,
)
from models.neurons import LIF, lif_sequence
from models.norm import TemporalBatchNorm, ap2, ap2_exact
from models.quantizers import XNOR, SignSTE, SignSTEClip, WeightQuantizer, sign_pm1
from models.surrogates import (
    STE,
    ATan,
    Erf,
    FastSigmoid,
    PiecewiseExp,
    Rectangle,
    Sigmoid,
    SpikeFunction,
    Triangle,
)

__all__ = [
    "ATan",
    "BLOCK_ORDERS",
    "Erf",
    "FastSigmoid",
    "Flatten",
    "LIF",
    "Network",
    "PiecewiseExp",
    "Rectangle",
    "STE",
    "Sigmoid",
    "SignSTE",
    "SignSTEClip",
    "SpikeFunction",
    "SynapticConv",
    "SynapticLinear",
    "TemporalBatchNorm",
    "TimePool",
    "Triangle",
    "WeightQuantizer",
    "XNOR",
    "ap2",
    "ap2_exact",
    "conv_network",
    "has_batch_norm",
    "lif_sequence",
    "mlp_network",
    "sign_pm1",
    "to_shift_bn",
]

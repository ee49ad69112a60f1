"""Build the spiking network of a run from its configuration.

:func:`build_model` resolves the model-side trick levels of a :class:`RunConfig`
(``binarization``, ``surrogate``, ``normalization``, ``shift_bn``), the architecture knobs of
``cfg.model`` and ``cfg.train.bn_momentum`` into a :class:`models.Network`.

Also here, for the training code: :func:`to_shift_bn` (the post-hoc power-of-two conversion
behind ``test_acc_shift_bn``) and :func:`binary_parameters` (the latent weights whose forward is
binary: what Bop owns, what ``ste-clip`` clips, what the sign-flip rate counts).
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn

from harness.config import RunConfig
from harness.errors import ConfigError
from models.network import (
    Network,
    conv_network,
    conv_output_size,
    has_batch_norm,
    mlp_network,
)
from models.network import to_shift_bn as _to_shift_bn
from tricks.binarization import Binarization, binary_layers
from tricks.normalization import Normalization
from tricks.shift_bn import ShiftBN
from tricks.surrogate import Surrogate

__all__ = ["binary_parameters", "build_model", "has_batch_norm", "to_shift_bn"]


def build_model(cfg: RunConfig, *, input_shape: tuple[int, ...], num_classes: int,
                readout: str | None = None, time_steps: int | None = None) -> Network:
    """The network for ``cfg`` on inputs ``[T, B, *input_shape]`` with ``num_classes`` outputs.

    Args:
        cfg: the run configuration.
        input_shape: ``(C, H, W)`` event frames or ``(F,)`` feature vectors (audio channels).
        num_classes: output units.
        readout: ``"spike"`` (last layer spikes) or ``"membrane"`` (non-spiking last layer);
            None asks the run's ``loss`` level.
        time_steps: T of the input (the data's, e.g. ``DataBundle.time_steps``); needed by
            normalizations with per-step parameters (bntt, tebn). None: ``dataset.time_steps``.

    Raises:
        ConfigError: an architecture that cannot take this input (conv on 1-D features, an input
            too small for the pooling blocks) or a bad readout.
    """
    if readout is None:
        readout = getattr(cfg.level("loss"), "readout", "spike")
    if readout not in ("spike", "membrane"):
        raise ConfigError(f"readout must be 'spike' or 'membrane', got {readout!r}")
    if num_classes < 1:
        raise ConfigError(f"num_classes must be positive, got {num_classes}")
    input_shape = tuple(int(d) for d in input_shape)
    if not input_shape or any(d < 1 for d in input_shape):
        raise ConfigError(f"bad input shape {input_shape}")
    mc = cfg.model
    neuron = mc.neuron
    if not 0.0 <= neuron.beta <= 1.0:
        raise ConfigError(f"model.neuron.beta must be in [0, 1], got {neuron.beta}")
    if not neuron.threshold > 0:
        raise ConfigError(f"model.neuron.threshold must be positive, got {neuron.threshold}")
    if mc.hidden < 1:
        raise ConfigError(f"model.hidden must be positive, got {mc.hidden}")
    binarization = cfg.level("binarization")
    surrogate = cfg.level("surrogate")
    normalization = cfg.level("normalization")
    shift = cfg.level("shift_bn")
    assert isinstance(binarization, Binarization) and isinstance(surrogate, Surrogate)
    assert isinstance(normalization, Normalization) and isinstance(shift, ShiftBN)
    if time_steps is None:
        time_steps = cfg.dataset.time_steps

    def norm_for(num_features: int, spatial: bool) -> nn.Module | None:
        if normalization.kind in ("bntt", "tebn") and time_steps is None:
            raise ConfigError(f"normalization {normalization.label()} keeps parameters per time "
                              f"step: set dataset.time_steps")
        return normalization.make(num_features, time_steps=time_steps or 1, spatial=spatial,
                                  threshold=neuron.threshold, momentum=cfg.train.bn_momentum,
                                  shift=shift.mode)

    common = dict(beta=neuron.beta, threshold=neuron.threshold, reset=neuron.reset,
                  spike_fn=surrogate.spike_fn, quantizer_for=binarization.quantizer,
                  norm_for=norm_for, readout=readout, output_norm=mc.output_norm)
    if mc.arch == "mlp":
        return mlp_network(input_shape, num_classes, hidden=mc.hidden, **common)  # type: ignore
    if len(input_shape) != 3:
        raise ConfigError(f"model.arch 'conv' needs (C, H, W) frames, got input shape "
                          f"{input_shape}; use model.arch: mlp for feature vectors")
    if not mc.channels or any(c < 1 for c in mc.channels):
        raise ConfigError(f"model.channels must be positive integers, got {mc.channels}")
    if mc.kernel_size < 1 or mc.kernel_size % 2 == 0:
        raise ConfigError(f"model.kernel_size must be a positive odd number, got "
                          f"{mc.kernel_size}")
    _, h, w = input_shape
    if min(conv_output_size((h, w), len(mc.channels), mc.kernel_size, mc.padding)) < 1:
        raise ConfigError(f"input {h}x{w} is too small for {len(mc.channels)} conv blocks "
                          f"(each halves the size, model.padding '{mc.padding}'): use fewer "
                          f"model.channels")
    return conv_network(input_shape, num_classes, channels=mc.channels,  # type: ignore[arg-type]
                        hidden=mc.hidden, kernel_size=mc.kernel_size, pool=mc.pool,
                        block_order=mc.block_order, padding=mc.padding,
                        **common)  # type: ignore[arg-type]


def to_shift_bn(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every BN's inference scale rounded to a power of two.

    Layers trained with ``shift_bn: on`` already are; float BN layers round their whole
    per-channel scale ``gamma / sqrt(var + eps)`` by AP2 in evaluation. ``model`` is untouched.
    """
    return _to_shift_bn(model)


def binary_parameters(model: nn.Module) -> Iterator[nn.Parameter]:
    """The latent weights of the layers whose forward weights are binarized."""
    for layer in binary_layers(model):
        yield layer.weight

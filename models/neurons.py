"""The leaky integrate-and-fire neuron over a whole time-major sequence.

Semantics are those of ``snntorch.Leaky`` with its defaults (``reset_delay=True``), step by step:

* reset signal ``r_t = H(U_{t-1} - theta)``, detached (no gradient through the reset);
* ``subtract``: ``U_t = beta * U_{t-1} + I_t - r_t * theta``;
* ``zero``:     ``U_t = beta * ((1 - r_t) * U_{t-1}) + I_t``;
* spike ``S_t = H(U_t - theta)`` with the spike function's surrogate derivative in backward.

``U_0 = 0``. The recurrence is one ``torch.autograd.Function`` over all T steps: a forward loop
writing into preallocated ``[T, ...]`` buffers and a hand-written backward loop through time.
That avoids the per-step autograd graph (``x[t]`` on a folded tensor made backward 3x slower on
this CPU) and evaluates the surrogate derivative once for all steps. The backward is

``dL/dU_t = gU_t + gS_t * g(U_t - theta) + dL/dU_{t+1} * c_{t+1}`` and ``dL/dI_t = dL/dU_t``

with ``c_{t+1} = beta`` (subtract) or ``beta * (1 - S_t)`` (zero), since ``r_{t+1} = S_t``. Each
backward step is the spike function's ``backward_step_``, which surrogates fuse into few passes
over memory (three for ``ATan`` instead of eight): on the paper-sized net these loops move more
bytes than any other part of the step except the convolutions.

On the CPU, for float32/float64 blocks laid out time-major and dense (contiguous or
channels-last), both loops run instead in the fused C kernel of :mod:`models.fused`: one pass
per step each way, tile by tile so the previous step stays in L1. Its forward is bit-equal to
the loop above; its backward evaluates the same formula (the derivative of every spike function
of :mod:`models.surrogates`, exact classes only) with another rounding order. Other spike
functions keep the torch backward; other devices, dtypes and layouts, or a machine without a C
compiler, the torch loops.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from models import fused
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

__all__ = ["LIF", "Reset", "lif_sequence"]

Reset = Literal["subtract", "zero", "none"]

#: The fused kernel's code for each spike function whose derivative it computes itself
#: (:file:`models/fused/lif.c`); exactly these classes, not subclasses, which may redefine it.
_KERNEL_SURROGATE = {ATan: 0, Rectangle: 1, Sigmoid: 2, FastSigmoid: 3, Triangle: 4, Erf: 5,
                     PiecewiseExp: 6, STE: 7}


def _forward_loop(current: Tensor, mem: Tensor, spk: Tensor, beta: float, threshold: float,
                  reset: str, fire: bool) -> None:
    """The forward recurrence in torch ops, step by step, into ``mem`` (and ``spk``)."""
    prev_u: Tensor | None = None
    for t in range(current.shape[0]):
        u = mem[t]
        if prev_u is None:
            # U_0 = 0: beta * 0 + I_1, and no reset yet.
            u.copy_(current[t])
        else:
            s_prev = spk[t - 1] if fire else None
            if reset == "zero" and s_prev is not None:
                torch.mul(prev_u, 1 - s_prev, out=u)
                u.mul_(beta)
            else:
                torch.mul(prev_u, beta, out=u)
            u.add_(current[t])
            if reset == "subtract" and s_prev is not None:
                u.sub_(s_prev, alpha=threshold)
        if fire:
            torch.gt(u, threshold, out=spk[t])
        prev_u = u


class _LIFSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, current: Tensor, beta: float, threshold: float, reset: str,
                fn: SpikeFunction, fire: bool) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        mem = torch.empty_like(current)
        spk = torch.empty_like(current) if fire else current.new_zeros(())
        kernels = fused.kernels() if current.device.type == "cpu" else None
        ctx.fused = kernels is not None and kernels.supports(current) and mem.stride() == \
            current.stride()
        if ctx.fused:
            kernels.forward(current, mem, spk if fire else None, beta, threshold, reset, fire)
        else:
            _forward_loop(current, mem, spk, beta, threshold, reset, fire)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(mem, spk if fire else mem.new_zeros(()))
        ctx.beta, ctx.threshold, ctx.reset, ctx.fn, ctx.fire = beta, threshold, reset, fn, fire
        return spk, mem

    @staticmethod
    def backward(ctx, g_spk: Tensor | None, g_mem: Tensor | None):  # type: ignore[override]
        mem, spk = ctx.saved_tensors
        beta, reset, fire, fn = ctx.beta, ctx.reset, ctx.fire, ctx.fn
        use_spk = fire and g_spk is not None
        if not use_spk and g_mem is None:
            return None, None, None, None, None, None
        grad = torch.empty_like(mem)
        kind = _KERNEL_SURROGATE.get(type(fn))
        if ctx.fused and (kind is not None or not use_spk):
            g_s = fused.in_layout_of(g_spk, mem) if use_spk else None
            g_m = None if g_mem is None else fused.in_layout_of(g_mem, mem)
            fused.kernels().backward(mem, spk if fire else None, g_s, g_m, grad, beta,
                                     ctx.threshold, reset, fire, 0 if kind is None else kind,
                                     fn.alpha)
            return grad, None, None, None, None, None
        # Step by step from the end, so each step's temporaries stay in cache (a [T, ...]
        # tensor of the paper-sized net is far larger than L3). Grads are not materialized
        # (see forward): an unused output costs nothing.
        steps = mem.shape[0]
        for t in range(steps - 1, -1, -1):
            g = grad[t]
            carry = grad[t + 1] if t + 1 < steps else None
            # The carry folds into the surrogate's fused step unless the zero reset gates it.
            fold = carry is not None and not (reset == "zero" and fire)
            if use_spk:
                torch.sub(mem[t], ctx.threshold, out=g)
                d = fn.backward_step_(g, g_spk[t], carry if fold else None, beta)
                if d is not g:
                    g.copy_(d)
                if g_mem is not None:
                    g.add_(g_mem[t])
            else:
                g.copy_(g_mem[t])
                if fold:
                    g.add_(carry, alpha=beta)
            if carry is not None and not fold:
                g.addcmul_(carry, (1 - spk[t]).mul_(beta))
        return grad, None, None, None, None, None


def lif_sequence(current: Tensor, *, beta: float, threshold: float, reset: Reset,
                 spike_fn: SpikeFunction, fire: bool = True) -> tuple[Tensor, Tensor]:
    """Run the LIF recurrence over ``current [T, ...]``; return ``(spikes, membrane)``.

    With ``fire=False`` the neuron is a leaky integrator (no threshold, no reset) and the
    returned spikes are an empty placeholder: the readout of a non-spiking last layer.
    """
    # No .contiguous(): the loop works on any strides, and its buffers (empty_like) keep a
    # channels-last input channels-last, so the layers after it stay on their fast kernels.
    return _LIFSequence.apply(current, beta, threshold, reset if fire else "none", spike_fn,
                              fire)


class LIF(nn.Module):
    """Leaky integrate-and-fire neuron on time-major input ``[T, B, ...]``.

    Args:
        beta: membrane decay per step, in [0, 1].
        threshold: firing threshold theta > 0.
        reset: ``"subtract"`` (snntorch's default) or ``"zero"``.
        spike_fn: spike function (Heaviside forward, surrogate backward); default ``ATan(2)``,
            snntorch's default.
        fire: ``False`` makes a non-spiking leaky integrator whose membrane is the output.

    After a forward, ``spike_count`` and ``neuron_steps`` (detached) give the layer's firing
    rate; ``last_membrane`` holds the membrane when ``record_membrane`` is set. The count is
    summed when first read, not in every forward: training never reads it, and the sum is a
    full pass over the layer's largest tensor.
    """

    def __init__(self, beta: float = 0.9, threshold: float = 1.0, reset: Reset = "subtract",
                 spike_fn: SpikeFunction | None = None, fire: bool = True) -> None:
        super().__init__()
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"LIF beta must be in [0, 1], got {beta!r}")
        if not threshold > 0:
            raise ValueError(f"LIF threshold must be positive, got {threshold!r}")
        if reset not in ("subtract", "zero", "none"):
            raise ValueError(f"LIF reset must be 'subtract', 'zero' or 'none', got {reset!r}")
        self.beta = float(beta)
        self.threshold = float(threshold)
        self.reset = reset
        self.fire = fire
        self.spike_fn = spike_fn if spike_fn is not None else ATan()
        self.record_membrane = False
        self.neuron_steps = 0
        self.last_membrane: Tensor | None = None
        self._spikes: Tensor | None = None
        self._spike_count: Tensor | None = None

    @property
    def spike_count(self) -> Tensor | None:
        """Spikes emitted in the last forward (a 0-d tensor), None before any forward."""
        if self._spike_count is None and self._spikes is not None:
            self._spike_count = self._spikes.sum()
            self._spikes = None
        return self._spike_count

    def forward(self, current: Tensor) -> Tensor:
        spk, mem = lif_sequence(current, beta=self.beta, threshold=self.threshold,
                                reset=self.reset, spike_fn=self.spike_fn, fire=self.fire)
        if self.record_membrane:
            self.last_membrane = mem
        if not self.fire:
            return mem
        self._spikes, self._spike_count = spk.detach(), None
        self.neuron_steps = spk.numel()
        return spk

    def extra_repr(self) -> str:
        kind = "" if self.fire else ", fire=False"
        return f"beta={self.beta:g}, threshold={self.threshold:g}, reset={self.reset}{kind}"

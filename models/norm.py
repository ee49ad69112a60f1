"""Batch normalization variants for time-major input ``[T, B, C, ...]``, with power-of-two scales.

Kinds (``kind``):

* ``bn``   — one BatchNorm over all steps (time folded into the batch).
* ``bntt`` — BN through time (Kim & Panda 2021): statistics and affine parameters per step.
* ``tdbn`` — threshold-dependent BN (Zheng et al. 2021): ``y = gamma * alpha * V_th * x_hat +
  beta``, statistics over time and batch; ``factor = alpha * V_th`` is a constant.
* ``tebn`` — temporal effective BN (Duan et al. 2022): shared statistics, then a learnable scale
  per step ``p_t`` on the whole BN output: ``y_t = p_t * (gamma * x_hat_t + beta)``.

Shift (power-of-two) BN, ``shift``:

* ``off`` — float BN.
* ``on``  — ``AP2(factor * gamma [* p_t]) * AP2(1/sqrt(var + eps))`` replaces the float scale in
  training and evaluation, with straight-through gradients; the product of two powers of two is
  one, so inference is one shift and one add per channel.
* ``inference`` — float BN in training; in evaluation the whole effective scale
  ``factor * gamma [* p_t] / sqrt(var + eps)`` is rounded once by AP2. The post-hoc conversion
  (:func:`models.network.to_shift_bn`) sets this mode on a trained model's copy.

``AP2(x) = sign(x) * 2^round(log2|x|)`` (Courbariaux/Hubara's approximate power of two).

Training with ``shift="on"`` (kinds ``bn``, ``tdbn``, ``bntt``) runs :class:`_ShiftBatchNorm`, one
autograd function with the cost of ``F.batch_norm``: the statistics come from torch's batch-norm
statistics kernel, the forward is one pass ``y = x * s + (beta - mean * s)``, and the backward is
torch's batch-norm backward kernel with its two per-channel constants chosen so that it computes
the straight-through gradient of the composed formula (derivation in the class). The composed
formula (:meth:`TemporalBatchNorm._shift`), which ``tebn`` and evaluation keep, is its reference.

On the CPU, training BN of both kinds of scale (float and shift ``on``) on channels-last maps and
FC features runs instead through :class:`_RowBatchNorm`, the fused C kernels of
:mod:`models.fused` (one call each way, statistics in one pass); :class:`_ShiftBatchNorm` and
``F.batch_norm`` remain for other devices and layouts and where no kernel could be compiled.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models import fused

__all__ = ["NormKind", "ShiftMode", "TemporalBatchNorm", "ap2", "ap2_exact"]

NormKind = Literal["bn", "bntt", "tdbn", "tebn"]
ShiftMode = Literal["off", "on", "inference"]

_SQRT_HALF = math.sqrt(0.5)


def ap2_exact(x: Tensor) -> Tensor:
    """``sign(x) * 2^round(log2|x|)`` with no gradient; 0 stays 0.

    Written with ``frexp`` (``|x| = m * 2^e``, ``m`` in [0.5, 1)) so the result is an exact
    power of two and powers of two map to themselves: ``round(log2|x|)`` is ``e`` when
    ``m >= sqrt(1/2)`` and ``e - 1`` below.
    """
    mantissa, exponent = torch.frexp(x.abs())
    exponent = exponent - (mantissa < _SQRT_HALF).to(exponent.dtype)
    out = torch.ldexp(torch.ones_like(x), exponent)
    return torch.where(x == 0, torch.zeros_like(x), torch.copysign(out, x))


def ap2(x: Tensor) -> Tensor:
    """AP2 in forward, identity gradient (straight-through)."""
    return x + (ap2_exact(x.detach()) - x).detach()


class _ShiftBatchNorm(torch.autograd.Function):
    r"""Shift BN in training, ``x [N, C, *]`` with batch statistics, in two passes each way.

    Forward: ``y = (x - mu) * s + beta`` with ``s = AP2(gamma) * AP2(r)``, ``r = 1/sqrt(var +
    eps)`` (biased batch variance), computed as ``x * s + (beta - mu * s)``; the running
    statistics are updated as by ``F.batch_norm`` (unbiased variance, ``momentum``).

    Backward, with AP2's straight-through derivative 1 and ``d = sum(g * (x - mu))``, ``n`` the
    elements per channel:

    * ``dbeta = sum(g)``, ``dgamma = AP2(r) * d``;
    * ``dx = s * (g - mean(g)) - AP2(gamma) * r^3 * (x - mu) * d / n`` (through ``mu`` and, via
      ``r``, through ``var``).

    torch's batch-norm backward computes ``w * q * (g - mean(g)) - w * q^3 * (x - mu) * d / n``
    for weight ``w`` and inverse std ``q``, and ``dw = q * d``: with ``q = sqrt(r^3 / AP2(r))``
    and ``w = s / q`` both terms are the ones above (``w * q = s``, ``w * q^3 = AP2(gamma) *
    r^3``), so one call of its channels-last-aware kernel gives ``dx``, ``d`` and ``dbeta``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, gamma: Tensor, beta: Tensor,  # type: ignore[override]
                running_mean: Tensor | None, running_var: Tensor | None, momentum: float,
                eps: float) -> Tensor:
        mean, var = torch.batch_norm_update_stats(x, running_mean, running_var, momentum)
        inv_std = torch.rsqrt(var + eps)
        a_gamma, a_inv = ap2_exact(gamma), ap2_exact(inv_std)
        scale = a_gamma * a_inv
        shape = (1, -1) + (1,) * (x.dim() - 2)
        y = torch.addcmul((beta - mean * scale).view(shape), x, scale.view(shape))
        ctx.save_for_backward(x, mean, inv_std, a_gamma, a_inv)
        ctx.eps = eps
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):  # type: ignore[override]
        x, mean, inv_std, a_gamma, a_inv = ctx.saved_tensors
        q = torch.sqrt(inv_std ** 3 / a_inv)
        w = a_gamma * a_inv / q
        need_x, need_gamma, need_beta = ctx.needs_input_grad[:3]
        gx, gw, gb = torch.ops.aten.native_batch_norm_backward(
            g, x, w, None, None, mean, q, True, ctx.eps, [need_x, need_gamma, need_beta])
        g_gamma = a_inv * gw / q if need_gamma else None
        return gx, g_gamma, gb if need_beta else None, None, None, None, None


class _RowBatchNorm(torch.autograd.Function):
    r"""Training BN (float, or shift ``on``) through the fused CPU kernels of :mod:`models.fused`
    on ``x`` laid out as rows of channels (channels-last maps, FC features): one call each way.
    The formulas are :class:`_ShiftBatchNorm`'s, with ``G = gamma, R = r`` for float BN and
    ``G = AP2(gamma), R = AP2(r)`` for shift BN (``r = 1/sqrt(var + eps)``, biased variance):

    * ``y = x * G R + (beta - mu * G R)``;
    * ``dx = G R (g - mean(g)) - G r^3 (x - mu) d / n`` with ``d = sum(g * (x - mu))``;
    * ``dgamma = R d``, ``dbeta = sum(g)``.

    Statistics are summed in float over blocks of 64 rows, then in float64. Running statistics
    are updated as by ``F.batch_norm`` (unbiased variance, ``momentum``).
    """

    @staticmethod
    def forward(ctx, x: Tensor, gamma: Tensor, beta: Tensor,  # type: ignore[override]
                running_mean: Tensor | None, running_var: Tensor | None, momentum: float,
                eps: float, shift: bool) -> Tensor:
        y, saved = fused.kernels().bn_forward(x, gamma, beta, running_mean, running_var,
                                              momentum, eps, shift)
        ctx.save_for_backward(x, saved)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):  # type: ignore[override]
        x, saved = ctx.saved_tensors
        g = fused.in_layout_of(g, x)
        need_x, need_gamma, need_beta = ctx.needs_input_grad[:3]
        gx, g_gamma, g_beta = fused.kernels().bn_backward(g, x, saved, need_x)
        return (gx, g_gamma if need_gamma else None, g_beta if need_beta else None,
                None, None, None, None, None)


def _row_kernels(x: Tensor, *params: Tensor | None) -> bool:
    """True if :class:`_RowBatchNorm` can take ``x [N, C, ...]`` (see ``Kernels.rows``) with
    these per-channel tensors (contiguous, of ``x``'s dtype, or None)."""
    if x.device.type != "cpu":
        return False
    kernels = fused.kernels()
    if kernels is None or kernels.rows(x) is None:
        return False
    return all(p is None or (p.dtype == x.dtype and p.is_contiguous() and p.dim() == 1)
               for p in params)


def _float_bn(x: Tensor, running_mean: Tensor, running_var: Tensor, weight: Tensor,
              bias: Tensor, training: bool, momentum: float, eps: float) -> Tensor:
    """``F.batch_norm``, through the fused kernels in training where they take ``x``."""
    if training and _row_kernels(x, running_mean, running_var, weight, bias):
        return _RowBatchNorm.apply(x, weight, bias, running_mean, running_var, momentum, eps,
                                   False)
    return F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)


def _shift_bn(x: Tensor, gamma: Tensor, beta: Tensor, running_mean: Tensor,
              running_var: Tensor, momentum: float, eps: float) -> Tensor:
    """Shift-BN training: the fused kernels where they take ``x``, else
    :class:`_ShiftBatchNorm` (torch's batch-norm kernels)."""
    if _row_kernels(x, running_mean, running_var, gamma, beta):
        return _RowBatchNorm.apply(x, gamma, beta, running_mean, running_var, momentum, eps,
                                   True)
    return _ShiftBatchNorm.apply(x, gamma, beta, running_mean, running_var, momentum, eps)


class TemporalBatchNorm(nn.Module):
    """BN over time-major input ``[T, B, C, ...]`` of one of the kinds above."""

    def __init__(self, num_features: int, *, kind: NormKind = "bn", time_steps: int = 1,
                 factor: float = 1.0, momentum: float = 0.1, eps: float = 1e-5,
                 shift: ShiftMode = "off") -> None:
        super().__init__()
        if kind not in ("bn", "bntt", "tdbn", "tebn"):
            raise ValueError(f"unknown normalization kind {kind!r}")
        if shift not in ("off", "on", "inference"):
            raise ValueError(f"unknown shift mode {shift!r}")
        if kind in ("bntt", "tebn") and time_steps < 1:
            raise ValueError(f"{kind} needs time_steps >= 1, got {time_steps}")
        self.num_features, self.kind, self.time_steps = num_features, kind, time_steps
        self.factor, self.momentum, self.eps, self.shift = float(factor), momentum, eps, shift
        stat_shape = (time_steps, num_features) if kind == "bntt" else (num_features,)
        self.weight = nn.Parameter(torch.ones(stat_shape))
        self.bias = nn.Parameter(torch.zeros(stat_shape))
        self.register_buffer("running_mean", torch.zeros(stat_shape))
        self.register_buffer("running_var", torch.ones(stat_shape))
        self.step_scale = nn.Parameter(torch.ones(time_steps)) if kind == "tebn" else None

    def extra_repr(self) -> str:
        extra = f", factor={self.factor:g}" if self.factor != 1.0 else ""
        steps = f", time_steps={self.time_steps}" if self.kind in ("bntt", "tebn") else ""
        return f"{self.num_features}, kind={self.kind}{steps}{extra}, shift={self.shift}"

    # -- shapes ---------------------------------------------------------------------------
    def _check(self, x: Tensor) -> None:
        if x.dim() < 3 or x.shape[2] != self.num_features:
            raise ValueError(f"{type(self).__name__} expects [T, B, {self.num_features}, ...], "
                             f"got {tuple(x.shape)}")
        if self.kind in ("bntt", "tebn") and x.shape[0] != self.time_steps:
            raise ValueError(f"{self.kind} was built for {self.time_steps} time steps, got "
                             f"input with {x.shape[0]}")

    def _per_step(self, v: Tensor, x: Tensor) -> Tensor:
        """Broadcast ``[T, C]`` (or ``[C]``) against ``x [T, B, C, ...]``."""
        spatial = (1,) * (x.dim() - 3)
        if v.dim() == 2:
            return v.view(v.shape[0], 1, v.shape[1], *spatial)
        return v.view(1, 1, -1, *spatial)

    def _step_scale(self, x: Tensor) -> Tensor | None:
        if self.step_scale is None:
            return None
        return self.step_scale.view(-1, *(1,) * (x.dim() - 1))

    # -- forward --------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        power_of_two = self.shift == "on" or (self.shift == "inference" and not self.training)
        if not power_of_two:
            return self._float(x)
        if self.training and self.shift == "on" and self.kind != "tebn":
            return self._shift_fused(x)
        return self._shift(x)

    def _shift_fused(self, x: Tensor) -> Tensor:
        """Training with ``shift="on"``: :class:`_ShiftBatchNorm`, per step for bntt."""
        gamma = self.weight * self.factor if self.factor != 1.0 else self.weight
        if self.kind == "bntt":
            steps = [_shift_bn(xt, gamma[t], self.bias[t], self.running_mean[t],
                               self.running_var[t], self.momentum, self.eps)
                     for t, xt in enumerate(x.unbind(0))]
            return torch.stack(steps)
        return _shift_bn(x.flatten(0, 1), gamma, self.bias, self.running_mean,
                         self.running_var, self.momentum, self.eps).view_as(x)

    def _float(self, x: Tensor) -> Tensor:
        training = self.training
        weight = self.weight * self.factor if self.factor != 1.0 else self.weight
        if self.kind == "bntt":
            steps = [_float_bn(xt, self.running_mean[t], self.running_var[t], weight[t],
                               self.bias[t], training, self.momentum, self.eps)
                     for t, xt in enumerate(x.unbind(0))]
            return torch.stack(steps)
        y = _float_bn(x.flatten(0, 1), self.running_mean, self.running_var, weight,
                      self.bias, training, self.momentum, self.eps).view_as(x)
        p = self._step_scale(x)
        return y * p if p is not None else y

    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and biased variance (``[T, C]`` for bntt, ``[C]`` otherwise); update running."""
        if not self.training:
            return self.running_mean, self.running_var
        dims = (1, *range(3, x.dim())) if self.kind == "bntt" else (0, 1, *range(3, x.dim()))
        var, mean = torch.var_mean(x, dim=dims, correction=0)
        n = x.numel() // mean.numel()
        with torch.no_grad():
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach() * (n / max(n - 1, 1)), self.momentum)
        return mean, var

    def _shift(self, x: Tensor) -> Tensor:
        """The composed power-of-two forward (evaluation, ``tebn``; the fused path's reference)."""
        mean, var = self._stats(x)
        inv_std = torch.rsqrt(var + self.eps)
        gamma = self.weight * self.factor
        p = self.step_scale
        if p is not None:
            gamma = p.view(-1, 1) * gamma  # [T, C]
        bias = self.bias if p is None else p.view(-1, 1) * self.bias
        if self.shift == "on":
            scale = ap2(gamma) * ap2(inv_std)
        else:
            scale = ap2(gamma * inv_std)
        return (x - self._per_step(mean, x)) * self._per_step(scale, x) + self._per_step(bias, x)

    # -- deployment view ------------------------------------------------------------------
    @torch.no_grad()
    def deployed(self) -> tuple[Tensor, Tensor]:
        """Inference-time ``(scale, offset)`` with ``y = x * scale + offset`` (``[T, C]`` when the
        affine map differs per step, else ``[C]``), exactly what the evaluation forward does."""
        inv_std = torch.rsqrt(self.running_var + self.eps)
        gamma = self.weight * self.factor
        bias = self.bias
        if self.step_scale is not None:
            gamma = self.step_scale.view(-1, 1) * gamma
            bias = self.step_scale.view(-1, 1) * bias
        if self.shift == "on":
            scale = ap2_exact(gamma) * ap2_exact(inv_std)
        elif self.shift == "inference":
            scale = ap2_exact(gamma * inv_std)
        else:
            scale = gamma * inv_std
        return scale, bias - self.running_mean * scale

    @property
    def power_of_two_at_inference(self) -> bool:
        return self.shift != "off"

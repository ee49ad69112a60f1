"""Spike functions: Heaviside forward, surrogate-gradient backward.

Every spike function maps ``x = U - threshold`` to spikes ``(x > 0)`` in float (a spike iff the
membrane exceeds the threshold, as snntorch does) and, in backward, multiplies the incoming
gradient by a surrogate derivative ``derivative(x)``. Each shape has three parts:

* ``derivative(x)``: the pure backward, written in a numerically stable form (the sigmoid via
  ``s * (1 - s)``, exponentials only of non-positive arguments);
* ``primitive(x)``: a smooth (or piecewise smooth) function whose derivative *is* the backward;
  tests compare ``derivative`` with autograd of ``primitive``;
* the module itself carrying ``alpha`` (the sharpness; larger is sharper) with ``extra_repr``.

The LIF recurrence (:mod:`models.neurons`) calls ``derivative`` directly inside its own
backward loop, so a spike function is also usable standalone through ``forward``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "ATan",
    "Erf",
    "FastSigmoid",
    "PiecewiseExp",
    "Rectangle",
    "STE",
    "Sigmoid",
    "SpikeFunction",
    "Triangle",
]


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, fn: SpikeFunction) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.fn = fn
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return ctx.fn.derivative(x) * grad, None


class SpikeFunction(nn.Module):
    """Base class: Heaviside forward, ``derivative`` backward. Subclasses set ``alpha``."""

    alpha: float

    def __init__(self, alpha: float) -> None:
        super().__init__()
        if not math.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"{type(self).__name__}: alpha must be a positive number, "
                             f"got {alpha!r}")
        self.alpha = float(alpha)

    def forward(self, x: Tensor) -> Tensor:
        return _Spike.apply(x, self)

    def derivative(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def derivative_(self, x: Tensor) -> Tensor:
        """``derivative(x)``, allowed to overwrite ``x`` (a temporary) to save memory passes."""
        return self.derivative(x)

    def backward_step_(self, x: Tensor, grad: Tensor, carry: Tensor | None,
                       beta: float) -> Tensor:
        """``derivative(x) * grad + beta * carry`` (``carry`` may be None), one step of the LIF
        backward through time. May overwrite ``x`` (a temporary) and return it; subclasses fuse
        the arithmetic into fewer passes over memory."""
        d = self.derivative_(x)
        d = d.mul_(grad) if d is x else d.mul(grad)
        if carry is not None:
            d.add_(carry, alpha=beta)
        return d

    def primitive(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:g}"


class Rectangle(SpikeFunction):
    """Rectangular window of width ``w`` and height ``1/w`` (Wu et al. 2018; the paper's choice).

    ``g(x) = 1/w if |x| < w/2 else 0``; primitive ``clamp(x/w + 1/2, 0, 1)``. Its parameter is
    the window width, so ``alpha`` here *is* the width (kept as ``width`` for readability).
    """

    def __init__(self, width: float = 0.8) -> None:
        super().__init__(width)

    @property
    def width(self) -> float:
        return self.alpha

    def derivative(self, x: Tensor) -> Tensor:
        return (x.abs() < self.alpha / 2).to(x.dtype) / self.alpha

    def primitive(self, x: Tensor) -> Tensor:
        return (x / self.alpha + 0.5).clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        return f"width={self.alpha:g}"


class ATan(SpikeFunction):
    """Arc-tangent (Fang et al. 2021), identical to ``snntorch.surrogate.atan``.

    ``g(x) = (alpha/2) / (1 + (pi/2 * alpha * x)^2)``; primitive ``atan(pi/2*alpha*x)/pi + 1/2``.
    """

    def __init__(self, alpha: float = 2.0) -> None:
        super().__init__(alpha)

    def derivative(self, x: Tensor) -> Tensor:
        # Same operation order as snntorch so gradients agree bit for bit.
        return self.alpha / 2 / (1 + (math.pi / 2 * self.alpha * x).pow(2))

    def derivative_(self, x: Tensor) -> Tensor:
        return x.mul_(math.pi / 2 * self.alpha).square_().add_(1).reciprocal_().mul_(
            self.alpha / 2)

    def backward_step_(self, x: Tensor, grad: Tensor, carry: Tensor | None,
                       beta: float) -> Tensor:
        # (alpha/2) * grad / (1 + k^2 x^2) [+ beta * carry] in three passes instead of eight:
        # x <- 1 + k^2 x^2, then x <- carry + (alpha / (2 beta)) * grad / x, then x <- beta * x.
        k = math.pi / 2 * self.alpha
        torch.addcmul(x.new_ones(()), x, x, value=k * k, out=x)
        if carry is None or beta < 1e-3:  # (a tiny beta would blow up alpha / (2 beta))
            torch.div(grad, x, out=x).mul_(self.alpha / 2)
            return x if carry is None else x.add_(carry, alpha=beta)
        torch.addcdiv(carry, grad, x, value=self.alpha / (2 * beta), out=x)
        return x.mul_(beta)

    def primitive(self, x: Tensor) -> Tensor:
        return torch.atan(math.pi / 2 * self.alpha * x) / math.pi + 0.5


class Sigmoid(SpikeFunction):
    """Logistic sigmoid: ``g(x) = alpha * s * (1 - s)`` with ``s = sigmoid(alpha * x)``."""

    def __init__(self, alpha: float = 4.0) -> None:
        super().__init__(alpha)

    def derivative(self, x: Tensor) -> Tensor:
        s = torch.sigmoid(self.alpha * x)
        return self.alpha * s * (1 - s)

    def derivative_(self, x: Tensor) -> Tensor:
        s = x.mul_(self.alpha).sigmoid_()
        return s.mul_(s.neg().add_(1)).mul_(self.alpha)

    def primitive(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.alpha * x)


class FastSigmoid(SpikeFunction):
    """SuperSpike's fast sigmoid (Zenke & Ganguli 2018), identical to snntorch's ``fast_sigmoid``.

    ``g(x) = 1 / (1 + alpha |x|)^2``; primitive ``x / (1 + alpha |x|)``. Not normalized (its
    integral is ``2/alpha``): that is the published and snntorch's form.
    """

    def __init__(self, alpha: float = 25.0) -> None:
        super().__init__(alpha)

    def derivative(self, x: Tensor) -> Tensor:
        return 1 / (self.alpha * x.abs() + 1.0) ** 2

    def derivative_(self, x: Tensor) -> Tensor:
        return x.abs_().mul_(self.alpha).add_(1.0).square_().reciprocal_()

    def primitive(self, x: Tensor) -> Tensor:
        return x / (1 + self.alpha * x.abs())


class Triangle(SpikeFunction):
    """Triangle of height ``alpha`` and half-width ``1/alpha`` (unit area; Esser et al. 2016).

    ``g(x) = alpha * max(0, 1 - alpha |x|)``; with ``u = alpha x`` the primitive is
    ``clamp(1/2 + u - u|u|/2)`` for ``|u| <= 1``, 0 below and 1 above.
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__(alpha)

    def derivative(self, x: Tensor) -> Tensor:
        return self.alpha * (1 - self.alpha * x.abs()).clamp_min(0.0)

    def primitive(self, x: Tensor) -> Tensor:
        u = (self.alpha * x).clamp(-1.0, 1.0)
        return 0.5 + u - u * u.abs() / 2


class Erf(SpikeFunction):
    """Gaussian (error-function primitive): ``g(x) = alpha/sqrt(pi) * exp(-(alpha x)^2)``."""

    def __init__(self, alpha: float = 2.0) -> None:
        super().__init__(alpha)

    def derivative(self, x: Tensor) -> Tensor:
        return self.alpha / math.sqrt(math.pi) * torch.exp(-(self.alpha * x).pow(2))

    def primitive(self, x: Tensor) -> Tensor:
        return 0.5 * (1 + torch.erf(self.alpha * x))


class PiecewiseExp(SpikeFunction):
    """Piecewise exponential (SpikingJelly's ``PiecewiseExp``): ``g(x) = alpha/2 exp(-alpha|x|)``.

    Primitive ``exp(alpha x)/2`` for ``x < 0`` and ``1 - exp(-alpha x)/2`` for ``x >= 0``, both
    written with non-positive exponents so neither overflows.
    """

    def __init__(self, alpha: float = 2.0) -> None:
        super().__init__(alpha)

    def derivative(self, x: Tensor) -> Tensor:
        return self.alpha / 2 * torch.exp(-self.alpha * x.abs())

    def primitive(self, x: Tensor) -> Tensor:
        half = 0.5 * torch.exp(-self.alpha * x.abs())
        return torch.where(x < 0, half, 1 - half)


class STE(SpikeFunction):
    """Straight-through estimator: ``g(x) = 1`` (snntorch's ``straight_through_estimator``)."""

    def __init__(self) -> None:
        super().__init__(1.0)

    def derivative(self, x: Tensor) -> Tensor:
        return torch.ones_like(x)

    def primitive(self, x: Tensor) -> Tensor:
        return x.clone()

    def extra_repr(self) -> str:
        return ""

"""Surrogate spike functions: Heaviside forward, backward == d(primitive)/dx, stability, and
equality with snntorch where snntorch's shapes are right."""

from __future__ import annotations

import math

import pytest
import snntorch as snn
import torch

import tricks
from tricks.surrogate import LEVELS

# Points away from the kinks of the piecewise shapes (rectangle edges at ±w/2, triangle at
# ±1/alpha and 0) where the primitive's derivative is defined.
POINTS = torch.tensor([-3.0, -0.9, -0.37, -0.05, 0.03, 0.21, 0.55, 1.7, 6.0],
                      dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(LEVELS))
def test_backward_equals_autograd_of_primitive(name: str) -> None:
    fn = tricks.make("surrogate", name).spike_fn()
    x = POINTS.clone().requires_grad_()
    (auto,) = torch.autograd.grad(fn.primitive(x).sum(), x)
    torch.testing.assert_close(fn.derivative(POINTS), auto, atol=1e-12, rtol=1e-10)
    # The in-place variant the LIF backward uses gives the same values.
    torch.testing.assert_close(fn.derivative_(POINTS.clone()), fn.derivative(POINTS))
    # And the module's own backward multiplies the incoming gradient by it.
    x2 = POINTS.clone().requires_grad_()
    g = torch.linspace(-1, 2, len(POINTS), dtype=torch.float64)
    (grad,) = torch.autograd.grad((fn(x2) * g).sum(), x2)
    torch.testing.assert_close(grad, fn.derivative(POINTS) * g)


@pytest.mark.parametrize("name", sorted(LEVELS))
@pytest.mark.parametrize("beta", [0.9, 0.5, 1e-4, 0.0])
def test_fused_backward_step_equals_its_formula(name: str, beta: float) -> None:
    """``backward_step_`` (the LIF backward's per-step kernel) is derivative * grad + beta * carry,
    with and without a carry, including betas too small for the fused division by beta."""
    fn = tricks.make("surrogate", name).spike_fn()
    g = torch.linspace(-1, 2, len(POINTS), dtype=torch.float64)
    carry = torch.linspace(3, -0.5, len(POINTS), dtype=torch.float64)
    want = fn.derivative(POINTS) * g
    scratch = POINTS.clone()
    torch.testing.assert_close(fn.backward_step_(scratch, g, None, beta), want)
    got = fn.backward_step_(POINTS.clone(), g, carry, beta)
    torch.testing.assert_close(got, want + beta * carry, atol=1e-12, rtol=1e-10)
    assert torch.equal(g, torch.linspace(-1, 2, len(POINTS), dtype=torch.float64))  # read only
    assert torch.equal(carry, torch.linspace(3, -0.5, len(POINTS), dtype=torch.float64))


@pytest.mark.parametrize("name", sorted(LEVELS))
def test_forward_is_heaviside_and_everything_finite_on_wide_range(name: str) -> None:
    fn = tricks.make("surrogate", name).spike_fn()
    x = torch.linspace(-100, 100, 20001)
    out = fn(x)
    assert torch.equal(out, (x > 0).float())
    assert fn(torch.zeros(1)).item() == 0.0  # a spike needs U strictly above threshold
    for dtype in (torch.float32, torch.float64):
        xd = x.to(dtype)
        assert torch.isfinite(fn.derivative(xd)).all()
        assert torch.isfinite(fn.derivative_(xd.clone())).all()
        assert torch.isfinite(fn.primitive(xd)).all()
        assert (fn.derivative(xd) >= 0).all()


def test_formulas_at_chosen_points() -> None:
    x = torch.tensor([0.0, 0.3, -0.5], dtype=torch.float64)
    m = tricks.make
    torch.testing.assert_close(m("surrogate", "atan").spike_fn().derivative(x),
                               1 / (1 + (math.pi * x) ** 2))
    s = torch.sigmoid(4 * x)
    torch.testing.assert_close(m("surrogate", "sigmoid").spike_fn().derivative(x),
                               4 * s * (1 - s))
    torch.testing.assert_close(m("surrogate", "fast-sigmoid").spike_fn().derivative(x),
                               1 / (1 + 25 * x.abs()) ** 2)
    torch.testing.assert_close(m("surrogate", "triangle").spike_fn().derivative(x),
                               torch.tensor([1.0, 0.7, 0.5], dtype=torch.float64))
    torch.testing.assert_close(m("surrogate", "rectangle").spike_fn().derivative(x),
                               torch.tensor([1.25, 1.25, 0.0], dtype=torch.float64))
    torch.testing.assert_close(m("surrogate", "erf").spike_fn().derivative(x),
                               2 / math.sqrt(math.pi) * torch.exp(-(2 * x) ** 2))
    torch.testing.assert_close(m("surrogate", "piecewise-exp").spike_fn().derivative(x),
                               torch.exp(-2 * x.abs()))
    torch.testing.assert_close(m("surrogate", "ste").spike_fn().derivative(x),
                               torch.ones_like(x))
    # sigmoid far in the tails: no overflow to NaN (snntorch's old failure).
    big = torch.tensor([-1e4, 1e4])
    assert torch.equal(m("surrogate", "sigmoid").spike_fn().derivative(big), torch.zeros(2))


@pytest.mark.parametrize(("ours", "theirs"), [
    ({"name": "atan", "alpha": 3.0}, snn.surrogate.atan(alpha=3.0)),
    ({"name": "fast-sigmoid", "alpha": 10.0}, snn.surrogate.fast_sigmoid(slope=10)),
    ("ste", snn.surrogate.straight_through_estimator()),
])
def test_equal_to_snntorch(ours, theirs) -> None:
    fn = tricks.make("surrogate", ours).spike_fn()
    x = torch.linspace(-4, 4, 801)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    g = torch.cos(x)
    a, b = fn(x1), theirs(x2)
    assert torch.equal(a, b)
    (a * g).sum().backward()
    (b * g).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-6, rtol=1e-6)


def test_repr_records_the_setting() -> None:
    assert "alpha=7" in repr(tricks.make("surrogate", {"name": "atan", "alpha": 7}).spike_fn())
    assert "width=0.5" in repr(tricks.make("surrogate", {"name": "rectangle",
                                                         "width": 0.5}).spike_fn())

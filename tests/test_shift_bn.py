"""AP2, power-of-two BN in training and inference, and the post-hoc shift-BN conversion."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import models.fused
from harness.run.build import build_model, has_batch_norm, to_shift_bn
from models.norm import TemporalBatchNorm, ap2, ap2_exact
from tests._models_common import cfg


def _is_power_of_two(v: float) -> bool:
    mantissa, _ = math.frexp(abs(v))
    return mantissa == 0.5


def test_ap2_returns_exact_powers_of_two() -> None:
    torch.manual_seed(0)
    x = torch.cat([torch.randn(1000) * 10, torch.rand(1000) * 1e-3, -torch.rand(100) * 1e4])
    y = ap2_exact(x)
    for a, b in zip(x.tolist(), y.tolist()):
        assert _is_power_of_two(b), (a, b)
        assert math.copysign(1, a) == math.copysign(1, b)
        # round(log2|x|): within a factor sqrt(2) either way
        assert 2 ** -0.5 - 1e-6 <= abs(a) / abs(b) <= 2 ** 0.5 + 1e-6


def test_ap2_chosen_points_and_identity_on_powers_of_two() -> None:
    x = torch.tensor([3.0, 2.9, 1.4, 1.5, -0.3, 0.0, 0.7, 0.75, 6.0])
    # log2: 1.58->2, 1.54->2, 0.49->0, 0.58->1, -1.74->-2, 0, -0.51->-1, -0.42->0, 2.58->3
    assert ap2_exact(x).tolist() == [4.0, 4.0, 1.0, 2.0, -0.25, 0.0, 0.5, 1.0, 8.0]
    powers = torch.tensor([2.0 ** k for k in range(-20, 21)] + [-(2.0 ** k) for k in range(-5, 6)])
    assert torch.equal(ap2_exact(powers), powers)
    assert torch.equal(ap2_exact(powers.double()), powers.double())


def test_ap2_gradient_is_straight_through() -> None:
    x = torch.tensor([0.3, -2.7, 5.0], requires_grad=True)
    (grad,) = torch.autograd.grad((ap2(x) * torch.tensor([1.0, 2.0, 3.0])).sum(), x)
    assert torch.equal(grad, torch.tensor([1.0, 2.0, 3.0]))


def test_shift_on_uses_power_of_two_scales_in_training() -> None:
    norm = TemporalBatchNorm(2, shift="on").double()
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.7, -3.0]))
        norm.bias.copy_(torch.tensor([0.1, 0.2]))
    torch.manual_seed(0)
    x = torch.randn(3, 8, 2, dtype=torch.float64) * torch.tensor([5.0, 0.3], dtype=torch.float64)
    y = norm(x)
    mean = x.mean(dim=(0, 1))
    var = x.var(dim=(0, 1), unbiased=False)
    scale = ap2_exact(norm.weight.detach()) * ap2_exact(torch.rsqrt(var + 1e-5))
    torch.testing.assert_close(y, (x - mean) * scale + norm.bias.detach())
    y.sum().backward()
    assert norm.weight.grad is not None and torch.isfinite(norm.weight.grad).all()


def test_inference_mode_is_float_in_training() -> None:
    a = TemporalBatchNorm(2, shift="inference")
    b = TemporalBatchNorm(2, shift="off")
    x = torch.randn(3, 8, 2) * 3
    assert torch.equal(a(x), b(x))
    a.eval()
    b.eval()
    assert not torch.equal(a(x), b(x))


def _trained_model(shift: str = "off"):
    c = cfg({"shift_bn": shift, "normalization": "bn"})
    model = build_model(c, input_shape=(2, 8, 8), num_classes=3).double()
    torch.manual_seed(3)
    x = (torch.rand(4, 16, 2, 8, 8) < 0.3).double()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, TemporalBatchNorm):
                m.weight.uniform_(0.3, 3.0)
        model(x)  # running statistics away from their init
    model.eval()
    return model, x


def test_post_hoc_conversion_gives_power_of_two_scales() -> None:
    model, x = _trained_model()
    converted = to_shift_bn(model)
    assert converted is not model
    norms = [m for m in converted.modules() if isinstance(m, TemporalBatchNorm)]
    assert norms and has_batch_norm(model)
    for m in norms:
        scale, _ = m.deployed()
        assert all(_is_power_of_two(v) for v in scale.flatten().tolist())
    # the original is untouched
    assert all(m.shift == "off" for m in model.modules() if isinstance(m, TemporalBatchNorm))
    assert torch.isfinite(converted(x)).all()


def test_conversion_is_exact_when_scales_already_are_powers_of_two() -> None:
    model, x = _trained_model()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, TemporalBatchNorm):
                scale, _ = m.deployed()
                # choose gamma so that gamma / sqrt(var + eps) is exactly 2^k per channel
                target = torch.tensor([2.0 ** (k % 5 - 2) for k in range(scale.numel())],
                                      dtype=scale.dtype)
                m.weight.copy_(target * torch.sqrt(m.running_var + m.eps))
    converted = to_shift_bn(model)
    for m in converted.modules():
        if isinstance(m, TemporalBatchNorm):
            scale, _ = m.deployed()
            assert all(_is_power_of_two(v) for v in scale.tolist())
    torch.testing.assert_close(converted(x), model(x), atol=1e-9, rtol=0)
    # ... and not exact otherwise: perturb one gamma off a power of two
    with torch.no_grad():
        first = next(m for m in model.modules() if isinstance(m, TemporalBatchNorm))
        first.weight.mul_(1.3)
    converted = to_shift_bn(model)
    first_c = next(m for m in converted.modules() if isinstance(m, TemporalBatchNorm))
    assert not torch.allclose(first_c.deployed()[0], first.deployed()[0])


def test_conversion_keeps_a_shift_trained_model() -> None:
    model, x = _trained_model("on")
    converted = to_shift_bn(model)
    assert torch.equal(converted(x), model(x))


@pytest.mark.parametrize("mode", ["on", "inference"])
def test_shift_level_reaches_the_bn_layers(mode: str) -> None:
    c = cfg({"shift_bn": mode, "normalization": "tebn"})
    model = build_model(c, input_shape=(2, 8, 8), num_classes=3)
    modes = {m.shift for m in model.modules() if isinstance(m, TemporalBatchNorm)}
    assert modes == {mode}


def _layout(x: torch.Tensor) -> torch.Tensor:
    """``x [T, B, C, H, W]`` in the channels-last layout the CPU convolutions produce."""
    return x.flatten(0, 1).contiguous(memory_format=torch.channels_last).unflatten(0, x.shape[:2])


def _graph_has(y: torch.Tensor, name: str) -> bool:
    seen, todo = set(), [y.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if type(node).__name__ == name:
            return True
        todo.extend(n for n, _ in node.next_functions)
    return False


@pytest.mark.parametrize("path", ["_RowBatchNormBackward", "_ShiftBatchNormBackward"])
@pytest.mark.parametrize(("kind", "shape"), [
    ("bn", (3, 8, 4, 5, 5)), ("bn", (3, 8, 4)), ("tdbn", (3, 8, 4, 5, 5)),
    ("bntt", (3, 8, 4, 5, 5)), ("bntt", (3, 8, 4))])
def test_fused_shift_training_equals_the_composed_formula(kind: str, shape: tuple, path: str,
                                                          monkeypatch) -> None:
    """Both fused training paths (forward, all gradients, running statistics) against the
    composed AP2/straight-through formula they replace, in float64, on a conv and an FC layout:
    the C kernels of models.fused and, where those are unavailable, torch's batch-norm kernels
    with chosen constants."""
    if path == "_ShiftBatchNormBackward":
        monkeypatch.setattr(models.fused, "kernels", lambda: None)
    elif models.fused.kernels() is None:
        pytest.skip("no C compiler for the fused kernels")
    torch.manual_seed(1)
    fused = TemporalBatchNorm(4, kind=kind, time_steps=3, shift="on",
                              factor=0.7 if kind == "tdbn" else 1.0).double()
    with torch.no_grad():
        fused.weight.uniform_(-3.0, 3.0)
        fused.bias.uniform_(-1.0, 1.0)
        fused.running_mean.uniform_(-1.0, 1.0)
    composed = copy.deepcopy(fused)
    spread = torch.tensor([0.2, 1.0, 3.0, 7.0], dtype=torch.float64)
    x = torch.randn(shape, dtype=torch.float64) * spread.view(4, *(1,) * (len(shape) - 3)) + 2
    if len(shape) == 5:
        x = _layout(x)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = fused(xa), composed._shift(xb)
    assert _graph_has(ya, path) and not _graph_has(yb, path)
    grad = torch.randn_like(ya)
    ya.backward(grad)
    yb.backward(grad)
    pairs = [(ya, yb), (xa.grad, xb.grad), (fused.weight.grad, composed.weight.grad),
             (fused.bias.grad, composed.bias.grad), (fused.running_mean, composed.running_mean),
             (fused.running_var, composed.running_var)]
    for a, b in pairs:
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    # The gradients are not trivially equal: the straight-through scale differs from the
    # float one, so plain BN's gradient would not match.
    plain = TemporalBatchNorm(4, kind=kind, time_steps=3, shift="off",
                              factor=0.7 if kind == "tdbn" else 1.0).double()
    plain.load_state_dict(composed.state_dict())
    xc = x.clone().requires_grad_()
    plain(xc).backward(grad)
    assert not torch.allclose(xc.grad, xa.grad, rtol=1e-3, atol=1e-6)


def test_fused_shift_keeps_the_channels_last_layout() -> None:
    norm = TemporalBatchNorm(4, shift="on")
    y = norm(_layout(torch.randn(2, 3, 4, 5, 5)))
    assert y.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)


def test_fused_shift_gradient_at_a_chosen_point() -> None:
    """One channel, x = (0, 2): mean 1, var 1, r = 1/sqrt(1 + eps) -> AP2 1; gamma 3 -> 4.

    y = (x - 1) * 4 + b; dy/dgamma (STE) = (x - 1) * AP2(r); with upstream g = (1, 0):
    dgamma = -1, dbeta = 1, and dx = s (g - mean g) - AP2(gamma) r^3 (x - mu) sum(g (x - mu)) / n
    = 4 * (0.5, -0.5) - 4 r^3 * (-1, 1) * (-1) / 2 = (2 - 2 r^3, -2 + 2 r^3).
    """
    norm = TemporalBatchNorm(1, shift="on").double()
    with torch.no_grad():
        norm.weight.fill_(3.0)
        norm.bias.fill_(0.5)
    x = torch.tensor([[[0.0]], [[2.0]]], dtype=torch.float64).requires_grad_()  # [T=2, B=1, 1]
    y = norm(x)
    torch.testing.assert_close(y.flatten(), torch.tensor([-3.5, 4.5], dtype=torch.float64))
    y.backward(torch.tensor([[[1.0]], [[0.0]]], dtype=torch.float64))
    r3 = (1 + 1e-5) ** -1.5
    torch.testing.assert_close(norm.weight.grad, torch.tensor([-1.0], dtype=torch.float64))
    torch.testing.assert_close(norm.bias.grad, torch.tensor([1.0], dtype=torch.float64))
    torch.testing.assert_close(x.grad.flatten(),
                               torch.tensor([2 - 2 * r3, -2 + 2 * r3], dtype=torch.float64))

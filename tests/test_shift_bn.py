"""AP2, power-of-two BN in training and inference, and the post-hoc shift-BN conversion."""

from __future__ import annotations

import math

import pytest
import torch

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

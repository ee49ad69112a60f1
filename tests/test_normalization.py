"""BN variants on time-major input against formulas / torch's BatchNorm."""

from __future__ import annotations

import pytest
import torch

import tricks
from models.norm import TemporalBatchNorm


def _make(name: str, c: int = 3, steps: int = 4, shift: str = "off", **params):
    level = tricks.make("normalization", {"name": name, **params})
    return level.make(c, time_steps=steps, spatial=True, threshold=0.5, momentum=0.1,
                      shift=shift)


def _x(steps: int = 4) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(steps, 5, 3, 2, 2, dtype=torch.float64) * 3 + 1


def test_none_builds_nothing() -> None:
    assert _make("none") is None


def test_bn_equals_torch_batchnorm_over_folded_time() -> None:
    norm = _make("bn").double()
    ref = torch.nn.BatchNorm2d(3, momentum=0.1).double()
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.5, 2.0, -1.0]))
        ref.weight.copy_(norm.weight)
        norm.bias.fill_(0.3)
        ref.bias.fill_(0.3)
    x = _x()
    torch.testing.assert_close(norm(x), ref(x.flatten(0, 1)).view_as(x))
    torch.testing.assert_close(norm.running_var, ref.running_var)
    norm.eval()
    ref.eval()
    torch.testing.assert_close(norm(x), ref(x.flatten(0, 1)).view_as(x))


def test_bntt_uses_per_step_statistics_and_affine() -> None:
    norm = _make("bntt").double()
    assert norm.weight.shape == (4, 3)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(12.0).view(4, 3) / 4 + 0.5)
    x = _x()
    x[2] += 10  # a step with a different mean must still come out centred
    y = norm(x)
    for t in range(4):
        mean = x[t].mean(dim=(0, 2, 3), keepdim=True)
        var = x[t].var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        want = (x[t] - mean) / torch.sqrt(var + 1e-5) * norm.weight[t].view(1, 3, 1, 1)
        torch.testing.assert_close(y[t], want)
    assert norm.running_mean[2].mean() > 0.9  # 0.1 * (1 + 10)


def test_tdbn_normalizes_to_alpha_times_threshold() -> None:
    norm = _make("tdbn", alpha=2.0).double()  # threshold 0.5 -> target scale 1.0
    assert norm.factor == 1.0
    norm = _make("tdbn", alpha=3.0).double()
    y = norm(_x())
    std = y.transpose(0, 2).flatten(1).std(dim=1, unbiased=False)
    torch.testing.assert_close(std, torch.full((3,), 1.5, dtype=torch.float64), atol=1e-4,
                               rtol=0)


def test_tebn_shared_statistics_per_step_scale() -> None:
    norm = _make("tebn").double()
    bn = _make("bn").double()
    with torch.no_grad():
        norm.step_scale.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
        norm.bias.fill_(0.25)
        bn.bias.fill_(0.25)
    x = _x()
    y, base = norm(x), bn(x)
    for t, p in enumerate([1.0, 2.0, 0.5, -1.0]):
        torch.testing.assert_close(y[t], p * base[t])
    (y.sum()).backward()
    assert norm.step_scale.grad is not None and norm.step_scale.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["bn", "bntt", "tdbn", "tebn"])
def test_deployed_affine_equals_eval_forward(name: str) -> None:
    for shift in ("off", "on", "inference"):
        norm = _make(name, shift=shift).double()
        with torch.no_grad():
            norm.weight.uniform_(0.3, 2.0)
            norm.bias.uniform_(-1, 1)
        norm(_x())  # one training step of running statistics
        norm.eval()
        x = _x()
        scale, offset = norm.deployed()
        if scale.dim() == 1:
            scale, offset = scale.expand(4, 3), offset.expand(4, 3)
        want = x * scale.view(4, 1, 3, 1, 1) + offset.view(4, 1, 3, 1, 1)
        torch.testing.assert_close(norm(x), want)


def test_shape_errors_name_the_problem() -> None:
    norm = TemporalBatchNorm(3, kind="bntt", time_steps=4)
    with pytest.raises(ValueError, match="time steps"):
        norm(torch.randn(5, 2, 3))
    with pytest.raises(ValueError, match=r"\[T, B, 3"):
        norm(torch.randn(4, 2, 6))
    with pytest.raises(tricks.TrickError, match="alpha"):
        tricks.make("normalization", {"name": "tdbn", "alpha": -1})

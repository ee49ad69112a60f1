"""Loss levels: values against their formulas, readouts, logits."""

from __future__ import annotations

import math

import pytest
import torch

import tricks

T, B, K = 4, 3, 5


def _spikes() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (torch.rand(T, B, K, generator=g) < 0.4).float()


Y = torch.tensor([0, 3, 4])


def _ce(logits: list[float], target: int) -> float:
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def test_mse_rate_is_mean_squared_error_of_rates() -> None:
    s = _spikes()
    level = tricks.make("loss", "mse-rate")
    expected = 0.0
    for b in range(B):
        for k in range(K):
            rate = sum(float(s[t, b, k]) for t in range(T)) / T
            expected += (rate - (1.0 if k == int(Y[b]) else 0.0)) ** 2
    assert float(level.loss(s, Y)) == pytest.approx(expected / (B * K), rel=1e-6)
    assert level.readout == "spike"
    torch.testing.assert_close(level.logits(s), s.mean(0))


def test_ce_rate_is_cross_entropy_per_step_averaged() -> None:
    s = _spikes()
    expected = sum(_ce(s[t, b].tolist(), int(Y[b])) for t in range(T) for b in range(B))
    level = tricks.make("loss", "ce-rate")
    assert float(level.loss(s, Y)) == pytest.approx(expected / (T * B), rel=1e-6)


def test_ce_count_is_cross_entropy_of_counts() -> None:
    s = _spikes()
    counts = s.sum(0)
    expected = sum(_ce(counts[b].tolist(), int(Y[b])) for b in range(B)) / B
    level = tricks.make("loss", "ce-count")
    assert float(level.loss(s, Y)) == pytest.approx(expected, rel=1e-6)
    torch.testing.assert_close(level.logits(s), counts)


def test_ce_membrane_uses_the_mean_membrane_of_a_non_spiking_readout() -> None:
    mem = torch.randn(T, B, K, generator=torch.Generator().manual_seed(2))
    mean = mem.mean(0)
    expected = sum(_ce(mean[b].tolist(), int(Y[b])) for b in range(B)) / B
    level = tricks.make("loss", "ce-membrane")
    assert level.readout == "membrane"
    assert float(level.loss(mem, Y)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name", ["mse-rate", "ce-rate", "ce-count", "ce-membrane"])
def test_every_loss_gives_gradients_that_favour_the_target(name: str) -> None:
    out = torch.full((T, B, K), 0.5, requires_grad=True)
    tricks.make("loss", name).loss(out, Y).backward()
    grad = out.grad.sum(0)
    for b in range(B):
        # Descending the gradient raises the target output more than any other.
        assert int((-grad[b]).argmax()) == int(Y[b])

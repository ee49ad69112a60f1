"""LIF recurrence: step-by-step equivalence with snntorch.Leaky, and its hand-written backward."""

from __future__ import annotations

import pytest
import snntorch as snn
import torch

from models.neurons import LIF, lif_sequence
from models.surrogates import ATan, FastSigmoid

CASES = [("subtract", "atan"), ("zero", "atan"), ("subtract", "fast-sigmoid"),
         ("zero", "fast-sigmoid")]


def _pair(name: str):
    if name == "atan":
        return ATan(2.0), snn.surrogate.atan(alpha=2.0)
    return FastSigmoid(25.0), snn.surrogate.fast_sigmoid(slope=25)


@pytest.mark.parametrize(("reset", "surrogate"), CASES)
def test_lif_equals_snntorch_leaky(reset: str, surrogate: str) -> None:
    torch.manual_seed(0)
    ours_fn, theirs_fn = _pair(surrogate)
    current = (torch.randn(16, 5, 40) * 1.5).requires_grad_()
    lif = LIF(beta=0.9, threshold=1.0, reset=reset, spike_fn=ours_fn)
    lif.record_membrane = True
    spk = lif(current)
    mem = lif.last_membrane

    ref = snn.Leaky(beta=0.9, threshold=1.0, reset_mechanism=reset, spike_grad=theirs_fn)
    current_ref = current.detach().clone().requires_grad_()
    state = ref.reset_mem()
    spikes, mems = [], []
    for t in range(current.shape[0]):
        s, state = ref(current_ref[t], state)
        spikes.append(s)
        mems.append(state)
    spk_ref, mem_ref = torch.stack(spikes), torch.stack(mems)

    assert 0.05 < spk.mean().item() < 0.6  # both branches of the reset are exercised
    assert torch.equal(spk, spk_ref)
    assert torch.equal(mem, mem_ref)
    w_s, w_m = torch.randn_like(spk), torch.randn_like(spk)
    (spk * w_s + mem * w_m).sum().backward()
    (spk_ref * w_s + mem_ref * w_m).sum().backward()
    assert current.grad is not None and current_ref.grad is not None
    torch.testing.assert_close(current.grad, current_ref.grad, atol=1e-5, rtol=0)


def _reference_loop(current: torch.Tensor, beta: float, thr: float, reset: str, fn):
    """Plain autograd over steps, the same equations (reset detached)."""
    u = torch.zeros_like(current[0])
    s_prev = torch.zeros_like(u)
    spikes, mems = [], []
    for t in range(current.shape[0]):
        r = s_prev.detach()
        if reset == "zero":
            u = beta * ((1 - r) * u) + current[t]
        else:
            u = beta * u + current[t] - r * thr
        mems.append(u)
        s_prev = fn(u - thr)
        spikes.append(s_prev)
    return torch.stack(spikes), torch.stack(mems)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_backward_matches_autograd_loop_in_float64(reset: str) -> None:
    torch.manual_seed(1)
    fn = ATan(2.0)
    current = (torch.randn(9, 3, 7, dtype=torch.float64) * 1.2).requires_grad_()
    spk, mem = lif_sequence(current, beta=0.8, threshold=0.7, reset=reset, spike_fn=fn)
    c2 = current.detach().clone().requires_grad_()
    spk_r, mem_r = _reference_loop(c2, 0.8, 0.7, reset, fn)
    assert torch.equal(spk, spk_r)
    torch.testing.assert_close(mem, mem_r)
    g1, g2 = torch.randn_like(spk), torch.randn_like(spk)
    (ours,) = torch.autograd.grad((spk * g1 + mem * g2).sum(), current)
    (ref,) = torch.autograd.grad((spk_r * g1 + mem_r * g2).sum(), c2)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=1e-10)


def test_non_spiking_readout_is_a_leaky_integrator() -> None:
    torch.manual_seed(2)
    current = torch.randn(6, 2, 3, dtype=torch.float64, requires_grad=True)
    lif = LIF(beta=0.5, threshold=1.0, fire=False)
    mem = lif(current)
    expected = torch.zeros_like(current[0])
    for t in range(6):
        expected = 0.5 * expected + current[t]
        torch.testing.assert_close(mem[t], expected)
    g = torch.randn_like(mem)
    (grad,) = torch.autograd.grad((mem * g).sum(), current)
    # dL/dI_t = sum_{k >= t} beta^(k - t) g_k
    for t in range(6):
        want = sum(0.5 ** (k - t) * g[k] for k in range(t, 6))
        torch.testing.assert_close(grad[t], want)
    assert lif.spike_count is None


def test_spike_count_and_validation() -> None:
    lif = LIF()
    spk = lif(torch.full((4, 2, 3), 2.0))
    assert float(lif.spike_count) == spk.sum().item() == 24.0  # 2 > threshold at every step
    with pytest.raises(ValueError, match="beta"):
        LIF(beta=1.5)
    with pytest.raises(ValueError, match="threshold"):
        LIF(threshold=0.0)
    with pytest.raises(ValueError, match="reset"):
        LIF(reset="hard")  # type: ignore[arg-type]

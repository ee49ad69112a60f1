"""Training batch norm through the fused CPU kernels (models/fused/bn.c) against torch's.

Float BN must give ``F.batch_norm``'s output, gradients and running statistics (float64 to
1e-12, float32 to float rounding); shift BN is compared with the composed formula in
tests/test_shift_bn.py, and its AP2 here at the rounding boundaries. Also: the layouts the
kernels take and those they leave to torch, a block split over threads, and no input gradient.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models import fused
from models.norm import TemporalBatchNorm, _row_kernels, _RowBatchNorm, ap2_exact
from tests.test_shift_bn import _graph_has

pytestmark = pytest.mark.skipif(fused.kernels() is None, reason="no C compiler for the kernel")


def _pair(shape, dtype, channels_last, seed=0):
    torch.manual_seed(seed)
    c = shape[1]
    spread = torch.linspace(0.3, 4.0, c, dtype=dtype).view(1, c, *(1,) * (len(shape) - 2))
    x = torch.randn(shape, dtype=dtype) * spread + 5.0  # an offset mean: cancellation tested
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, dtype=dtype)
    b = torch.randn(c, dtype=dtype)
    return x, w, b


def _grads(fn, x, w, b, g):
    x, w, b = (t.clone().requires_grad_() for t in (x, w, b))
    rm, rv = torch.full_like(w, 0.3), torch.full_like(w, 2.0)
    y = fn(x, rm, rv, w, b)
    y.backward(g)
    return y.detach(), x.grad, w.grad, b.grad, rm, rv


def _kernel(x, rm, rv, w, b):
    assert _row_kernels(x, rm, rv, w, b)
    return _RowBatchNorm.apply(x, w, b, rm, rv, 0.1, 1e-5, False)


def _torch(x, rm, rv, w, b):
    return F.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5)


@pytest.mark.parametrize(("shape", "channels_last"), [((12, 5, 7, 9), True), ((300, 6), False),
                                                     ((2, 3, 1, 1), True)])
def test_float_bn_equals_torch_in_float64(shape, channels_last) -> None:
    x, w, b = _pair(shape, torch.float64, channels_last)
    g = torch.randn_like(x)
    ours, ref = _grads(_kernel, x, w, b, g), _grads(_torch, x, w, b, g)
    for name, a, r in zip(("y", "dx", "dgamma", "dbeta", "running_mean", "running_var"),
                          ours, ref):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-11, msg=name)
    assert ours[0].stride() == x.stride() and ours[1].stride() == x.stride()


def test_float_bn_float32_is_as_accurate_as_torch() -> None:
    """In float32 both round differently; against the float64 result, the kernel's error is
    no larger than torch's (up to a margin), for every output."""
    x, w, b = _pair((64 * 6, 16, 9, 9), torch.float32, True)
    g = torch.randn_like(x)
    ours, ref = _grads(_kernel, x, w, b, g), _grads(_torch, x, w, b, g)
    exact = _grads(_torch, x.double(), w.double(), b.double(), g.double())
    for name, a, r, e in zip(("y", "dx", "dgamma", "dbeta", "running_mean", "running_var"),
                             ours, ref, exact):
        scale = e.abs().max().item()
        err_ours = (a.double() - e).abs().max().item() / scale
        err_torch = (r.double() - e).abs().max().item() / scale
        assert err_ours <= 2 * err_torch + 1e-6, (name, err_ours, err_torch)


def test_threads_change_only_the_summation_order() -> None:
    x, w, b = _pair((40, 8, 33, 33), torch.float64, True)  # 348,480 elements: split
    g = torch.randn_like(x)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _grads(_kernel, x, w, b, g)
        torch.set_num_threads(3)
        three = _grads(_kernel, x, w, b, g)
    finally:
        torch.set_num_threads(threads)
    for a, r in zip(one, three):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-11)


def test_without_an_input_gradient_only_the_parameters_get_one() -> None:
    x, w, b = _pair((10, 4), torch.float64, False)
    w.requires_grad_()
    b.requires_grad_()
    rm, rv = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    _RowBatchNorm.apply(x, w, b, rm, rv, 0.1, 1e-5, False).sum().backward()
    # d/dgamma of sum(y) = sum(x_hat) = 0, d/dbeta = n.
    torch.testing.assert_close(w.grad, torch.zeros(4, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(b.grad, torch.full((4,), 10.0, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ap2_of_the_kernel_at_the_rounding_boundaries(dtype) -> None:
    """The kernel's AP2 (frexp, in C) against ``ap2_exact`` at and beside sqrt(1/2) * 2^k, at
    powers of two, negatives and zero."""
    root = torch.tensor(0.5 ** 0.5, dtype=dtype)
    gamma = torch.cat([torch.tensor([0.0, 1.0, -1.0, 0.125, 3.0, -6.0, 1e-3, 40.0], dtype=dtype),
                       torch.nextafter(root, torch.tensor(0.0, dtype=dtype)).view(1),
                       root.view(1), torch.nextafter(root, torch.tensor(1.0, dtype=dtype)).view(1),
                       -4 * root.view(1)])
    x = torch.randn(50, gamma.numel(), dtype=dtype)
    _, saved = fused.kernels().bn_forward(x, gamma, torch.zeros_like(gamma), None, None, 0.1,
                                          1e-5, True)
    assert torch.equal(saved[2], ap2_exact(gamma))  # G = AP2(gamma)
    assert torch.equal(saved[3], ap2_exact(saved[1]))  # R = AP2(inv_std)


def test_layouts_the_kernels_leave_to_torch() -> None:
    k = fused.kernels()
    assert k.rows(torch.zeros(4, 3, 5, 5).contiguous(memory_format=torch.channels_last)) == (100, 3)
    assert k.rows(torch.zeros(7, 3)) == (7, 3)
    assert k.rows(torch.zeros(4, 3, 5, 5)) is None  # NCHW: channels not innermost
    assert k.rows(torch.zeros(7, 3).t()) is None
    assert k.rows(torch.zeros(7, 3, dtype=torch.float16)) is None
    x = torch.zeros(7, 3)
    assert not _row_kernels(x, torch.zeros(3, dtype=torch.float64))  # parameter dtype differs


@pytest.mark.parametrize("kind", ["bn", "tdbn", "bntt"])
def test_module_training_equals_the_torch_path(kind, monkeypatch) -> None:
    """TemporalBatchNorm in training, kernel against torch (F.batch_norm), on a channels-last
    [T, B, C, H, W] conv map; evaluation afterwards uses the running statistics both built."""
    torch.manual_seed(3)
    a = TemporalBatchNorm(4, kind=kind, time_steps=3, factor=0.7 if kind == "tdbn" else 1.0)
    a = a.double()
    with torch.no_grad():
        a.weight.uniform_(0.5, 2.0)
        a.bias.uniform_(-1.0, 1.0)
    b = TemporalBatchNorm(4, kind=kind, time_steps=3,
                          factor=0.7 if kind == "tdbn" else 1.0).double()
    b.load_state_dict(a.state_dict())
    x = (torch.randn(3 * 6, 4, 5, 5, dtype=torch.float64) * 2 + 1).contiguous(
        memory_format=torch.channels_last).view(3, 6, 4, 5, 5)
    g = torch.randn_like(x)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya = a(xa)
    assert _graph_has(ya, "_RowBatchNormBackward")  # the kernel ran, not torch twice
    ya.backward(g)
    with monkeypatch.context() as m:
        m.setattr(fused, "kernels", lambda: None)
        b(xb).backward(g)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(a.weight.grad, b.weight.grad, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(a.bias.grad, b.bias.grad, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(a.running_var, b.running_var, rtol=1e-12, atol=1e-12)
    a.eval()
    b.eval()
    torch.testing.assert_close(a(x), b(x), rtol=1e-12, atol=1e-12)

"""2x2 max pooling through the fused CPU kernel (models/fused/pool.c) against F.max_pool2d.

Max pooling only selects values, so outputs and input gradients must be equal exactly: on spike
maps (binary, ties everywhere: the first maximal position of the window gets the gradient),
on real values with planted ties and NaN, and with odd H and W (uncovered last row/column).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models import fused
from models.layers import TimePool, _max_pool

pytestmark = pytest.mark.skipif(fused.kernels() is None, reason="no C compiler for the kernel")


def _both(x: torch.Tensor, g_seed: int = 0):
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = _max_pool(a, 2), F.max_pool2d(b, 2)
    torch.manual_seed(g_seed)
    g = torch.randn_like(yb)
    ya.backward(g)
    yb.backward(g)
    return ya, yb, a.grad, b.grad


def _cl(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("hw", [(8, 8), (9, 7), (2, 3)])
def test_spike_maps_equal_torch_exactly(dtype, hw) -> None:
    torch.manual_seed(0)
    x = _cl((torch.rand(6, 5, *hw) < 0.3).to(dtype))
    assert fused.kernels().pools(x)
    ya, yb, ga, gb = _both(x)
    assert torch.equal(ya, yb) and torch.equal(ga, gb)
    assert ya.is_contiguous(memory_format=torch.channels_last)
    assert ga.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("channels", [1, 3, 16, 32, 48, 64, 128])
def test_every_channel_loop_of_the_kernel(channels) -> None:
    """The kernel unrolls its channel loop for 16, 32, 64 and 128 channels and keeps a generic
    loop for the rest: each equals torch."""
    torch.manual_seed(channels)
    x = _cl((torch.rand(4, channels, 7, 6) < 0.3).float())
    assert fused.kernels().pools(x)
    ya, yb, ga, gb = _both(x)
    assert torch.equal(ya, yb) and torch.equal(ga, gb)


def test_ties_and_nan_follow_torch() -> None:
    torch.manual_seed(1)
    x = torch.randn(3, 4, 6, 6).round()  # many ties among small integers
    x[0, 0, 0, 1] = float("nan")
    x[1, 2, 3, 3] = float("nan")
    x[2, 1, 4, 4] = x[2, 1, 5, 5] = 7.0  # a tie at the maximum, diagonal
    assert fused.kernels().pools(_cl(x))
    ya, yb, ga, gb = _both(_cl(x))
    assert torch.equal(ya.isnan(), yb.isnan())
    assert torch.equal(ya.nan_to_num(), yb.nan_to_num())
    assert torch.equal(ga, gb)


def test_time_pool_takes_the_kernel_only_where_it_applies() -> None:
    k = fused.kernels()
    assert not k.pools(torch.zeros(2, 32, 4, 4))  # NCHW
    assert not k.pools(_cl(torch.zeros(2, 32, 1, 4)))  # no full window
    assert not k.pools(_cl(torch.zeros(2, 32, 4, 4, dtype=torch.float16)))
    assert k.pools(_cl(torch.zeros(2, 1, 4, 4)))
    pool = TimePool("max")
    x = _cl(torch.rand(3 * 2, 32, 6, 6)).view(3, 2, 32, 6, 6)
    torch.testing.assert_close(pool(x), F.max_pool2d(x.flatten(0, 1), 2).unflatten(0, (3, 2)),
                               rtol=0, atol=0)
    plain = torch.rand(3, 2, 32, 6, 6)  # contiguous: torch's kernel
    torch.testing.assert_close(pool(plain),
                               F.max_pool2d(plain.flatten(0, 1), 2).unflatten(0, (3, 2)))


def test_large_map_split_over_threads() -> None:
    torch.manual_seed(2)
    x = _cl((torch.rand(64, 16, 17, 17) < 0.2).float())  # 295,936 elements: split
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        ya, yb, ga, gb = _both(x)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(ya, yb) and torch.equal(ga, gb)

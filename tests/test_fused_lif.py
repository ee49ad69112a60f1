"""The fused CPU LIF kernel (models/fused) against the torch loop it replaces.

Forward must be bit-equal (same operations in the same order); backward is the same formula in a
different rounding order, so it is compared in float64 to 1e-12 and in float32 to float
rounding. Every reset, the non-spiking readout, every spike function the kernel knows, the
channels-last layout of the conv layers, incoming gradients of another layout, a block large
enough to be split over threads, and the fallbacks (unknown spike function, kernel turned off,
no compiler) are covered.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models import fused, neurons
from models.neurons import lif_sequence
from models.surrogates import (
    STE,
    ATan,
    Erf,
    FastSigmoid,
    PiecewiseExp,
    Rectangle,
    Sigmoid,
    Triangle,
)

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(fused.kernels() is None, reason="no C compiler for the kernel")

SPIKE_FNS = [ATan(2.0), Rectangle(0.8), Sigmoid(4.0), FastSigmoid(25.0), Triangle(1.0), Erf(2.0),
             PiecewiseExp(2.0), STE()]


def _spy(fn, name: str, calls: list[str]):
    def call(*args):
        calls.append(name)
        return fn(*args)
    return call


def _run(current: torch.Tensor, *, use_kernel: bool, monkeypatch, grads,
         kernel_backward: bool = True, **kw):
    """(spikes, membrane, dL/dI) of lif_sequence with the kernel on or off; with it on, the
    kernel's forward must have run, and its backward exactly when ``kernel_backward``."""
    calls: list[str] = []
    with monkeypatch.context() as m:
        if use_kernel:
            k = fused.kernels()
            for name in ("forward", "backward"):
                m.setattr(k, name, _spy(getattr(k, name), name, calls))
        else:
            m.setattr(fused, "kernels", lambda: None)
        x = current.detach().clone().requires_grad_()
        spk, mem = lif_sequence(x, **kw)
        outs = [o for o, g in zip((spk, mem), grads) if g is not None]
        gs = [g for g in grads if g is not None]
        (grad,) = torch.autograd.grad(outs, x, gs)
    if use_kernel:
        assert calls == (["forward", "backward"] if kernel_backward else ["forward"]), calls
    return spk.detach(), mem.detach(), grad


def _current(shape, dtype, seed=0):
    torch.manual_seed(seed)
    return torch.randn(*shape, dtype=dtype) * 1.3 + 0.3


@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("fn", SPIKE_FNS, ids=lambda f: type(f).__name__)
def test_kernel_equals_torch_loop_in_float64(reset, fn, monkeypatch) -> None:
    current = _current((7, 3, 37), torch.float64)
    g_spk, g_mem = torch.randn_like(current), torch.randn_like(current)
    kw = dict(beta=0.85, threshold=0.9, reset=reset, spike_fn=fn)
    ours = _run(current, use_kernel=True, monkeypatch=monkeypatch, grads=(g_spk, g_mem), **kw)
    ref = _run(current, use_kernel=False, monkeypatch=monkeypatch, grads=(g_spk, g_mem), **kw)
    assert 0.1 < ref[0].mean() < 0.7  # both sides of the threshold, resets exercised
    assert torch.equal(ours[0], ref[0]) and torch.equal(ours[1], ref[1])
    torch.testing.assert_close(ours[2], ref[2], atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_float32_channels_last_forward_is_bit_equal(reset, monkeypatch) -> None:
    # A conv layer's [T, B, C, H, W] view of a channels-last [T*B, C, H, W] map.
    maps = _current((6 * 4, 5, 9, 9), torch.float32).contiguous(
        memory_format=torch.channels_last)
    current = maps.view(6, 4, 5, 9, 9)
    assert not current.is_contiguous() and fused.dense_time_major(current)
    g = torch.randn_like(current)
    kw = dict(beta=0.9, threshold=1.0, reset=reset, spike_fn=ATan(2.0))
    ours = _run(current, use_kernel=True, monkeypatch=monkeypatch, grads=(g, None), **kw)
    ref = _run(current, use_kernel=False, monkeypatch=monkeypatch, grads=(g, None), **kw)
    assert torch.equal(ours[0], ref[0]) and torch.equal(ours[1], ref[1])
    assert ours[1].stride() == current.stride()  # the layout passes through
    torch.testing.assert_close(ours[2], ref[2], atol=1e-6, rtol=1e-5)


def test_gradient_of_another_layout_and_spikes_only(monkeypatch) -> None:
    """``spk.sum()`` sends an expanded (stride 0) gradient; a contiguous one reaches a
    channels-last output: both are brought to the membrane's layout first."""
    maps = _current((3 * 2, 4, 5, 5), torch.float64).contiguous(
        memory_format=torch.channels_last)
    current = maps.view(3, 2, 4, 5, 5).detach().requires_grad_()
    kw = dict(beta=0.7, threshold=0.5, reset="subtract", spike_fn=ATan(2.0))
    spk, _ = lif_sequence(current, **kw)
    (g1,) = torch.autograd.grad(spk.sum(), current)
    weight = torch.randn(3, 2, 4, 5, 5, dtype=torch.float64)  # contiguous
    spk, _ = lif_sequence(current, **kw)
    (g2,) = torch.autograd.grad((spk * weight).sum(), current)
    with monkeypatch.context() as m:
        m.setattr(fused, "kernels", lambda: None)
        spk, _ = lif_sequence(current, **kw)
        (r1,) = torch.autograd.grad(spk.sum(), current)
        spk, _ = lif_sequence(current, **kw)
        (r2,) = torch.autograd.grad((spk * weight).sum(), current)
    torch.testing.assert_close(g1, r1, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(g2, r2, atol=1e-12, rtol=1e-12)


def test_non_spiking_readout(monkeypatch) -> None:
    current = _current((8, 5, 10), torch.float64)
    g = torch.randn_like(current)
    kw = dict(beta=0.6, threshold=1.0, reset="subtract", spike_fn=ATan(2.0), fire=False)
    ours = _run(current, use_kernel=True, monkeypatch=monkeypatch, grads=(None, g), **kw)
    ref = _run(current, use_kernel=False, monkeypatch=monkeypatch, grads=(None, g), **kw)
    assert torch.equal(ours[1], ref[1])
    torch.testing.assert_close(ours[2], ref[2], atol=1e-12, rtol=1e-12)
    # dL/dI_t = sum_{k >= t} beta^(k - t) g_k, the formula itself at one point.
    want = sum(0.6 ** (k - 2) * g[k, 1, 3] for k in range(2, 8))
    torch.testing.assert_close(ours[2][2, 1, 3], want)


def test_block_split_over_threads_equals_one_call(monkeypatch) -> None:
    """A block above the split size runs in chunks on a thread pool: same numbers."""
    current = _current((4, 8, 33, 101), torch.float32)  # 106,656 elements per step
    g = torch.randn_like(current)
    kw = dict(beta=0.9, threshold=1.0, reset="zero", spike_fn=Rectangle(0.8))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _run(current, use_kernel=True, monkeypatch=monkeypatch, grads=(g, None), **kw)
        torch.set_num_threads(3)
        split = _run(current, use_kernel=True, monkeypatch=monkeypatch, grads=(g, None), **kw)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(one, split):
        assert torch.equal(a, b)


def test_unknown_spike_function_keeps_the_torch_backward(monkeypatch) -> None:
    class Shifted(ATan):  # a subclass may redefine the derivative: not the kernel's ATan
        def derivative(self, x):
            return super().derivative(x - 0.1)

        def derivative_(self, x):
            return self.derivative(x)

        def backward_step_(self, x, grad, carry, beta):
            d = self.derivative(x) * grad
            return d if carry is None else d.add_(carry, alpha=beta)

    current = _current((5, 2, 9), torch.float64)
    g = torch.randn_like(current)
    kw = dict(beta=0.8, threshold=1.0, reset="subtract", spike_fn=Shifted(2.0))
    ours = _run(current, use_kernel=True, monkeypatch=monkeypatch, grads=(g, None),
                kernel_backward=False, **kw)
    ref = _run(current, use_kernel=False, monkeypatch=monkeypatch, grads=(g, None), **kw)
    plain = _run(current, use_kernel=True, monkeypatch=monkeypatch, grads=(g, None),
                 **{**kw, "spike_fn": ATan(2.0)})
    torch.testing.assert_close(ours[2], ref[2], atol=1e-12, rtol=1e-12)
    assert not torch.allclose(ours[2], plain[2])
    assert type(kw["spike_fn"]) not in neurons._KERNEL_SURROGATE


def test_dense_time_major_layouts() -> None:
    x = torch.zeros(3, 4, 5, 6, 7)
    assert fused.dense_time_major(x)
    assert fused.dense_time_major(torch.zeros(12, 5, 6, 7).contiguous(
        memory_format=torch.channels_last).view(3, 4, 5, 6, 7))
    assert not fused.dense_time_major(x[:, :, :, ::2])  # gaps
    assert not fused.dense_time_major(x.transpose(0, 1))  # time not outermost
    assert not fused.dense_time_major(torch.zeros(3, 1).expand(3, 4))  # stride 0


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=120)


def test_turned_off_or_without_a_compiler_the_torch_loop_runs(tmp_path) -> None:
    code = ("import warnings, torch\n"
            "warnings.simplefilter('always')\n"
            "from models import fused\n"
            "from models.neurons import lif_sequence\n"
            "from models.surrogates import ATan\n"
            "print('kernels', fused.kernels() is not None)\n"
            "x = torch.randn(4, 3, requires_grad=True)\n"
            "s, m = lif_sequence(x, beta=0.9, threshold=1.0, reset='subtract',"
            " spike_fn=ATan())\n"
            "s.sum().backward()\n"
            "print('grad', x.grad.shape)\n")
    off = _python(code, {fused.ENV: "0"})
    assert off.returncode == 0, off.stderr
    assert "kernels False" in off.stdout and "grad torch.Size([4, 3])" in off.stdout
    assert "unavailable" not in off.stderr  # turned off on purpose: no warning
    # A fresh cache (nothing compiled yet) and no compiler: one warning naming why, then on.
    none = _python(code, {"BSNN_CACHE_DIR": str(tmp_path), "CC": "no-such-cc"})
    assert none.returncode == 0, none.stderr
    assert "kernels False" in none.stdout and "grad torch.Size([4, 3])" in none.stdout
    assert "fused CPU kernels unavailable" in none.stderr and "no-such-cc" in none.stderr


def test_processes_compiling_at_once_share_one_build_and_a_damaged_one_is_rebuilt(
        tmp_path) -> None:
    """Two processes with an empty kernel cache start together: both get the kernels, from one
    library file (the lock and the atomic rename); a cached file that does not load is compiled
    again instead of turning the kernels off."""
    code = ("from models import fused\n"
            "k = fused.kernels()\n"
            "print('kernels', k is not None)\n")
    env = {**os.environ, "BSNN_CACHE_DIR": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0 and "kernels True" in out, err
    built = sorted((tmp_path / "kernels").glob("fused-*.so"))
    assert len(built) == 1
    assert not list((tmp_path / "kernels").glob("*.tmp"))
    built[0].write_bytes(b"not a shared library")
    again = _python(code, {"BSNN_CACHE_DIR": str(tmp_path)})
    assert again.returncode == 0 and "kernels True" in again.stdout, again.stderr
    assert "unavailable" not in again.stderr
    assert built[0].read_bytes() != b"not a shared library"

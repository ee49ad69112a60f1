"""Reference interpreters of the folded operations (numpy): float64 and integer.

Both take time-major frames ``[T, N, *input_shape]`` and return the output spikes ``[T, N, K]``.
The synaptic layers are stateless, so they run over all steps at once; only the neurons loop
over time. Neuron semantics are those of :mod:`models.neurons` (snntorch's ``Leaky``): spike
``v_t > theta``; ``zero`` reset ``v_t = beta * (1 - s_{t-1}) * v_{t-1} + I_t``; ``subtract``
``v_t = beta * v_{t-1} + I_t - s_{t-1} * theta``.

The integer interpreter (:func:`forward_int`) computes what a digital BSNN core would:

* ±1 weights as bits ``w_bit`` (1 for +1); for an input ``x`` of spikes or event counts,
  ``W'·x = 2·popcount(w_bit ∧ x) − popcount(x)`` (with counts, ``popcount`` is the sum of the
  selected counts). The sums are integers well below 2^53, so a float64 BLAS product computes
  them exactly and fast; they are converted to ``int64`` at once.
* Membranes in fixed point with ``frac_bits`` fractional bits per folded unit: the current is
  ``(W'·x) << frac_bits`` plus the integer bias; the threshold is ``floor(theta * 2^frac_bits)``
  (``v > theta`` for an integer ``v`` exactly when ``v > floor(theta * 2^frac_bits)``).
* The leak: ``beta = 2^-k`` is ``v >> k``; ``beta = 1 - 2^-k`` is ``v - (v >> k)``; any other
  beta is the fixed-point product ``(v * round(beta * 2^16)) >> 16``. Shifts floor.

The only departures from exact arithmetic are the rounding of biases and thresholds to
``2^-frac_bits`` of a unit and the flooring leak, each below one unit in the last place per
step; a neuron whose float membrane lands that close to its threshold may decide differently.
"""

from __future__ import annotations

import math

import numpy as np

from harness.deploy.fold import Flatten, Neuron, Op, Pool, Synapse

__all__ = ["LEAK_FRAC_BITS", "forward_float", "forward_int", "leak_rule"]

#: Fractional bits of a fixed-point leak factor (beta not of the form 2^-k or 1 - 2^-k).
LEAK_FRAC_BITS = 16
_CHUNK = 64  # samples per batch of the im2col products


def _im2col_conv(x: np.ndarray, w: np.ndarray, padding: int) -> np.ndarray:
    """``x [B, C, H, W]`` with ``w [O, C, k, k]``, stride 1, zero padding: ``[B, O, H, W]``."""
    k = w.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))  # B C H W k k
    b, c, h, ww = win.shape[:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(b * h * ww, c * k * k)
    out = cols @ w.reshape(w.shape[0], -1).T
    return out.reshape(b, h, ww, -1).transpose(0, 3, 1, 2)


def _pool(x: np.ndarray, size: int, kind: str) -> np.ndarray:
    """Non-overlapping ``size x size`` pooling over the last two axes (floor of odd sizes)."""
    *lead, h, w = x.shape
    h2, w2 = h // size, w // size
    blocks = x[..., :h2 * size, :w2 * size].reshape(*lead, h2, size, w2, size)
    return blocks.max(axis=(-3, -1)) if kind == "or" else blocks.sum(axis=(-3, -1))


def _synapse(x: np.ndarray, weight: np.ndarray, kind: str, padding: int) -> np.ndarray:
    """``[T, N, ...]`` through a bias-free conv / linear map, all steps at once."""
    t, n = x.shape[:2]
    flat = x.reshape(t * n, *x.shape[2:]).astype(np.float64)
    if kind == "linear":
        out = flat @ weight.T
    else:
        out = np.concatenate([_im2col_conv(flat[s:s + _CHUNK * t], weight, padding)
                              for s in range(0, t * n, _CHUNK * t)])
    return out.reshape(t, n, *out.shape[1:])


def _channel(v: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Per-channel ``v [C]`` broadcast against ``like [T, N, C, ...]``."""
    return v.reshape(-1, *(1,) * (like.ndim - 3))


def _run_neurons(current: np.ndarray, threshold: np.ndarray, reset: str, leak) -> np.ndarray:
    spikes = np.zeros(current.shape, dtype=np.int8)
    v = np.zeros_like(current[0])
    for t in range(current.shape[0]):
        if t:
            prev = spikes[t - 1].astype(v.dtype)
            if reset == "zero":
                v = leak(v * (1 - prev)) + current[t]
            else:
                v = leak(v) + current[t] - prev * threshold
        else:
            v = current[0].copy()
        spikes[t] = v > threshold
    return spikes


def forward_float(ops: list[Op], frames: np.ndarray) -> np.ndarray:
    """The folded network in float64: output spikes ``[T, N, K]`` (int8)."""
    x = np.asarray(frames, dtype=np.float64)
    for op in ops:
        if isinstance(op, Synapse):
            out = _synapse(x, op.weight, op.kind, op.padding)
            x = out + _channel(op.bias, out)
        elif isinstance(op, Pool):
            x = _pool(x, op.size, op.kind)
        elif isinstance(op, Neuron):
            beta = op.beta
            thr = _channel(op.threshold, x)
            x = _run_neurons(x, thr, op.reset, lambda v, b=beta: b * v).astype(np.float64)
        elif isinstance(op, Flatten):
            x = x.reshape(*x.shape[:2], -1)
    return x.astype(np.int8)


def leak_rule(beta: float) -> tuple[str, int]:
    """How the integer interpreter applies ``beta``: ``("shift", k)`` for ``2^-k``,
    ``("one-minus-shift", k)`` for ``1 - 2^-k``, ``("fixed", round(beta * 2^16))`` otherwise
    (``("zero", 0)`` and ``("none", 0)`` for beta 0 and 1)."""
    if beta == 0.0:
        return "zero", 0
    if beta == 1.0:
        return "none", 0
    k = -math.log2(beta)
    if k == int(k):
        return "shift", int(k)
    k = -math.log2(1.0 - beta)
    if k == int(k):
        return "one-minus-shift", int(k)
    return "fixed", int(round(beta * 2 ** LEAK_FRAC_BITS))


def _int_leak(rule: tuple[str, int]):
    kind, k = rule
    if kind == "zero":
        return lambda v: np.zeros_like(v)
    if kind == "none":
        return lambda v: v
    if kind == "shift":
        return lambda v: v >> k
    if kind == "one-minus-shift":
        return lambda v: v - (v >> k)
    return lambda v: (v * k) >> LEAK_FRAC_BITS


def forward_int(layers: list[dict], frames: np.ndarray, *, frac_bits: int) -> np.ndarray:
    """The packed integer model: output spikes ``[T, N, K]`` (int8).

    ``layers`` are the unpacked layers of :func:`harness.deploy.packed.load_packed`: dicts with
    ``op`` in ``synapse`` (``w_bit`` 0/1 array, integer ``bias``), ``pool``, ``neuron``
    (integer ``threshold``, ``leak`` rule, ``reset``) and ``flatten``.
    """
    x = np.asarray(frames)
    if not np.array_equal(x, np.round(x)):
        raise ValueError("the integer model takes integer event counts as input")
    x = x.astype(np.int64)
    for layer in layers:
        op = layer["op"]
        if op == "synapse":
            w_bit = layer["w_bit"].astype(np.float64)
            ones = np.ones((1, *w_bit.shape[1:]))
            selected = _synapse(x, w_bit, layer["kind"], layer["padding"])  # popcount(w ∧ x)
            total = _synapse(x, ones, layer["kind"], layer["padding"])      # popcount(x)
            acc = (2 * selected - total).astype(np.int64)
            x = (acc << frac_bits) + _channel(layer["bias"], acc)
        elif op == "pool":
            x = _pool(x, layer["size"], layer["kind"])
        elif op == "neuron":
            thr = _channel(layer["threshold"], x)
            x = _run_neurons(x, thr, layer["reset"], _int_leak(tuple(layer["leak"])))
            x = x.astype(np.int64)
        elif op == "flatten":
            x = x.reshape(*x.shape[:2], -1)
    return x.astype(np.int8)

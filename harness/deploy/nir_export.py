"""The folded network as a NIR graph (the ``nir`` package, NIR node semantics).

Mapping of the discrete neuron ``v <- beta * v + I`` (one step = ``dt``) to NIR's continuous
LIF ``tau dv/dt = (v_leak - v) + R I``: an Euler step of length ``dt`` gives
``v <- (1 - dt/tau) v + (dt/tau) R I``, so ``tau = dt / (1 - beta)``, ``R = 1 / (1 - beta)``,
``v_leak = 0``; ``beta = 1`` is an IF node (``dv/dt = R I``, ``R = 1/dt``). ``dt`` (default 1:
one frame) is stored in the graph's metadata as ``dt``, with ``time_steps`` and the convention.
NIR resets to ``v_reset = 0`` on a spike, which is the ``zero`` reset; a ``subtract`` reset is
refused. Max pooling of spikes (an OR) is a ``SumPool2d`` followed by an IF with threshold 0.5
(``R = 1/dt``, reset 0): the sum is a whole number and the IF is empty at every step. Average
pooling is a ``SumPool2d`` with its ``1/k^2`` already folded into the next layer.

``convention="norse"``: Norse 1.1 ignores the LIF's ``r``, computing ``v <- beta v + (1-beta) I``;
the same spikes then need ``r = 1`` and thresholds multiplied by ``1 - beta``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from harness.deploy.fold import DeployError, Flatten, Neuron, Op, Pool, Synapse

__all__ = ["CONVENTIONS", "to_nir", "write_nir"]

CONVENTIONS = ("standard", "norse")


def _neuron_node(op: Neuron, shape: tuple[int, ...], dt: float, convention: str):
    import nir

    if op.reset != "zero":
        raise DeployError("NIR neurons reset to v_reset (NIR >= 1.0.6), not by subtracting the "
                          "threshold: train with model.neuron.reset: zero to export to NIR")
    thr = np.broadcast_to(op.threshold.reshape(-1, *(1,) * (len(shape) - 1)), shape)
    thr = np.ascontiguousarray(thr, dtype=np.float32)
    zeros = np.zeros(shape, dtype=np.float32)
    if op.beta == 1.0:
        return nir.IF(r=np.full(shape, 1.0 / dt, np.float32), v_threshold=thr, v_reset=zeros)
    r = 1.0 / (1.0 - op.beta)
    if convention == "norse":
        thr, r = thr * np.float32(1.0 - op.beta), 1.0
    return nir.LIF(tau=np.full(shape, dt / (1.0 - op.beta), np.float32),
                   r=np.full(shape, r, np.float32), v_leak=zeros, v_threshold=thr,
                   v_reset=zeros)


def to_nir(ops: list[Op], input_shape: tuple[int, ...], *, dt: float = 1.0,
           convention: Literal["standard", "norse"] = "standard", metadata: dict | None = None):
    """A ``nir.NIRGraph`` of ``ops`` on inputs ``input_shape`` (``(C, H, W)`` or ``(F,)``)."""
    import nir

    if convention not in CONVENTIONS:
        raise DeployError(f"--nir-convention must be one of {CONVENTIONS}, got {convention!r}")
    nodes: dict = {"input": nir.Input(input_type={"input": np.array(input_shape)})}
    order = ["input"]
    shape = tuple(int(d) for d in input_shape)

    def add(name: str, node) -> None:
        nodes[name] = node
        order.append(name)

    for i, op in enumerate(ops):
        if isinstance(op, Synapse):
            w = op.weight.astype(np.float32)
            b = op.bias.astype(np.float32)
            if op.kind == "conv":
                add(f"conv{i}", nir.Conv2d(input_shape=shape[1:], weight=w, stride=1,
                                           padding=op.padding, dilation=1, groups=1, bias=b))
                shape = (w.shape[0], *shape[1:])
            else:
                add(f"affine{i}", nir.Affine(weight=w, bias=b))
                shape = (w.shape[0],)
        elif isinstance(op, Pool):
            k = np.array([op.size, op.size])
            add(f"sumpool{i}", nir.SumPool2d(kernel_size=k, stride=k, padding=np.array([0, 0])))
            shape = (shape[0], shape[1] // op.size, shape[2] // op.size)
            if op.kind == "or":
                ones = np.ones(shape, np.float32)
                add(f"or{i}", nir.IF(r=ones / dt, v_threshold=np.full(shape, 0.5, np.float32),
                                     v_reset=np.zeros(shape, np.float32)))
        elif isinstance(op, Neuron):
            add(f"lif{i}", _neuron_node(op, shape, dt, convention))
        elif isinstance(op, Flatten):
            add(f"flatten{i}", nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0,
                                           end_dim=-1))
            shape = (int(np.prod(shape)),)
    add("output", nir.Output(output_type={"output": np.array(shape)}))
    edges = list(zip(order[:-1], order[1:]))
    meta = {"dt": float(dt), "nir_convention": convention, **(metadata or {})}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def write_nir(path: str | Path, graph) -> None:
    import nir

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    nir.write(str(tmp), graph)
    tmp.replace(path)

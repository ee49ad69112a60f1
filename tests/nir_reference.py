"""A small NIR interpreter written from the NIR node definitions (nir 1.0.8 docstrings), not from
the exporter: each node's continuous-time equation is integrated with forward Euler over steps of
the graph's ``metadata["dt"]``.

* ``LIF``: ``tau dv/dt = (v_leak - v) + R I``; ``z = v > v_threshold``; ``v = v_reset`` where z.
* ``IF``: ``dv/dt = R I``; same threshold and reset.
* ``Conv2d``: cross-correlation with ``weight [C_out, C_in, kx, ky]``, stride, padding,
  dilation, groups, plus ``bias``; ``Affine``: ``W x + b``; ``SumPool2d``: window sums;
  ``Flatten``: ``start_dim``..``end_dim`` of the per-sample shape.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _order(graph) -> list[str]:
    incoming: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        incoming[b].append(a)
    done: list[str] = []
    while len(done) < len(graph.nodes):
        for n in graph.nodes:
            if n not in done and all(p in done for p in incoming[n]):
                done.append(n)
    return done


def simulate(graph, frames: np.ndarray) -> np.ndarray:
    """Output of ``graph`` on ``frames [T, N, *input]``: ``[T, N, *output]``."""
    import nir

    dt = float(graph.metadata["dt"])
    order = _order(graph)
    sources = {n: [a for a, b in graph.edges if b == n] for n in graph.nodes}
    state: dict[str, torch.Tensor] = {}
    outputs = []
    for t in range(frames.shape[0]):
        values: dict[str, torch.Tensor] = {}
        for name in order:
            node = graph.nodes[name]
            if isinstance(node, nir.Input):
                values[name] = torch.as_tensor(frames[t], dtype=torch.float64)
                continue
            x = sum(values[s] for s in sources[name])
            if isinstance(node, nir.Output):
                values[name] = x
                outputs.append(x)
            elif isinstance(node, nir.Conv2d):
                pad = node.padding if isinstance(node.padding, str) else tuple(node.padding)
                y = F.conv2d(x, torch.as_tensor(node.weight, dtype=torch.float64),
                             torch.as_tensor(node.bias, dtype=torch.float64),
                             stride=tuple(node.stride), padding=pad,
                             dilation=tuple(node.dilation), groups=node.groups)
                values[name] = y
            elif isinstance(node, nir.Affine):
                w = torch.as_tensor(node.weight, dtype=torch.float64)
                values[name] = x @ w.T + torch.as_tensor(node.bias, dtype=torch.float64)
            elif isinstance(node, nir.SumPool2d):
                k = tuple(int(v) for v in node.kernel_size)
                pooled = F.avg_pool2d(x, k, stride=tuple(int(v) for v in node.stride),
                                      padding=tuple(int(v) for v in node.padding))
                values[name] = pooled * (k[0] * k[1])
            elif isinstance(node, nir.Flatten):
                start = node.start_dim + 1  # +1: the batch axis
                end = node.end_dim if node.end_dim < 0 else node.end_dim + 1
                values[name] = x.flatten(start, end)
            elif isinstance(node, nir.LIF | nir.IF):
                v = state.get(name, torch.zeros_like(x))
                r = torch.as_tensor(node.r, dtype=torch.float64)
                if isinstance(node, nir.LIF):
                    tau = torch.as_tensor(node.tau, dtype=torch.float64)
                    leak = torch.as_tensor(node.v_leak, dtype=torch.float64)
                    v = v + dt / tau * ((leak - v) + r * x)
                else:
                    v = v + dt * r * x
                z = (v > torch.as_tensor(node.v_threshold, dtype=torch.float64)).double()
                reset = torch.as_tensor(node.v_reset, dtype=torch.float64)
                state[name] = torch.where(z.bool(), reset.expand_as(v), v)
                values[name] = z
            else:
                raise NotImplementedError(type(node).__name__)
    return torch.stack(outputs).numpy()

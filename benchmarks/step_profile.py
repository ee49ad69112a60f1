"""Where our training step's time goes: the torch profiler's self CPU time, by kind of work.

One step = forward over all T steps, backward, Adam step, on the networks of
``benchmarks/step_throughput.py`` (``default``: the digits-dvs study net; ``paper``: 2x34x34,
T=10, conv 64/128, FC 256), batch 64. Every profiled op's *self* time is put in one group,
by the nearest enclosing op (itself included) that names one:

* ``conv``: convolution forward and backward kernels (``mkldnn_convolution``,
  ``convolution_backward``);
* ``matmul``: the linear layers' ``mm`` / ``addmm``;
* ``batch norm``: batch-norm forward, statistics and backward kernels, shift-BN's fused function;
* ``LIF``: everything inside the LIF recurrence's forward and backward (``_LIFSequence``);
* ``pooling``: max pooling forward and backward;
* ``optimizer``: Adam's step;
* ``sign / STE``: the weight binarization (forward and straight-through backward);
* ``copies``: layout copies and casts outside the above;
* ``other``: the rest (loss, flatten, autograd bookkeeping, small elementwise ops).

It prints ms per step and share of each group, and the non-conv share of the step: all but
``conv`` and ``matmul`` (issue 17's target for the paper-sized step: at most 20%). The profiler
adds a little time per op; the shares, not the absolute times, are what it measures.

Usage: ``python benchmarks/step_profile.py [--threads 2] [--configs default paper] [--iters N]``
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from harness.run.memory import reexec_with_retained_memory

#: (group, substrings of an op's name that put it there), tried from the op outwards.
RULES = (
    ("LIF", ("_LIFSequence",)),
    ("optimizer", ("Optimizer.step", "adam")),
    ("sign / STE", ("_SignSTE", "SignSTE", "_Sign")),
    ("batch norm", ("batch_norm", "BatchNorm", "_ShiftBN", "ShiftBN", "_FusedShift")),
    ("pooling", ("max_pool", "MaxPool")),
    ("conv", ("convolution", "conv2d", "Convolution")),
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "MmBackward", "AddmmBackward")),
    ("copies", ("aten::copy_", "aten::contiguous", "aten::_to_copy", "aten::clone")),
)
GROUPS = [g for g, _ in RULES] + ["other"]


def _group(event: object) -> str:
    node = event
    while node is not None:
        name = getattr(node, "name", "")
        for group, keys in RULES:
            if any(k in name for k in keys):
                return group
        node = getattr(node, "cpu_parent", None)
    return "other"


def profile_step(config: str, batch: int, iters: int) -> dict[str, float]:
    """Self CPU ms per step by group (and ``_plain_ms``, the step timed without the profiler)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from step_throughput import CONFIGS, build_ours, step_fn  # the throughput table's nets

    spec = CONFIGS[config]
    torch.manual_seed(0)
    model = build_ours(spec)
    x = (torch.rand(spec["T"], batch, *spec["input"]) < 0.15).float()
    target = F.one_hot(torch.arange(batch) % 10, 10).float()
    step = step_fn(model, x, target)
    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    plain_ms = (time.perf_counter() - start) / iters * 1e3
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(iters):
            step()
    sums: dict[str, float] = defaultdict(float)
    for evt in prof.events():
        sums[_group(evt)] += evt.self_cpu_time_total / 1e3 / iters
    sums["_plain_ms"] = plain_ms
    return dict(sums)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iters", type=int, default=None, help="profiled steps (default 8/4)")
    parser.add_argument("--configs", nargs="+", default=["default", "paper"],
                        choices=["default", "paper"])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {args.threads}, batch {args.batch}")
    for config in args.configs:
        iters = args.iters or (8 if config == "default" else 4)
        sums = profile_step(config, args.batch, iters)
        plain = sums.pop("_plain_ms")
        total = sum(sums.values())
        print(f"\n{config}: {plain:.1f} ms per step unprofiled, {total:.1f} ms of op self time "
              f"profiled ({iters} steps)")
        for group in GROUPS:
            ms = sums.get(group, 0.0)
            print(f"  {group:<12} {ms:8.1f} ms  {100 * ms / total:5.1f}%")
        non_conv = 1 - (sums.get("conv", 0.0) + sums.get("matmul", 0.0)) / total
        print(f"  non-conv share (all but conv and matmul): {100 * non_conv:.1f}%")
    return 0


if __name__ == "__main__":
    if "--system-allocator" not in sys.argv:
        reexec_with_retained_memory([__file__, *sys.argv[1:]])
    raise SystemExit(main())

"""Training-step throughput: our conv BSNN vs the same net in snntorch and in SpikingJelly.

One step = forward over all T steps, backward, Adam step. All nets have the same layer shapes
(bias-free Conv -> BN -> LIF -> MaxPool twice, FC -> BN -> LIF, FC -> LIF), the same batch, in
the same process, timed alternately after warm-up. The snntorch version is the tutorial
pattern: ``snntorch.Leaky`` layers called once per time step in a Python loop, BN applied per
step. The SpikingJelly version is its multi-step mode (``step_mode="m"``: layers fold time into
the batch, ``LIFNode`` runs the whole sequence; soft reset, ``tau = 1 / (1 - beta)`` with
``decay_input=False``, so the same dynamics as ours), with its CPU backend; it is timed when
SpikingJelly is installed (the optional ``bench`` extra). Prints samples/s and ms per step of
each and our ratio to each, for two configurations:

* ``default``: the digits-dvs study network (2x17x17 input, T=6, channels (16, 32), hidden 128);
* ``paper``: the paper-sized network (2x34x34, T=10, channels (64, 128), hidden 256).

Usage: ``python benchmarks/step_throughput.py [--threads 2] [--configs default paper]
[--iters N] [--snntorch-channels-last]``. The last option adds the snntorch loop run in the
channels-last layout that our convolutions use on the CPU (``models/layers.py``): not the
common way, but it tells how much of the ratio is the memory layout and how much the rest.

Like ``bsnn-bench train`` and the study workers, the benchmark runs with glibc told to retain
freed memory (:mod:`harness.run.memory`): it re-executes itself with ``GLIBC_TUNABLES`` set unless
that is already set or ``--system-allocator`` is given. All nets run in that same process.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable

import snntorch as snn
import torch
import torch.nn.functional as F
from torch import nn

from harness.config import RunConfig
from harness.run.build import build_model
from harness.run.memory import reexec_with_retained_memory

CONFIGS = {
    "default": {"input": (2, 17, 17), "T": 6, "channels": (16, 32), "hidden": 128,
                "iters": 10},
    "paper": {"input": (2, 34, 34), "T": 10, "channels": (64, 128), "hidden": 256,
              "iters": 8},
}


class SnntorchNet(nn.Module):
    """The common snntorch formulation: one Python loop over time steps, Leaky per layer."""

    def __init__(self, input_shape: tuple[int, int, int], channels: tuple[int, int],
                 hidden: int, classes: int) -> None:
        super().__init__()
        c, h, w = input_shape
        c1, c2 = channels
        self.conv1 = nn.Conv2d(c, c1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.lif1 = snn.Leaky(beta=0.9)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.lif2 = snn.Leaky(beta=0.9)
        self.fc1 = nn.Linear(c2 * (h // 4) * (w // 4), hidden, bias=False)
        self.bn3 = nn.BatchNorm1d(hidden)
        self.lif3 = snn.Leaky(beta=0.9)
        self.fc2 = nn.Linear(hidden, classes, bias=False)
        self.lif4 = snn.Leaky(beta=0.9)
        #: The same loop in the channels-last layout (``--snntorch-channels-last``): not the
        #: common way, but it shows how much of the difference is the memory layout.
        self.channels_last = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m1, m2, m3, m4 = (lif.reset_mem() for lif in (self.lif1, self.lif2, self.lif3,
                                                      self.lif4))
        out = []
        for t in range(x.shape[0]):
            xt = x[t]
            if self.channels_last:
                xt = xt.contiguous(memory_format=torch.channels_last)
            s, m1 = self.lif1(self.bn1(self.conv1(xt)), m1)
            s = F.max_pool2d(s, 2)
            s, m2 = self.lif2(self.bn2(self.conv2(s)), m2)
            s = F.max_pool2d(s, 2).flatten(1)
            s, m3 = self.lif3(self.bn3(self.fc1(s)), m3)
            s, m4 = self.lif4(self.fc2(s), m4)
            out.append(s)
        return torch.stack(out)


def spikingjelly_net(input_shape: tuple[int, int, int], channels: tuple[int, int], hidden: int,
                     classes: int, beta: float = 0.9) -> nn.Module | None:
    """The same net in SpikingJelly's multi-step mode, or None when it is not installed."""
    try:
        from spikingjelly.activation_based import layer, neuron, surrogate
    except ImportError:
        return None
    c, h, w = input_shape
    c1, c2 = channels

    def lif() -> nn.Module:
        # decay_input=False, soft reset (v_reset=None): V = (1 - 1/tau) V + X - theta * S.
        return neuron.LIFNode(tau=1.0 / (1.0 - beta), decay_input=False, v_reset=None,
                              surrogate_function=surrogate.ATan(), detach_reset=True,
                              step_mode="m")

    m = "m"
    return nn.Sequential(
        layer.Conv2d(c, c1, 3, padding=1, bias=False, step_mode=m),
        layer.BatchNorm2d(c1, step_mode=m), lif(), layer.MaxPool2d(2, step_mode=m),
        layer.Conv2d(c1, c2, 3, padding=1, bias=False, step_mode=m),
        layer.BatchNorm2d(c2, step_mode=m), lif(), layer.MaxPool2d(2, step_mode=m),
        layer.Flatten(step_mode=m),
        layer.Linear(c2 * (h // 4) * (w // 4), hidden, bias=False, step_mode=m),
        layer.BatchNorm1d(hidden, step_mode=m), lif(),
        layer.Linear(hidden, classes, bias=False, step_mode=m), lif())


def build_ours(spec: dict) -> nn.Module:
    """Our network of one of :data:`CONFIGS` (fp32 weights, BN, ATan surrogate)."""
    cfg = RunConfig.from_dict({
        "dataset": {"time_steps": spec["T"]},
        "model": {"channels": list(spec["channels"]), "hidden": spec["hidden"]},
        "factors": {"binarization": "fp32", "normalization": "bn", "surrogate": "atan"},
    })
    return build_model(cfg, input_shape=spec["input"], num_classes=10)


def step_fn(model: nn.Module, x: torch.Tensor, target: torch.Tensor,
             before: Callable[[], None] | None = None) -> Callable[[], None]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        if before is not None:
            before()
        out = model(x)
        loss = F.mse_loss(out.mean(0), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def run(name: str, *, batch: int, warmup: int, iters: int | None,
        snntorch_channels_last: bool = False) -> tuple[float, float]:
    spec = CONFIGS[name]
    iters = iters or spec["iters"]
    torch.manual_seed(0)
    ours = build_ours(spec)
    theirs = SnntorchNet(spec["input"], spec["channels"], spec["hidden"], 10)
    n_ours = sum(p.numel() for p in ours.parameters() if p.dim() > 1)
    n_theirs = sum(p.numel() for p in theirs.parameters() if p.dim() > 1)
    assert n_ours == n_theirs, (n_ours, n_theirs)
    x = (torch.rand(spec["T"], batch, *spec["input"]) < 0.15).float()
    target = F.one_hot(torch.arange(batch) % 10, 10).float()
    steps = {"ours": step_fn(ours, x, target), "snntorch": step_fn(theirs, x, target)}
    sj = spikingjelly_net(spec["input"], spec["channels"], spec["hidden"], 10)
    if sj is not None:
        from spikingjelly.activation_based import functional

        assert sum(p.numel() for p in sj.parameters() if p.dim() > 1) == n_ours
        steps["spikingjelly"] = step_fn(sj, x, target, before=lambda: functional.reset_net(sj))
    if snntorch_channels_last:
        theirs_cl = copy.deepcopy(theirs).to(memory_format=torch.channels_last)
        theirs_cl.channels_last = True
        steps["snntorch-cl"] = step_fn(theirs_cl, x, target)
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(iters):
        for key, fn in steps.items():  # alternate so load changes hit both alike
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    sps = {k: batch / v for k, v in med.items()}
    print(f"{name:8s} T={spec['T']} input={spec['input']} channels={spec['channels']} "
          f"hidden={spec['hidden']} batch={batch}: ours {sps['ours']:.0f} samples/s "
          f"({med['ours'] * 1e3:.0f} ms/step), snntorch {sps['snntorch']:.0f} samples/s "
          f"({med['snntorch'] * 1e3:.0f} ms/step), ratio {sps['ours'] / sps['snntorch']:.2f}x")
    if "spikingjelly" in sps:
        print(f"{'':8s} SpikingJelly multi-step: {sps['spikingjelly']:.0f} samples/s "
              f"({med['spikingjelly'] * 1e3:.0f} ms/step), ours / it "
              f"{sps['ours'] / sps['spikingjelly']:.2f}x")
    else:
        print(f"{'':8s} SpikingJelly not installed (pip install '.[bench]'): not timed")
    if "snntorch-cl" in sps:
        print(f"{'':8s} snntorch loop in channels-last: {sps['snntorch-cl']:.0f} samples/s "
              f"({med['snntorch-cl'] * 1e3:.0f} ms/step), ours / it "
              f"{sps['ours'] / sps['snntorch-cl']:.2f}x")
    return sps["ours"], sps["snntorch"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=None, help="timed steps per net")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--snntorch-channels-last", action="store_true",
                        help="also time the snntorch loop in the channels-last layout")
    parser.add_argument("--system-allocator", action="store_true",
                        help="keep glibc's default of returning freed memory to the OS")
    args = parser.parse_args(argv)
    if argv is None and not args.system_allocator:
        reexec_with_retained_memory(sys.argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '(unset)')}")
    for name in args.configs:
        run(name, batch=args.batch, warmup=args.warmup, iters=args.iters,
            snntorch_channels_last=args.snntorch_channels_last)


if __name__ == "__main__":
    main()

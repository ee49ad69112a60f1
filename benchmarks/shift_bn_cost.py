"""What ``shift_bn: on`` costs in training: ``train_time_s`` of the same run with it off and on.

Runs the default digits-dvs configuration (or ``--set`` overrides) with ``factors.shift_bn`` off
and on, same seed, alternately in one process (so that load changes hit both alike), after one
warm-up run of each, and prints the median ``train_time_s`` of each and their ratio
(the target of the fused shift-BN path: on / off <= 1.2).

Usage::

    python benchmarks/shift_bn_cost.py [--pairs 5] [--threads 1] [--set train.epochs=4 ...]

Like ``bsnn-bench train``, it re-executes itself once with the allocator setting of
:mod:`harness.run.memory` unless ``--system-allocator`` is given.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.run.memory import reexec_with_retained_memory  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5, help="timed (off, on) pairs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a run-config override, as in bsnn-bench train")
    parser.add_argument("--system-allocator", action="store_true")
    args = parser.parse_args(argv)
    if argv is None and not args.system_allocator:
        reexec_with_retained_memory([str(Path(__file__).resolve()), *sys.argv[1:]])

    import torch

    from harness.config import RunConfig, apply_overrides
    from harness.run.train import train_run

    torch.set_num_threads(args.threads)
    base = apply_overrides({}, args.set)

    def config(mode: str) -> RunConfig:
        data = apply_overrides(base, [f"factors.shift_bn={mode}"])
        return RunConfig.from_dict(data)

    cfgs = {mode: config(mode) for mode in ("off", "on")}
    times: dict[str, list[float]] = {mode: [] for mode in cfgs}
    for i in range(args.pairs + 1):
        order = ("off", "on") if i % 2 == 0 else ("on", "off")
        for mode in order:
            result = train_run(cfgs[mode])
            if result.status != "complete":
                print(f"run with shift_bn={mode} failed: {result.error}", file=sys.stderr)
                return 1
            if i > 0:  # the first pair warms up (lazy imports, allocator)
                times[mode].append(result.metrics["train_time_s"])
    med = {mode: statistics.median(v) for mode, v in times.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.pairs} pairs, "
          f"overrides {args.set or 'none'}")
    for mode in ("off", "on"):
        spread = ", ".join(f"{t:.2f}" for t in times[mode])
        print(f"shift_bn={mode:3s}: train_time_s median {med[mode]:.3f} s ({spread})")
    print(f"on / off: {med['on'] / med['off']:.3f}x (target <= 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Same config and seed, same metrics: one fixed-seed run here and in a baseline checkout.

Trains one run (default configuration, ``--set`` overrides) with ``PYTHONPATH`` pointing at a
baseline checkout and at this tree, each in a fresh process at one thread, and compares every
metric but ``train_time_s``. This tree runs twice: as it is, and with the conv network's
flatten put back in the logical ``(C, H, W)`` order (``models.network`` patched in that process
only). Since this tree flattens in ``(H, W, C)`` order (a view of the channels-last maps), its
first FC layer sums its inputs in another order: float32 rounding differs, a spike near the
threshold flips, and the run continues as a different (equally likely) run. With the flatten
put back, the LIF recurrence on its torch loop (``BSNN_BENCH_FUSED=0``: the fused CPU kernel's
forward is bit-equal, but its backward sums the same terms in another order, see
tests/test_fused_lif.py), and ``shift_bn: off``, every metric must equal the baseline's: that
shows nothing else changed a result. (``shift_bn: on`` trains through the fused path, whose
statistics are summed by another kernel: equal to the old formula in float64, see
tests/test_shift_bn.py.) Metrics redefined since (``RENAMED``) are compared under their new
names.

Usage::

    git worktree add /tmp/baseline c44cbc7
    python benchmarks/same_metrics.py --baseline /tmp/baseline [--set train.epochs=2]

Exit code 1 when the logical-flatten run differs from the baseline.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = r"""
import importlib.util, json, sys
import torch
torch.set_num_threads(1)
mode, overrides = sys.argv[1], json.loads(sys.argv[2])
if mode == "logical-flatten":
    import models.network as net
    from models.layers import Flatten
    net.hwc_columns = lambda weight, c, h, w: weight
    net.Flatten = lambda order="chw", map_shape=None: Flatten("chw")
from harness.config import RunConfig, apply_overrides
if importlib.util.find_spec("harness.run") is not None and mode != "baseline":
    from harness.run.train import train_run
else:  # the flat layout before the house moves (harness/train.py)
    from harness.train import train_run
result = train_run(RunConfig.from_dict(apply_overrides({}, overrides)))
print("METRICS " + json.dumps({k: v for k, v in result.metrics.items() if k != "train_time_s"}))
"""


def _metrics(tree: Path, mode: str, overrides: list[str], python: str) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    if mode == "logical-flatten":
        env["BSNN_BENCH_FUSED"] = "0"
    out = subprocess.run([python, "-c", PROBE, mode, json.dumps(overrides)], cwd=tree, env=env,
                         capture_output=True, text=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("METRICS ")), None)
    if out.returncode != 0 or line is None:
        sys.stderr.write(out.stdout + out.stderr)
        raise SystemExit(f"the {mode} run failed in {tree}")
    return json.loads(line[len("METRICS "):])


#: Metrics redefined since c44cbc7, with the name their old definition has now: the energy
#: gained a memory-access part (ce43e7e), its compute part is the old total.
RENAMED = {"energy_uj_per_sample": "energy_compute_uj_per_sample"}


def _diff(a: dict[str, float], b: dict[str, float]) -> list[str]:
    """Differences of baseline ``a`` and this tree's ``b``, the redefined metrics compared under
    their new names."""
    if all(new in b for new in RENAMED.values()) and not any(new in a for new in RENAMED.values()):
        a = {RENAMED.get(k, k): v for k, v in a.items()}
    out = []
    for key in sorted(set(a) & set(b)):
        x, y = a[key], b[key]
        if not (x == y or (math.isnan(x) and math.isnan(y))):
            out.append(f"{key}: baseline {x!r} vs {y!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, type=Path)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args(argv)
    base = _metrics(args.baseline.resolve(), "baseline", args.set, args.python)
    logical = _metrics(ROOT, "logical-flatten", args.set, args.python)
    current = _metrics(ROOT, "current", args.set, args.python)
    print(f"overrides: {args.set or 'none'}; test_acc baseline {base['test_acc']:.4f}, "
          f"logical flatten {logical['test_acc']:.4f}, this tree {current['test_acc']:.4f}")
    same = _diff(base, logical)
    only = sorted((set(base) ^ set(logical)) - set(RENAMED) - set(RENAMED.values()))
    print("logical flatten vs baseline: " + ("every metric equal" if not same else
                                             f"{len(same)} differ"))
    for line in same:
        print("  " + line)
    if only:
        print(f"  (recorded by one side only: {', '.join(only)})")
    changed = _diff(base, current)
    print(f"this tree vs baseline: {len(changed)} metric(s) differ (the flatten's and the LIF "
          f"backward's summation order)" if changed else
          "this tree vs baseline: every metric equal")
    for line in changed:
        print("  " + line)
    return 1 if same else 0


if __name__ == "__main__":
    sys.exit(main())

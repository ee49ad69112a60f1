"""Study throughput: wall time of a study run by this tree and by a baseline checkout, alternately.

Runs ``bsnn-bench run SPEC --workers N`` as a fresh process (into a fresh SQLite database) with
``PYTHONPATH`` pointing at the baseline checkout, then at this tree, and again, ``--rounds``
times, so that load changes on the machine hit both alike; prints each wall time, the medians
and the ratio baseline / current (the issue's target: >= 1.5x). Both use the same data cache
(``$BSNN_CACHE_DIR``), warmed first by one run of each tree, so neither builds frames.

It then compares the runs' metrics between the last two databases, run by run: timings and
metrics that only one of the trees records are left out; every other difference is printed
(``--strict`` makes one an error).

The default study is the issue's 16 runs (digits-dvs, binarization fp32/ste-clip x shift_bn
off/on x seeds 0-3). A baseline checkout::

    git worktree add /tmp/baseline c44cbc7
    python benchmarks/study_throughput.py --baseline /tmp/baseline [--rounds 2] [--workers 2]

A round is one study of each; at c44cbc7 the 16-run study took about 40 s on the project's
2-core machine.
"""

from __future__ import annotations

import argparse
import math
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_SPEC = """\
study: throughput
design: full-factorial
dataset: {name: digits-dvs}
train: {seeds: [0, 1, 2, 3]}
factors: {binarization: [fp32, ste-clip], shift_bn: ['off', 'on']}
"""

#: Metrics that measure time, not results.
TIMINGS = ("train_time_s",)



def _env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    return env


def _run_study(tree: Path, spec: Path, workers: int, db: Path, python: str,
               max_runs: int | None = None) -> float:
    cmd = [python, "-m", "harness.cli", "run", str(spec), "--workers", str(workers), "--quiet",
           "--db", f"sqlite:///{db}"] + (["--max-runs", str(max_runs)] if max_runs else [])
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env=_env(tree), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"study failed in {tree} (exit code {proc.returncode})")
    return wall


def _metrics(db: Path) -> dict[str, dict[str, float]]:
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "select r.run_key, r.status, m.name, m.value from bench_runs r "
            "left join bench_run_metrics m on m.run_id = r.id").fetchall()
    out: dict[str, dict[str, float]] = {}
    for key, status, name, value in rows:
        run = out.setdefault(key, {"__complete__": float(status == "complete")})
        if name is not None:
            run[name] = value
    return out


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def compare(base: dict[str, dict[str, float]], cur: dict[str, dict[str, float]]
            ) -> list[str]:
    """Differences between two studies' metrics, one line each (timings, one-sided names out)."""
    lines = []
    for key in sorted(set(base) | set(cur)):
        if key not in base or key not in cur:
            lines.append(f"{key}: only in {'current' if key in cur else 'baseline'}")
            continue
        a, b = base[key], cur[key]
        for name in sorted(set(a) & set(b)):
            if name in TIMINGS:
                continue
            if not _same(a[name], b[name]):
                lines.append(f"{key}: {name} baseline {a[name]!r} current {b[name]!r}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, type=Path,
                        help="a checkout of the baseline commit (git worktree add ...)")
    parser.add_argument("--current", type=Path, default=ROOT, help="default: this tree")
    parser.add_argument("--spec", type=Path, default=None,
                        help="study YAML (default: the issue's 16-run study)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2,
                        help="studies per tree, alternating baseline, current, ...")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 if any run's metrics differ")
    args = parser.parse_args(argv)
    trees = {"baseline": args.baseline.resolve(), "current": args.current.resolve()}
    for name, tree in trees.items():
        if not (tree / "harness" / "cli.py").is_file():
            parser.error(f"--{name} {tree} is not a bsnn-bench checkout")
    with tempfile.TemporaryDirectory(prefix="bsnn-throughput-") as tmp:
        spec = args.spec.resolve() if args.spec else Path(tmp) / "throughput.yaml"
        if args.spec is None:
            spec.write_text(DEFAULT_SPEC)
        for name, tree in trees.items():
            # One run of each first, so that both trees' data cache entries exist.
            _run_study(tree, spec, 1, Path(tmp) / f"warm-{name}.sqlite", args.python, 1)
        walls: dict[str, list[float]] = {name: [] for name in trees}
        dbs: dict[str, Path] = {}
        for r in range(args.rounds):
            order = list(trees) if r % 2 == 0 else list(reversed(trees))
            for name in order:
                db = Path(tmp) / f"{name}-{r}.sqlite"
                wall = _run_study(trees[name], spec, args.workers, db, args.python)
                walls[name].append(wall)
                dbs[name] = db
                print(f"round {r + 1} {name:8s}: {wall:6.1f} s", flush=True)
        diffs = compare(_metrics(dbs["baseline"]), _metrics(dbs["current"]))
    med = {name: statistics.median(v) for name, v in walls.items()}
    print(f"study {spec.name}, --workers {args.workers}, {args.rounds} round(s)")
    print(f"baseline {trees['baseline']}: median {med['baseline']:.1f} s")
    print(f"current  {trees['current']}: median {med['current']:.1f} s")
    print(f"speed-up baseline / current: {med['baseline'] / med['current']:.2f}x "
          f"(target >= 1.5x)")
    if diffs:
        print(f"{len(diffs)} metric difference(s) between the last studies of each:")
        for line in diffs:
            print("  " + line)
    else:
        print("metrics: every run's metrics are equal (timings aside)")
    return 1 if diffs and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())

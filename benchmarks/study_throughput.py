"""Study throughput: wall time of a study run by this tree and by a baseline checkout, alternately.

Runs ``bsnn-bench run SPEC --workers N`` as a fresh process (into a fresh SQLite database) with
``PYTHONPATH`` pointing at the baseline checkout, then at this tree, and again, ``--rounds``
times, so that load changes on the machine hit both alike; prints each wall time, the medians
and the ratio baseline / current (the issue's target: >= 1.5x). Both use the same data cache
(``$BSNN_CACHE_DIR``), warmed first by one run of each tree, so neither builds frames.

It also prints the CPU seconds of each study (the command, its workers and the workers'
forkserver, which this script adopts as a Linux subreaper to count it: less sensitive to
other load on the machine than wall time), and compares the runs' metrics between the last two
databases, run by run (timings and metrics only one tree records left out): the mean test
accuracy per factor combination of each, the number of differing values (``--verbose`` lists
them, ``--strict`` makes one an error). This tree's conv net flattens in ``(H, W, C)`` order
and trains ``shift_bn: on`` through the fused path, both of which change float32 rounding, so
runs differ value by value like re-seeded runs; ``benchmarks/same_metrics.py`` shows that
nothing else changes a result.

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
import resource
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


def _become_subreaper() -> None:
    """Adopt our orphaned descendants (Linux): the workers' forkserver outlives the command by
    a moment, and its CPU time (with its workers') counts only once it is reaped by us."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_CHILD_SUBREAPER = 36
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _reap_orphans() -> None:
    """Wait for every adopted descendant, so that its CPU time is in RUSAGE_CHILDREN."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _run_study(tree: Path, spec: Path, workers: int, db: Path, python: str,
               max_runs: int | None = None) -> tuple[float, float]:
    """Wall time and CPU seconds (user + system, the command and its workers) of one study."""
    cmd = [python, "-m", "harness.cli", "run", str(spec), "--workers", str(workers), "--quiet",
           "--db", f"sqlite:///{db}"] + (["--max-runs", str(max_runs)] if max_runs else [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=tree, env=_env(tree), capture_output=True, text=True)
    wall = time.perf_counter() - start
    _reap_orphans()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"study failed in {tree} (exit code {proc.returncode})")
    return wall, cpu


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
    parser.add_argument("--verbose", action="store_true", help="list every metric difference")
    args = parser.parse_args(argv)
    trees = {"baseline": args.baseline.resolve(), "current": args.current.resolve()}
    for name, tree in trees.items():
        if not (tree / "harness" / "cli.py").is_file():
            parser.error(f"--{name} {tree} is not a bsnn-bench checkout")
    _become_subreaper()
    with tempfile.TemporaryDirectory(prefix="bsnn-throughput-") as tmp:
        spec = args.spec.resolve() if args.spec else Path(tmp) / "throughput.yaml"
        if args.spec is None:
            spec.write_text(DEFAULT_SPEC)
        for name, tree in trees.items():
            # One run of each first, so that both trees' data cache entries exist.
            _run_study(tree, spec, 1, Path(tmp) / f"warm-{name}.sqlite", args.python, 1)
        walls: dict[str, list[float]] = {name: [] for name in trees}
        cpus: dict[str, list[float]] = {name: [] for name in trees}
        dbs: dict[str, Path] = {}
        for r in range(args.rounds):
            order = list(trees) if r % 2 == 0 else list(reversed(trees))
            for name in order:
                db = Path(tmp) / f"{name}-{r}.sqlite"
                wall, cpu = _run_study(trees[name], spec, args.workers, db, args.python)
                walls[name].append(wall)
                cpus[name].append(cpu)
                dbs[name] = db
                print(f"round {r + 1} {name:8s}: {wall:6.1f} s wall, {cpu:6.1f} CPU-s",
                      flush=True)
        runs = {name: _metrics(db) for name, db in dbs.items()}
        diffs = compare(runs["baseline"], runs["current"])
    med = {name: statistics.median(v) for name, v in walls.items()}
    cpu_med = {name: statistics.median(v) for name, v in cpus.items()}
    print(f"study {spec.name}, --workers {args.workers}, {args.rounds} round(s), "
          f"{os.cpu_count()} CPUs")
    for name in trees:
        print(f"{name:8s} {trees[name]}: median {med[name]:.1f} s wall, "
              f"{cpu_med[name]:.1f} CPU-s")
    print(f"speed-up baseline / current: {med['baseline'] / med['current']:.2f}x wall "
          f"(target >= 1.5x), {cpu_med['baseline'] / cpu_med['current']:.2f}x CPU")
    print("test_acc per combination, mean over seeds (baseline -> current):")
    for combo, (a, b) in _means(runs["baseline"], runs["current"]).items():
        print(f"  {combo}: {a:.4f} -> {b:.4f}")
    if diffs:
        print(f"{len(diffs)} metric difference(s) between the last studies of each"
              + (":" if args.verbose else " (--verbose lists them)"))
        for line in diffs if args.verbose else []:
            print("  " + line)
    else:
        print("metrics: every run's metrics are equal (timings aside)")
    return 1 if diffs and args.strict else 0


def _means(base: dict[str, dict[str, float]], cur: dict[str, dict[str, float]]
           ) -> dict[str, tuple[float, float]]:
    """Mean test_acc over seeds per factor combination (run keys without their seed part)."""
    out = {}
    for combo in sorted({k.rsplit("|seed=", 1)[0] for k in base}):
        pair = []
        for runs in (base, cur):
            vals = [r["test_acc"] for k, r in runs.items()
                    if k.rsplit("|seed=", 1)[0] == combo and "test_acc" in r]
            pair.append(statistics.fmean(vals) if vals else math.nan)
        out[combo] = (pair[0], pair[1])
    return out


if __name__ == "__main__":
    sys.exit(main())

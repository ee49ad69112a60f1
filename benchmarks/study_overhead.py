"""Harness overhead of a study: the share of its wall time not spent in training/evaluation loops.

Overhead is everything the harness adds around the loops: reading the spec, the database and
Optuna, starting worker processes (their imports), claiming and recording runs, building the
data loaders from the frame cache and the model. The target is under 5% of a study's wall time.

Usage::

    .venv/bin/python benchmarks/study_overhead.py [--spec studies/quickstart.yaml] [--workers 1]
        [--seeds N] [--max-runs K]

For the main job: ``--spec studies/full_factorial.yaml --workers 2 --max-runs 8``.

It runs the study into a fresh temporary database (so every run executes), then reads the
runs' timestamps and metrics back:

* ``loops``: each run's ``train_time_s`` (Lightning fit: training and validation loops) plus
  its test evaluation (wall time of the run minus setup, see below);
* ``worker-seconds`` = study wall time x workers: the capacity the study had;
* ``overhead`` = 1 - loops / worker-seconds, and its parts: before the first claim (spec, DB,
  Optuna, process start), between runs (claim + record), inside a run but outside its loops
  (data loading from cache, model build), after the last run (shutdown).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.store import engine as store_engine  # noqa: E402
from harness.store.schema import Run, RunMetric  # noqa: E402
from harness.study.coordinator import run_study  # noqa: E402
from harness.study.spec import load_spec  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", default=str(ROOT / "studies" / "quickstart.yaml"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--db", default=None, help="default: a fresh temporary SQLite file")
    parser.add_argument("--max-runs", type=int, default=None,
                        help="stop after K runs (a slice of a big study)")
    parser.add_argument("--seeds", type=int, default=None,
                        help="replace the spec's seeds by 0..N-1 (a longer study)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'overhead.sqlite'}"
        wall_start = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        t0 = time.perf_counter()
        spec = load_spec(args.spec)
        if args.seeds:
            spec = dataclasses.replace(spec, seeds=tuple(range(args.seeds)))
        outcome = run_study(spec, url=url, workers=args.workers, max_runs=args.max_runs,
                            progress=False)
        wall = time.perf_counter() - t0
        engine = store_engine.make_engine(url)
        with Session(engine) as s:
            runs = s.scalars(select(Run).where(Run.status == "complete")
                             .order_by(Run.started_at)).all()
            fit = {m.run_id: m.value for m in s.scalars(select(RunMetric).where(
                RunMetric.name == "train_time_s"))}
            rows = [(r.id, r.worker, r.started_at, r.finished_at, r.wall_time_s or 0.0)
                    for r in runs]
        engine.dispose()
    if not rows:
        print("no complete run: nothing to measure", file=sys.stderr)
        return 1

    capacity = wall * args.workers
    loops = sum(fit.get(rid) or 0.0 for rid, *_ in rows)
    in_run = sum(w for *_, w in rows)
    by_worker: dict[str, list[tuple[dt.datetime, dt.datetime]]] = {}
    for _rid, worker, start, end, _w in rows:
        by_worker.setdefault(worker, []).append((start, end))
    before = sum((spans[0][0] - wall_start).total_seconds() for spans in by_worker.values())
    between = sum((b[0] - a[1]).total_seconds()
                  for spans in by_worker.values() for a, b in zip(spans, spans[1:]))
    end_time = wall_start + dt.timedelta(seconds=wall)
    after = sum((end_time - spans[-1][1]).total_seconds() for spans in by_worker.values())
    # Workers that never got a run sat idle for the whole study: count them as overhead too.
    idle = (args.workers - len(by_worker)) * wall

    print(f"study {spec.name}: {len(rows)} runs, {args.workers} worker(s), wall {wall:.1f} s "
          f"(exit code {outcome.exit_code})")
    print(f"  training+validation loops (train_time_s): {loops:8.1f} s")
    print(f"  whole runs (train_run wall time):          {in_run:8.1f} s")
    print(f"  worker capacity (wall x workers):          {capacity:8.1f} s")
    print("overhead parts (worker-seconds):")
    print(f"  before first claim (spec, DB, Optuna, process start, imports): {before:7.1f} s")
    print(f"  between runs (claim, record):                                  {between:7.1f} s")
    print(f"  inside runs, outside fit (data from cache, model, test eval):  "
          f"{in_run - loops:7.1f} s")
    print(f"  after last run (shutdown) + idle workers:                      "
          f"{after + idle:7.1f} s")
    harness_only = 1 - in_run / capacity
    print(f"harness overhead excluding everything inside train_run: {100 * harness_only:5.1f}%")
    strict = 1 - loops / capacity
    print(f"overhead counting all but the fit loops:                {100 * strict:5.1f}%  "
          f"(target < 5%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The run-claim protocol (engine setup is in harness.store.engine).

Exactly-once across workers and machines rests on three rules, all enforced here:

* every run of a study is a row of ``bench_runs`` with a unique ``(study_id, run_key)``, inserted
  before any worker starts (inserts that meet an existing key do nothing);
* a worker claims a run with a compare-and-set ``UPDATE ... WHERE id = :id AND status = :seen``
  (plus the lease it saw), so two workers can never both win the same row; SQLite serializes
  writers with ``BEGIN IMMEDIATE`` (a read-then-write transaction takes the write lock first) in
  WAL mode with a busy timeout, PostgreSQL picks candidates with ``FOR UPDATE SKIP LOCKED``;
* a result is written only while the writer still holds the claim (``worker`` and ``attempts``
  unchanged, status ``running``), in one transaction that also replaces the run's metrics and
  curves. A worker that dies after that commit leaves a ``complete`` row that nobody re-runs; a
  worker whose lease was taken over (it looked dead) has its late result discarded.

A claimed run carries a heartbeat; a run whose heartbeat is older than the lease, or whose worker
process on this host no longer exists, is stale and claimable again. Heartbeats are written with
each machine's UTC clock, so machines sharing a database need clocks that agree to well within
the lease (NTP does; the default lease is 120 s, see ``BSNN_BENCH_LEASE`` in
harness.study.coordinator).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import (
    Engine,
    and_,
    delete,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from harness.store import identity
from harness.store.engine import reader
from harness.store.schema import (
    Run,
    RunCurve,
    RunFactor,
    RunMetric,
    encode_float,
    utcnow,
)

#: Default lease and heartbeat of a claimed run, seconds (``BSNN_BENCH_LEASE`` overrides them).
DEFAULT_LEASE_S = 120.0
DEFAULT_HEARTBEAT_S = 30.0
#: Statuses a worker may claim, besides ``running`` rows whose lease ran out.
CLAIMABLE = ("pending", "interrupted")


# -- claims ----------------------------------------------------------------------------------

class Claim:
    """A run this worker holds: its row id, the attempt number that proves ownership."""

    def __init__(self, run_id: int, run_key: str, attempt: int, config: dict[str, Any],
                 trial_number: int | None, position: int) -> None:
        self.run_id = run_id
        self.run_key = run_key
        self.attempt = attempt
        self.config = config
        self.trial_number = trial_number
        self.position = position


def _stale_clause(lease_s: float, now: dt.datetime) -> Any:
    cutoff = now - dt.timedelta(seconds=lease_s)
    return or_(Run.status.in_(CLAIMABLE),
               and_(Run.status == "running",
                    or_(Run.heartbeat_at.is_(None), Run.heartbeat_at < cutoff)))


def claim_next(engine: Engine, study_id: int, worker: str, *, lease_s: float) -> Claim | None:
    """Claim the next pending, interrupted or stale run of a study, or return None."""
    postgres = engine.dialect.name == "postgresql"
    for _ in range(50):
        now = utcnow()
        with Session(engine) as s, s.begin():
            q = (select(Run.id, Run.status, Run.attempts, Run.run_key, Run.config,
                        Run.trial_number, Run.position)
                 .where(Run.study_id == study_id, _stale_clause(lease_s, now))
                 .order_by(Run.position, Run.id).limit(1))
            if postgres:
                q = q.with_for_update(skip_locked=True)
            row = s.execute(q).first()
            if row is None:
                return None
            run_id, seen_status, seen_attempts, key, config, trial_number, position = row
            res = s.execute(
                update(Run)
                .where(Run.id == run_id, Run.status == seen_status,
                       Run.attempts == seen_attempts)
                .values(status="running", worker=worker, heartbeat_at=now,
                        attempts=seen_attempts + 1, started_at=now, finished_at=None,
                        error=None)
                .execution_options(synchronize_session=False))
            if res.rowcount != 1:
                continue  # somebody else won this row between our read and write
            # Only status, worker and times changed: the rest of the row is as read.
            return Claim(run_id, key, seen_attempts + 1, dict(config), trial_number, position)
    return None


def _owner(claim: Claim, worker: str) -> Any:
    return and_(Run.id == claim.run_id, Run.worker == worker, Run.attempts == claim.attempt,
                Run.status == "running")


def heartbeat(engine: Engine, claim: Claim, worker: str) -> bool:
    """Renew the lease; False when the claim was lost (the run was taken over)."""
    with Session(engine) as s, s.begin():
        res = s.execute(update(Run).where(_owner(claim, worker)).values(heartbeat_at=utcnow())
                        .execution_options(synchronize_session=False))
        return res.rowcount == 1


def record_result(engine: Engine, claim: Claim, worker: str, *, status: str,
                  metrics: Mapping[str, float], curves: Mapping[str, Iterable[float]],
                  error: str | None, wall_time_s: float | None, host: str,
                  device: str | None, versions: Mapping[str, Any],
                  resumed_from_epoch: int | None = None) -> bool:
    """Write a run's outcome atomically, only if this worker still holds it.

    Metrics and curves are replaced, never appended, so writing the same result twice leaves the
    same rows. Returns False (and writes nothing) when the claim was lost.
    """
    with Session(engine) as s, s.begin():
        res = s.execute(
            update(Run).where(_owner(claim, worker))
            .values(status=status, error=error, finished_at=utcnow(), wall_time_s=wall_time_s,
                    host=host, device=device, versions=dict(versions),
                    resumed_from_epoch=resumed_from_epoch)
            .execution_options(synchronize_session=False))
        if res.rowcount != 1:
            return False
        s.execute(delete(RunMetric).where(RunMetric.run_id == claim.run_id))
        s.execute(delete(RunCurve).where(RunCurve.run_id == claim.run_id))
        for name, value in metrics.items():
            v, special = encode_float(value)
            s.add(RunMetric(run_id=claim.run_id, name=name, value=v, special=special))
        for name, values in curves.items():
            for epoch, value in enumerate(values):
                v, special = encode_float(value)
                s.add(RunCurve(run_id=claim.run_id, name=name, epoch=epoch, value=v,
                               special=special))
        return True


def set_trial_number(engine: Engine, run_id: int, number: int) -> None:
    with Session(engine) as s, s.begin():
        s.execute(update(Run).where(Run.id == run_id).values(trial_number=number)
                  .execution_options(synchronize_session=False))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_dead_local_workers(engine: Engine, study_id: int) -> int:
    """Expire the lease of running runs whose worker process on this machine is gone.

    A SIGKILLed worker on this machine is then picked up at once instead of after the lease.
    "This machine" is the hostname, kernel boot and pid namespace of
    :mod:`harness.store.identity`, so a worker in another container or a cloned VM that merely
    shares the hostname is never expired. A reused pid costs at most a repeated run: the
    original worker's late result is refused by :func:`record_result`.
    """
    expired = 0
    with Session(engine) as s:
        rows = s.execute(select(Run.id, Run.worker, Run.attempts).where(
            Run.study_id == study_id, Run.status == "running")).all()
    for run_id, worker, attempts in rows:
        pid = identity.same_machine(worker)
        if pid is None or _pid_alive(pid):
            continue
        with Session(engine) as s, s.begin():
            res = s.execute(update(Run).where(
                Run.id == run_id, Run.worker == worker, Run.attempts == attempts,
                Run.status == "running").values(heartbeat_at=None)
                .execution_options(synchronize_session=False))
            expired += res.rowcount
    return expired


def write_epoch(engine: Engine, claim: Claim, worker: str, epoch: int,
                values: Mapping[str, float]) -> bool:
    """Write one epoch's curve values while the run trains (one small transaction).

    Rows of this epoch and any later one are replaced, so a run resumed from an earlier
    checkpoint never keeps a duplicated or orphaned epoch. False when the claim was lost.
    """
    with Session(engine) as s, s.begin():
        owned = s.execute(update(Run).where(_owner(claim, worker))
                          .values(heartbeat_at=utcnow())
                          .execution_options(synchronize_session=False)).rowcount == 1
        if not owned:
            return False
        s.execute(delete(RunCurve).where(RunCurve.run_id == claim.run_id,
                                         RunCurve.epoch >= epoch))
        for name, value in values.items():
            v, special = encode_float(value)
            s.add(RunCurve(run_id=claim.run_id, name=name, epoch=epoch, value=v,
                           special=special))
        return True


def count_by_status(engine: Engine, study_id: int) -> dict[str, int]:
    from sqlalchemy import func

    with Session(reader(engine)) as s:
        rows = s.execute(select(Run.status, func.count()).where(Run.study_id == study_id)
                         .group_by(Run.status)).all()
    return {status: int(n) for status, n in rows}


def insert_runs(engine: Engine, study_id: int, runs: Iterable[Any], *,
                trial_number: int | None = None) -> int:
    """Insert planned runs (and their factor rows); existing run keys are left untouched.

    Returns how many runs were new.
    """
    runs = list(runs)
    for attempt in range(5):
        try:
            return _insert_new(engine, study_id, runs, trial_number)
        except IntegrityError:
            # Another machine enqueued the same study at the same moment: its rows stand, and
            # the next attempt inserts only what is still missing.
            if attempt == 4:
                raise
            time.sleep(0.1 * (attempt + 1))
    return 0


def _insert_new(engine: Engine, study_id: int, runs: list[Any], trial_number: int | None
                ) -> int:
    with Session(engine) as s, s.begin():
        existing = set(s.scalars(select(Run.run_key).where(Run.study_id == study_id)))
        new = [r for r in runs if r.key not in existing]
        if not new:
            return 0
        last = s.scalar(select(Run.position).where(Run.study_id == study_id)
                        .order_by(Run.position.desc()).limit(1))
        next_pos = 0 if last is None else last + 1
        for i, r in enumerate(new):
            row = Run(study_id=study_id, run_key=r.key, status="pending", seed=r.seed,
                      config=r.config.to_dict(), position=next_pos + i, attempts=0,
                      trial_number=trial_number)
            row.factors = [RunFactor(factor=f, level=lbl) for f, lbl in r.labels.items()]
            s.add(row)
    return len(new)

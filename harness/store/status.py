"""What ``bsnn-bench status`` shows, read in one pass: counts, runs in flight, stale and failed
runs, and an ETA. Reads only (through :func:`harness.store.read.connect`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from harness.store.schema import Run, RunCurve, Study, utcnow

__all__ = ["InFlight", "StudyStatus", "study_status"]


@dataclasses.dataclass
class InFlight:
    run_key: str
    host: str
    worker: str
    #: Epochs finished so far (from the curves written while it trains).
    epochs_done: int
    epochs: int | None
    heartbeat_age_s: float | None
    stale: bool


@dataclasses.dataclass
class StudyStatus:
    name: str
    design: str
    counts: dict[str, int]
    running: list[InFlight]
    failed: list[tuple[str, str]]
    eta_s: float | None

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _host_of(worker: str | None) -> str:
    return (worker or "?").split(":", 1)[0]


def study_status(engine: Engine, study: Study, *, lease_s: float,
                 now: dt.datetime | None = None) -> StudyStatus:
    now = now or utcnow()
    with Session(engine) as s:
        counts = {st: int(n) for st, n in s.execute(
            select(Run.status, func.count()).where(Run.study_id == study.id)
            .group_by(Run.status)).all()}
        rows = s.execute(select(Run.id, Run.run_key, Run.worker, Run.heartbeat_at, Run.config)
                         .where(Run.study_id == study.id, Run.status == "running")
                         .order_by(Run.position)).all()
        done_epochs = dict(s.execute(
            select(RunCurve.run_id, func.max(RunCurve.epoch) + 1)
            .where(RunCurve.run_id.in_([r[0] for r in rows]))
            .group_by(RunCurve.run_id)).all()) if rows else {}
        failed = s.execute(select(Run.run_key, Run.error).where(
            Run.study_id == study.id, Run.status == "failed").order_by(Run.position)).all()
        walls = s.scalars(select(Run.wall_time_s).where(
            Run.study_id == study.id, Run.status == "complete",
            Run.wall_time_s.is_not(None))).all()
    running = []
    for run_id, key, worker, beat, config in rows:
        age = None if beat is None else (now - beat).total_seconds()
        epochs = ((config or {}).get("train") or {}).get("epochs")
        running.append(InFlight(run_key=key, host=_host_of(worker), worker=worker or "?",
                                epochs_done=int(done_epochs.get(run_id) or 0),
                                epochs=int(epochs) if isinstance(epochs, int) else None,
                                heartbeat_age_s=age, stale=age is None or age > lease_s))
    first_lines = [(k, (e or "").strip().splitlines()[0] if (e or "").strip() else "")
                   for k, e in failed]
    return StudyStatus(name=study.name, design=study.design, counts=counts, running=running,
                       failed=first_lines, eta_s=_eta(counts, running, list(walls)))


def _eta(counts: dict[str, int], running: list[InFlight], walls: list[Any]) -> float | None:
    """Remaining runs x mean run time / live workers (at least one); None before any run
    completed. A search's trials not yet asked for are not counted."""
    if not walls:
        return None
    left = sum(counts.get(k, 0) for k in ("pending", "interrupted", "running"))
    live = max(1, sum(1 for r in running if not r.stale))
    return left * (sum(walls) / len(walls)) / live

"""The results database: schema version, claims (compare-and-set), leases, idempotent writes."""

from __future__ import annotations

import datetime as dt
import math
import threading
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from harness.errors import StorageError
from harness.store import claims
from harness.store import engine as store_engine
from harness.store.schema import SCHEMA_VERSION, Run, RunCurve, RunFactor, RunMetric, SchemaInfo
from harness.study.coordinator import _register
from harness.study.spec import parse_spec

SPEC = {
    "study": "st",
    "train": {"epochs": 1, "seeds": [0, 1]},
    "factors": {"optimizer": ["adam", "sgd", {"name": "hybrid", "switch_at": 0.5}],
                "model.pool": ["max", "avg"]},
}


def _db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'r.sqlite'}"


def _setup(url: str, spec_dict: dict = SPEC) -> tuple[object, int, list]:
    engine = store_engine.open_database(url)
    spec = parse_spec(spec_dict, "st.yaml")
    planned = spec.plan()
    study_id = _register(engine, spec, url, planned)
    claims.insert_runs(engine, study_id, planned)
    return engine, study_id, planned


def test_schema_is_created_once_with_its_version(tmp_path: Path) -> None:
    url = _db(tmp_path)
    store_engine.open_database(url)
    engine = store_engine.open_database(url)
    with Session(engine) as s:
        rows = s.scalars(select(SchemaInfo)).all()
    assert [r.version for r in rows] == [SCHEMA_VERSION]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_other_schema_versions_are_refused_with_the_command(tmp_path: Path) -> None:
    url = _db(tmp_path)
    engine = store_engine.open_database(url)
    with Session(engine) as s, s.begin():
        s.execute(update(SchemaInfo).values(version=SCHEMA_VERSION + 1))
    with pytest.raises(StorageError, match="pip install --upgrade bsnn-bench"):
        store_engine.open_database(url)
    with Session(engine) as s, s.begin():
        s.execute(update(SchemaInfo).values(version=0))
    with pytest.raises(StorageError, match=r"no migration .* release that wrote it: "
                                           r"pip install 'bsnn-bench==VERSION'"):
        store_engine.open_database(url)


def test_an_old_schema_is_migrated_when_a_step_exists(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    url = _db(tmp_path)
    engine = store_engine.open_database(url)
    with Session(engine) as s, s.begin():
        s.execute(update(SchemaInfo).values(version=SCHEMA_VERSION - 1))
    calls = []
    monkeypatch.setitem(store_engine.MIGRATIONS, SCHEMA_VERSION - 1, lambda s: calls.append(s))
    store_engine.open_database(url)
    assert len(calls) == 1
    with Session(engine) as s:
        assert s.scalar(select(SchemaInfo.version)) == SCHEMA_VERSION


def test_enqueue_is_idempotent_and_stores_factor_levels(tmp_path: Path) -> None:
    url = _db(tmp_path)
    engine, study_id, planned = _setup(url)
    assert claims.insert_runs(engine, study_id, planned) == 0
    with Session(engine) as s:
        assert s.scalar(select(Run.id).where(Run.study_id == study_id)
                        .order_by(Run.id.desc())) == len(planned)
        levels = {(f.factor, f.level) for f in s.scalars(select(RunFactor))}
    assert ("optimizer", "hybrid(switch_at=0.5)") in levels and ("model.pool", "avg") in levels


def test_concurrent_claims_hand_out_every_run_exactly_once(tmp_path: Path) -> None:
    url = _db(tmp_path)
    engine, study_id, planned = _setup(url)
    got: dict[str, list[str]] = {}
    lock = threading.Lock()

    def worker(name: str) -> None:
        eng = store_engine.make_engine(url)
        while (claim := claims.claim_next(eng, study_id, name, lease_s=60)) is not None:
            assert claims.record_result(eng, claim, name, status="complete",
                                         metrics={"test_acc": 1.0}, curves={}, error=None,
                                         wall_time_s=0.0, host="h", device="cpu", versions={})
            with lock:
                got.setdefault(claim.run_key, []).append(name)
        eng.dispose()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(p.key for p in planned)
    assert all(len(v) == 1 for v in got.values())
    assert claims.count_by_status(engine, study_id) == {"complete": len(planned)}


def test_a_stale_lease_is_reclaimed_and_the_late_result_discarded(tmp_path: Path) -> None:
    url = _db(tmp_path)
    engine, study_id, planned = _setup(url)
    first = claims.claim_next(engine, study_id, "otherhost:1:a", lease_s=60)
    assert first is not None and first.attempt == 1
    # Still fresh: the next claim takes another run.
    second = claims.claim_next(engine, study_id, "otherhost:2:b", lease_s=60)
    assert second is not None and second.run_id != first.run_id
    # The first worker stops renewing: 61 s later its run is stale and goes to a new worker.
    with Session(engine) as s, s.begin():
        s.execute(update(Run).where(Run.id == first.run_id).values(
            heartbeat_at=claims.utcnow() - dt.timedelta(seconds=61)))
    again = claims.claim_next(engine, study_id, "otherhost:3:c", lease_s=60)
    assert again is not None and again.run_id == first.run_id and again.attempt == 2
    assert not claims.heartbeat(engine, first, "otherhost:1:a")
    late = claims.record_result(engine, first, "otherhost:1:a", status="complete",
                                 metrics={"test_acc": 0.1}, curves={}, error=None,
                                 wall_time_s=1.0, host="h", device="cpu", versions={})
    assert late is False
    assert claims.record_result(engine, again, "otherhost:3:c", status="complete",
                                 metrics={"test_acc": 0.9}, curves={}, error=None,
                                 wall_time_s=1.0, host="h", device="cpu", versions={})
    with Session(engine) as s:
        vals = s.scalars(select(RunMetric.value).where(RunMetric.run_id == first.run_id)).all()
    assert vals == [0.9]


def test_dead_local_worker_is_expired_at_once(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    url = _db(tmp_path)
    engine, study_id, _ = _setup(url)
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = f"{socket.gethostname()}:{int(proc.stdout)}:x"
    claim = claims.claim_next(engine, study_id, dead, lease_s=3600)
    assert claim is not None
    live = claims.claim_next(engine, study_id, f"{socket.gethostname()}:1:y", lease_s=3600)
    assert live is not None  # pid 1 exists: never expired
    assert claims.mark_dead_local_workers(engine, study_id) == 1
    again = claims.claim_next(engine, study_id, "w", lease_s=3600)
    assert again is not None and again.run_id == claim.run_id


def test_record_is_idempotent_and_keeps_nan_and_partial_curves(tmp_path: Path) -> None:
    url = _db(tmp_path)
    engine, study_id, _ = _setup(url)
    claim = claims.claim_next(engine, study_id, "w", lease_s=60)
    assert claim is not None
    for _ in range(2):
        # A retried write (same claim) replaces rather than duplicates.
        with Session(engine) as s, s.begin():
            s.execute(update(Run).where(Run.id == claim.run_id).values(status="running"))
        assert claims.record_result(engine, claim, "w", status="failed",
                                     metrics={"train_loss": float("nan")},
                                     curves={"train_loss": [1.0, float("inf")]},
                                     error="diverged", wall_time_s=2.0, host="h",
                                     device="cpu", versions={"torch": "x"})
    with Session(engine) as s:
        run = s.get(Run, claim.run_id)
        assert run is not None and run.status == "failed" and run.error == "diverged"
        m = s.scalars(select(RunMetric).where(RunMetric.run_id == claim.run_id)).all()
        c = s.scalars(select(RunCurve).where(RunCurve.run_id == claim.run_id)
                      .order_by(RunCurve.epoch)).all()
    assert len(m) == 1 and m[0].value is None and m[0].special == "nan"
    assert [(x.epoch, x.value, x.special) for x in c] == [(0, 1.0, None), (1, None, "inf")]
    assert math.isnan(float(m[0].special))


def test_changed_spec_is_refused_but_added_levels_and_seeds_are_enqueued(tmp_path: Path) -> None:
    url = _db(tmp_path)
    engine, study_id, planned = _setup(url)
    changed = {**SPEC, "train": {"epochs": 2, "seeds": [0, 1]}}
    with pytest.raises(StorageError, match=r"different spec .*changed: train\.epochs"):
        _setup(url, changed)
    fewer = {**SPEC, "factors": {"optimizer": ["adam", "sgd"], "model.pool": ["max", "avg"]}}
    with pytest.raises(StorageError, match=r"removes 4 existing runs"):
        _setup(url, fewer)
    other_factor = {**SPEC, "factors": {**SPEC["factors"], "lr_schedule": ["constant"]}}
    with pytest.raises(StorageError, match=r"changed: the set of factors"):
        _setup(url, other_factor)
    more = {**SPEC, "train": {"epochs": 1, "seeds": [0, 1, 2]},
            "factors": {"optimizer": [*SPEC["factors"]["optimizer"], "swats"],
                        "model.pool": ["max", "avg"]}}
    engine2, study_id2, planned2 = _setup(url, more)
    assert study_id2 == study_id
    assert len(planned2) == 4 * 2 * 3
    assert claims.count_by_status(engine, study_id) == {"pending": 24}


def test_sqlite_readers_take_no_write_lock(tmp_path: Path) -> None:
    """A transaction through store_engine.reader() leaves the database free for a writer; an
    ordinary one (BEGIN IMMEDIATE, for read-then-write) holds the write lock."""
    import sqlite3

    path = tmp_path / "r.sqlite"
    engine = store_engine.open_database(f"sqlite:///{path}")

    def writer_can_begin() -> bool:
        probe = sqlite3.connect(path, timeout=0.05, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
            return False
        finally:
            probe.close()

    for eng, free in ((store_engine.reader(engine), True), (engine, False)):
        with Session(eng) as s:
            assert s.scalars(select(SchemaInfo)).first() is not None  # transaction open
            assert writer_can_begin() is free
        assert writer_can_begin()
    assert claims.count_by_status(engine, 1) == {}
    engine.dispose()

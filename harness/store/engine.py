"""Opening the results database: engine setup for SQLite and PostgreSQL, schema version."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    create_engine,
    event,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from harness.errors import StorageError
from harness.store.schema import (
    SCHEMA_VERSION,
    Base,
    Run,
    RunFactor,
    SchemaInfo,
    Study,
    StudyBudget,
    StudyFactor,
    utcnow,
)

DEFAULT_DB = "sqlite:///results.sqlite"
_READ_ONLY = "bsnn_read_only"


def _add_weights_columns(s: Connection) -> None:
    """1 -> 2: where each run's kept weights are, and their SHA-256; the energy of schema 1
    (synaptic operations only) is renamed, so that it never mixes with the new total, which
    adds memory access (harness.run.costs): re-run a study for the new energy metrics."""
    s.execute(text("ALTER TABLE bench_runs ADD COLUMN weights_path VARCHAR(1024)"))
    s.execute(text("ALTER TABLE bench_runs ADD COLUMN weights_sha256 VARCHAR(64)"))
    s.execute(text("UPDATE bench_run_metrics SET name = 'energy_synops_only_uj_per_sample' "
                   "WHERE name = 'energy_uj_per_sample'"))


#: Migration steps: ``MIGRATIONS[v]`` upgrades a database from schema version v to v + 1.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _add_weights_columns}
#: The advisory-lock key every process takes while it creates or migrates the schema.
SCHEMA_LOCK_KEY = 0x62736E6E


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE``."""
    try:
        if _is_sqlite(url):
            engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_conn: Any, _record: Any) -> None:
                # Let SQLAlchemy emit BEGIN itself (below); pysqlite's own BEGIN is deferred,
                # which lets two readers both decide to write and one of them then fail.
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA busy_timeout=60000")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

            @event.listens_for(engine, "begin")
            def _on_begin(conn: Any) -> None:
                # A read-only transaction (reader()) must not take the write lock: with WAL it
                # reads a snapshot while workers write.
                read_only = conn.get_execution_options().get(_READ_ONLY, False)
                conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

            return engine
        return create_engine(url, pool_pre_ping=True)
    except Exception as exc:  # bad URL, missing driver
        raise StorageError(f"cannot open database '{url}': {exc}") from None


def reader(engine: Engine) -> Engine:
    """``engine`` for read-only sessions: on SQLite they take no write lock (every other
    transaction begins IMMEDIATE, so that read-then-write never deadlocks)."""
    return engine.execution_options(**{_READ_ONLY: True})


def _read_version(conn: Connection) -> int | None:
    return conn.execute(select(SchemaInfo.version).order_by(SchemaInfo.id)).scalar()


def schema_lock(conn: Connection) -> None:
    """Serialize schema work with every other process until ``conn``'s transaction ends.

    PostgreSQL: a transaction-level advisory lock (creating tables concurrently otherwise fails
    with ``UniqueViolation`` on the catalogue). SQLite: the transaction began IMMEDIATE, which
    holds the write lock already.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})


def open_database(url: str | None = None, *, create: bool = True) -> Engine:
    """Open (and with ``create``, initialize) the results database; check its schema version.

    Any number of processes may call this at once on a fresh database: the one that gets the
    schema lock first creates the tables (or migrates an older version in place), the others
    then find them made.

    Raises:
        StorageError: unreachable database, or a schema version this code cannot read.
    """
    url = url or DEFAULT_DB
    engine = make_engine(url)
    try:
        with reader(engine).connect() as conn:
            if "bench_schema" in inspect(conn).get_table_names():
                version = _read_version(conn)
                if version == SCHEMA_VERSION:
                    return engine
                if version is not None:
                    _refuse_version(url, version)
            elif not create:
                return engine
        with engine.begin() as conn:
            schema_lock(conn)
            tables = set(inspect(conn).get_table_names())
            version = _read_version(conn) if "bench_schema" in tables else None
            if version is None:
                Base.metadata.create_all(conn)
                if _read_version(conn) is None:
                    conn.execute(insert(SchemaInfo).values(id=1, version=SCHEMA_VERSION,
                                                           created_at=utcnow()))
            elif version < SCHEMA_VERSION:
                _refuse_version(url, version)
                for v in range(version, SCHEMA_VERSION):
                    MIGRATIONS[v](conn)
                conn.execute(update(SchemaInfo).values(version=SCHEMA_VERSION))
        return engine
    except (IntegrityError, ProgrammingError) as exc:
        raise StorageError(f"cannot create the tables in '{url}': {exc}") from None
    except OperationalError as exc:
        raise StorageError(f"cannot open database '{url}': {exc.orig}") from None


def _refuse_version(url: str, version: int) -> None:
    """Raise unless this code can open (after migrating) a database at ``version``."""
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"database '{url}' has results schema version {version}, newer than this "
            f"bsnn-bench (version {SCHEMA_VERSION}); upgrade it: pip install --upgrade bsnn-bench")
    missing = [v for v in range(version, SCHEMA_VERSION) if v not in MIGRATIONS]
    if missing:
        raise StorageError(
            f"database '{url}' has results schema version {version} and no migration to "
            f"version {SCHEMA_VERSION} exists; open it with the bsnn-bench that wrote it, "
            f"or start a new database: bsnn-bench run SPEC --db sqlite:///new-results.sqlite")


@contextlib.contextmanager
def schema_guard(url: str) -> Iterator[None]:
    """Hold the schema lock (PostgreSQL: a session advisory lock) around code that creates
    tables through its own connections, such as Optuna's ``RDBStorage``; SQLite: nothing."""
    if _is_sqlite(url):
        yield
        return
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK_KEY})
                conn.commit()
    finally:
        engine.dispose()


# -- migrations ------------------------------------------------------------------------------

def _migrate_2_to_3(conn: Connection) -> None:
    """Version 3: study factors and levels, run budgets, search keep-alive, resumed epochs.

    An older study's levels are rebuilt from its stored spec (factor order) and the labels
    its runs stored, in run order (grid order starts with the reference combination, so the
    reference level comes first); the next ``bsnn-bench run`` of the spec rewrites them from
    the spec itself.
    """
    conn.execute(text("ALTER TABLE bench_runs ADD COLUMN resumed_from_epoch INTEGER"))
    conn.execute(text("ALTER TABLE bench_studies ADD COLUMN keep_alive_until TIMESTAMP"))
    Base.metadata.create_all(conn, tables=[StudyFactor.__table__, StudyBudget.__table__])
    studies = conn.execute(select(Study.id, Study.spec)).all()
    for study_id, spec in studies:
        if isinstance(spec, str):
            spec = json.loads(spec)
        rows = conn.execute(
            select(RunFactor.factor, RunFactor.level).join(Run, Run.id == RunFactor.run_id)
            .where(Run.study_id == study_id).order_by(Run.position, Run.id)).all()
        seen: dict[str, list[str]] = {}
        for factor, level in rows:
            labels = seen.setdefault(factor, [])
            if level not in labels:
                labels.append(level)
        named = list((spec or {}).get("factors") or {}) if isinstance(spec, dict) else []
        order = [f for f in named if f in seen] + [f for f in seen if f not in named]
        for i, factor in enumerate(order):
            conn.execute(insert(StudyFactor).values(study_id=study_id, factor=factor,
                                                    position=i, varied=True,
                                                    labels=seen[factor]))


MIGRATIONS[2] = _migrate_2_to_3

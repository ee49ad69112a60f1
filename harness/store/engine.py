"""Opening the results database: engine setup for SQLite and PostgreSQL, schema version."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import (
    Engine,
    create_engine,
    event,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from harness.errors import StorageError
from harness.store.schema import (
    SCHEMA_VERSION,
    Base,
    SchemaInfo,
)

DEFAULT_DB = "sqlite:///results.sqlite"
_READ_ONLY = "bsnn_read_only"


def _add_weights_columns(s: Session) -> None:
    """1 -> 2: where each run's kept weights are, and their SHA-256; the energy of schema 1
    (synaptic operations only) is renamed, so that it never mixes with the new total, which
    adds memory access (harness.run.costs): re-run a study for the new energy metrics."""
    s.execute(text("ALTER TABLE bench_runs ADD COLUMN weights_path VARCHAR(1024)"))
    s.execute(text("ALTER TABLE bench_runs ADD COLUMN weights_sha256 VARCHAR(64)"))
    s.execute(text("UPDATE bench_run_metrics SET name = 'energy_synops_only_uj_per_sample' "
                   "WHERE name = 'energy_uj_per_sample'"))


#: Migration steps: ``MIGRATIONS[v]`` upgrades a database from schema version v to v + 1.
MIGRATIONS: dict[int, Any] = {1: _add_weights_columns}


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


def _read_version(engine: Engine) -> int | None:
    with Session(engine) as s:
        row = s.scalars(select(SchemaInfo).order_by(SchemaInfo.id)).first()
        return None if row is None else row.version


def open_database(url: str | None = None, *, create: bool = True) -> Engine:
    """Open (and with ``create``, initialize) the results database; check its schema version.

    Raises:
        StorageError: unreachable database, or a schema version this code cannot read.
    """
    url = url or DEFAULT_DB
    engine = make_engine(url)
    for attempt in range(5):
        try:
            tables = set(inspect(engine).get_table_names())
            if "bench_schema" in tables:
                version = _read_version(engine)
                if version is not None:
                    _check_version(engine, url, version)
                    return engine
            if not create:
                return engine
            # Another process may create the same tables at the same moment; the loser of that
            # race sees an error here and simply re-reads the schema on its next attempt.
            Base.metadata.create_all(engine)
            with Session(engine) as s, s.begin():
                if s.scalars(select(SchemaInfo)).first() is None:
                    s.add(SchemaInfo(id=1, version=SCHEMA_VERSION))
            return engine
        except (IntegrityError, ProgrammingError) as exc:
            if attempt == 4:
                raise StorageError(f"cannot create the tables in '{url}': {exc}") from None
            time.sleep(0.2 * (attempt + 1))
        except OperationalError as exc:
            raise StorageError(f"cannot open database '{url}': {exc.orig}") from None
    return engine


def _check_version(engine: Engine, url: str, version: int) -> None:
    if version == SCHEMA_VERSION:
        return
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
    with Session(engine) as s, s.begin():
        for v in range(version, SCHEMA_VERSION):
            MIGRATIONS[v](s)
        s.execute(update(SchemaInfo).values(version=SCHEMA_VERSION))

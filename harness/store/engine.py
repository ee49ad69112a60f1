"""Opening the results database: engine setup for SQLite and PostgreSQL, schema version.

A database ``run`` cannot write (read-only file or folder, a file that is not SQLite) is refused
before anything starts; ``report`` opens SQLite read-only where it cannot write (see
:func:`sqlite_reader`). The schema version is checked by every command with one message naming
the one command that fixes a mismatch (:func:`schema_problem`).
"""

from __future__ import annotations

import time
from pathlib import Path
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
from sqlalchemy.exc import DatabaseError, IntegrityError, ProgrammingError
from sqlalchemy.orm import Session

from harness.errors import StorageError
from harness.store.schema import (
    SCHEMA_VERSION,
    Base,
    SchemaInfo,
)
from harness.store.sqlite_files import (
    SQLITE_MAGIC,
    check_sqlite_writable,
    sqlite_path,
    sqlite_reader,
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
    path = sqlite_path(url)
    if path is not None:
        check_sqlite_writable(url, path)
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
        except DatabaseError as exc:
            engine.dispose()
            raise StorageError(f"cannot open database '{url}': {_first_line(exc.orig)}") from None
    return engine


def _refused(version: int) -> bool:
    """Whether ``run`` refuses a database of schema ``version`` (it migrates the others)."""
    return version > SCHEMA_VERSION or any(v not in MIGRATIONS
                                           for v in range(version, SCHEMA_VERSION))


def _check_version(engine: Engine, url: str, version: int) -> None:
    """Migrate an older database in place where every step exists; refuse any other version."""
    if version == SCHEMA_VERSION:
        return
    if _refused(version):
        raise StorageError(schema_problem(url, version, engine))
    with Session(engine) as s, s.begin():
        for v in range(version, SCHEMA_VERSION):
            MIGRATIONS[v](s)
        s.execute(update(SchemaInfo).values(version=SCHEMA_VERSION))


def schema_problem(url: str, version: int, engine: Engine | None = None) -> str:
    """The one message for a database of schema ``version`` this code cannot use as it is, with
    the one command that fixes it (the same from every command)."""
    where = f"database '{url}' has results schema version {version}"
    if version > SCHEMA_VERSION:
        return (f"{where}, newer than this bsnn-bench reads (version {SCHEMA_VERSION}); "
                f"upgrade bsnn-bench: pip install --upgrade bsnn-bench")
    if all(v in MIGRATIONS for v in range(version, SCHEMA_VERSION)):
        return (f"{where}, older than this bsnn-bench's {SCHEMA_VERSION}; upgrade the database "
                f"in place: bsnn-bench migrate --db {url}")
    release = _writer_release(engine)
    install = (f"pip install 'bsnn-bench=={release}'" if release
               else "pip install 'bsnn-bench==VERSION' (the release that wrote it)")
    return (f"{where} and no migration to this bsnn-bench's version {SCHEMA_VERSION} exists; "
            f"read it with the release that wrote it: {install}")


def _writer_release(engine: Engine | None) -> str | None:
    """The bsnn-bench version recorded by the database's most recent run, if any."""
    if engine is None:
        return None
    try:
        from harness.store.schema import Run

        with Session(engine) as s:
            versions = s.scalar(select(Run.versions).where(Run.versions.is_not(None))
                                .order_by(Run.id.desc()).limit(1))
    except Exception:  # noqa: BLE001 - only a hint; an older schema may lack the column
        return None
    release = versions.get("bsnn-bench") if isinstance(versions, dict) else None
    return str(release) if release else None


def stored_version(engine: Engine) -> int | None:
    """The schema version a database records, or None where it has no ``bench_schema``."""
    if "bench_schema" not in set(inspect(engine).get_table_names()):
        return None
    return _read_version(engine)


def check_usable(url: str) -> None:
    """Refuse, reading only, a database ``run`` would refuse: a SQLite file that is not a
    database, or a schema version ``run`` cannot migrate (what ``run --dry-run`` checks). A
    database that does not exist yet, or cannot be reached, passes: ``run`` reports that."""
    path = sqlite_path(url)
    if path is not None:
        if not Path(path).is_file():
            return
        with Path(path).open("rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
        if head and head != SQLITE_MAGIC:
            check_sqlite_writable(url, path)  # raises the not-a-database message
    try:
        engine = sqlite_reader(path) if path is not None else create_engine(url)
    except Exception:  # noqa: BLE001 - a bad URL or driver: run itself says so
        return
    try:
        version = stored_version(engine)
        if version is not None and _refused(version):
            raise StorageError(schema_problem(url, version, engine))
    except DatabaseError:
        return
    finally:
        engine.dispose()


def migrate(url: str) -> tuple[int, int]:
    """Upgrade the results database at ``url`` in place; return (old version, new version)."""
    path = sqlite_path(url)
    if path is not None:
        if not Path(path).is_file():
            raise StorageError(f"results database '{path}' does not exist")
        check_sqlite_writable(url, path)
    engine = make_engine(url)
    try:
        version = stored_version(engine)
        if version is None or "bench_runs" not in set(inspect(engine).get_table_names()):
            raise StorageError(f"'{url}' holds no bsnn-bench results (no bench_schema / "
                               f"bench_runs tables)")
        _check_version(engine, url, version)
        return version, SCHEMA_VERSION
    except DatabaseError as exc:
        raise StorageError(f"cannot open database '{url}': {_first_line(exc.orig)}") from None
    finally:
        engine.dispose()


def _first_line(exc: BaseException | None) -> str:
    text = str(exc).strip() if exc is not None else ""
    return text.splitlines()[0] if text else type(exc).__name__

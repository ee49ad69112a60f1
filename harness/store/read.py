"""Read-only access to the results database: connect without ever creating a table.

Used by the read side (:mod:`harness.results`, ``bsnn-bench status``): a mistyped SQLite path is
an error rather than a new empty database, and a database of another schema version is refused
with the command that upgrades it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from harness.errors import StorageError
from harness.store import engine as store_engine
from harness.store.schema import SCHEMA_VERSION, SchemaInfo

__all__ = ["DEFAULT_DB_URL", "connect", "snapshot"]

DEFAULT_DB_URL = "sqlite:///results.sqlite"


@contextlib.contextmanager
def connect(db: str | Engine | None) -> Iterator[Engine]:
    """An engine on ``db`` (URL, Engine or None for the default), checked to hold our tables.

    An engine we create is disposed on exit; one passed in is left to its owner.
    """
    if isinstance(db, Engine):
        _check_schema(db, str(db.url))
        yield db
        return
    url_text = db or DEFAULT_DB_URL
    try:
        url = make_url(url_text)
    except ArgumentError:
        raise StorageError(f"'{url_text}' is not a database URL (expected e.g. "
                           f"{DEFAULT_DB_URL} or postgresql+psycopg://host/db)") from None
    if url.get_backend_name() == "sqlite":
        path = url.database or ""
        # SQLite would silently create an empty file: a typo must not look like an empty study.
        if path in ("", ":memory:") or path.startswith("file:"):
            raise StorageError(f"'{url_text}': no results database file named (expected "
                               f"sqlite:///PATH)")
        if not Path(path).is_file():
            raise StorageError(f"results database '{path}' does not exist (run a study first: "
                               f"bsnn-bench run STUDY.yaml --db {url_text})")
    try:
        # SQLite: read-only where this process cannot write (a read-only file system).
        engine = (store_engine.sqlite_reader(url.database or "", url)
                  if url.get_backend_name() == "sqlite" else create_engine(url))
    except (ArgumentError, ImportError) as exc:
        raise StorageError(f"cannot open database '{url_text}': {exc}") from None
    if url.get_backend_name() == "sqlite":
        _sqlite_snapshots(engine)
    try:
        _check_schema(engine, url_text)
        yield engine
    finally:
        engine.dispose()


def _check_schema(engine: Engine, where: str) -> None:
    try:
        tables = set(inspect(engine).get_table_names())
        if "bench_studies" not in tables or "bench_runs" not in tables:
            raise StorageError(f"'{where}' holds no bsnn-bench results (no bench_studies / "
                               f"bench_runs tables)")
        if "bench_schema" in tables:
            with engine.connect() as conn:
                version = conn.execute(select(SchemaInfo.version)).scalar()
            if version is not None and version != SCHEMA_VERSION:
                raise StorageError(store_engine.schema_problem(where, version, engine))
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot read database '{where}': {exc.__class__.__name__}: "
                           f"{exc.orig if hasattr(exc, 'orig') else exc}") from None


def _sqlite_snapshots(engine: Engine) -> None:
    """Make a SQLAlchemy transaction a real SQLite transaction.

    pysqlite only opens a transaction before writes, so the SELECTs of one :func:`runs_frame`
    would each see the database as of their own moment. A plain (deferred) BEGIN turns them into
    one read snapshot and, unlike the runner's BEGIN IMMEDIATE, takes no write lock.
    """

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")


def snapshot(engine: Engine) -> Engine:
    """The engine reading in one snapshot: runs, factors and metrics are separate queries, and
    a worker may commit a result between them. PostgreSQL's default (read committed) gives each
    statement its own snapshot; repeatable read gives the transaction one."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="REPEATABLE READ")
    return engine



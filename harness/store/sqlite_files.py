"""SQLite files of the results database: refusing one ``run`` cannot write or that is no
database, and opening one read-only where this process cannot write (``report`` on a read-only
file system)."""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from harness.errors import StorageError

__all__ = ["SQLITE_MAGIC", "check_sqlite_writable", "sqlite_path", "sqlite_reader"]

SQLITE_MAGIC = b"SQLite format 3\x00"


def sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:///PATH`` URL (None: not SQLite, or in memory)."""
    if not url.startswith("sqlite"):
        return None
    try:
        database = make_url(url).database
    except ArgumentError:
        return None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def _read_only_reason(target: Path) -> str | None:
    """Why ``target`` (a file or folder) cannot be written, or None where it can."""
    if os.access(target, os.W_OK):
        return None
    try:
        if os.statvfs(target).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except OSError:
        pass
    return "no write permission"


#: Database files this process has checked and found usable. Checked once: reading the header
#: means opening and closing the file, and closing any descriptor of a SQLite file drops every
#: POSIX lock this process holds on it (SQLite's documented hazard), which turns the next write
#: of an engine still connected (Optuna's storage, kept per process) into "disk I/O error".
_CHECKED: set[Path] = set()


def check_sqlite_writable(url: str, path: str) -> None:
    """Refuse, with one line, a SQLite database ``run`` cannot write or that is no database."""
    file = Path(path)
    if file.resolve() in _CHECKED:
        return
    folder = file.resolve().parent
    if not folder.is_dir():
        raise StorageError(f"cannot open database '{url}': folder {folder} does not exist")
    if file.exists():
        if not file.is_file():
            raise StorageError(f"cannot open database '{url}': {file} is not a file")
        try:
            with file.open("rb") as fh:
                head = fh.read(len(SQLITE_MAGIC))
        except OSError as exc:
            raise StorageError(f"cannot open database '{url}': {exc.strerror}") from None
        if head and head != SQLITE_MAGIC:
            raise StorageError(f"'{file}' is not a SQLite database (its first bytes are "
                               f"{head[:8]!r}); name a results database or a new file with "
                               f"--db sqlite:///PATH")
        why = _read_only_reason(file) or _read_only_reason(folder)
    else:
        why = _read_only_reason(folder)
    if why:
        raise StorageError(f"results database '{file}' cannot be written ({why}); run records "
                           f"results there: use a writable copy, --db sqlite:///WRITABLE/PATH")
    _CHECKED.add(file.resolve())


def sqlite_reader(path: str, url: Any = None) -> Engine:
    """A read-only engine on the SQLite file ``path`` for readers such as ``report``.

    Where this process can write the file and its folder, a plain engine (WAL readers then
    share the ``-shm`` index with writers). Otherwise the file is opened ``mode=ro``; where the
    folder cannot be written either (no ``-shm`` can be created), SQLite can still read a WAL
    database whose ``-wal`` and ``-shm`` files exist, and a database without a ``-wal`` file
    is opened ``immutable=1`` (nothing outside the file to read; SQLite then takes no locks,
    so it must not change meanwhile, which a read-only file system guarantees).
    """
    file = Path(path).resolve()
    folder = file.parent
    if _read_only_reason(file) is None and _read_only_reason(folder) is None:
        return create_engine(url if url is not None else f"sqlite:///{path}")
    query = "mode=ro"
    wal, shm = Path(f"{file}-wal"), Path(f"{file}-shm")
    if _read_only_reason(folder) is not None:
        has_log = wal.exists() and wal.stat().st_size > 0
        if not has_log:
            query += "&immutable=1"
        elif not shm.exists():
            raise StorageError(f"cannot read '{file}' on a read-only folder: its write-ahead "
                               f"log {wal.name} holds results but {shm.name} is missing; copy "
                               f"the database with its -wal file to a writable folder")
    uri = f"file:{urllib.parse.quote(str(file))}?{query}"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    return create_engine("sqlite://", creator=connect)

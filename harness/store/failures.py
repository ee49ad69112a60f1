"""Failures of the storage (the results database, the disk) as one line for the command line.

:func:`harness.cli.main` turns what escapes a command into ``bsnn-bench: error: ...`` and exit
code 3 (:data:`harness.errors.EXIT_INTERNAL`). Every write of the results database is one
transaction and every report file is replaced atomically, so a failure here loses nothing that
was committed: the same command, run again once the cause is fixed, resumes.
"""

from __future__ import annotations

import errno

from harness.store.engine import _first_line

__all__ = ["describe_failure"]

_ERRNO_TEXT = {errno.ENOSPC: "no space left on device", errno.EROFS: "read-only file system",
               errno.EDQUOT: "disk quota exceeded", errno.EACCES: "permission denied",
               errno.EPERM: "operation not permitted", errno.EIO: "input/output error"}


def _then(text: str) -> str:
    """What the user does next, after the cause ``text``."""
    low = text.lower()
    if "full" in low or "no space" in low or "quota" in low:
        fix = "free some space"
    elif "read-only" in low or "readonly" in low or "permission" in low:
        fix = "make it writable"
    else:
        fix = "fix the cause"
    return f"{text}; nothing saved before was lost: {fix} and run the same command again"


def describe_failure(exc: BaseException, url: str | None = None) -> str | None:
    """One line for a failure of the storage (database, disk), or None for anything else.

    Covers SQLAlchemy's DBAPI errors (``OperationalError``, ``DatabaseError``, ...), Optuna's
    ``StorageInternalError`` (which wraps one) and ``OSError``.
    """
    if type(exc).__name__ == "StorageInternalError" and type(exc).__module__.startswith("optuna"):
        cause = exc.__cause__ or exc.__context__
        inner = describe_failure(cause, url) if cause is not None else None
        return inner or _then(f"Optuna's storage in {url or 'the results database'} failed: "
                              f"{_first_line(exc)}")
    if isinstance(exc, OSError):
        text = _ERRNO_TEXT.get(exc.errno or 0, exc.strerror or _first_line(exc))
        where = f" ({exc.filename})" if exc.filename else ""
        return _then(f"{text}{where}")
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        db = f"the results database {url}" if url else "the results database"
        return _then(f"{db} failed: {_first_line(exc.orig)}")
    return None

"""Errors a user can cause, and the exit codes of ``bsnn-bench``.

The CLI prints the message of a :class:`UserError` as one line (``bsnn-bench: error: ...``) and
exits with its ``exit_code``, with no traceback.

Exit codes (scripts can rely on them; README "Exit codes"):

====  =====================  =========================================================
code  constant               meaning
====  =====================  =========================================================
0     ``EXIT_OK``            done: every run finished (or the command did its job)
1     ``EXIT_RUNS_FAILED``   the command finished, but some runs failed
2     ``EXIT_USER_ERROR``    user error: bad spec or config, missing data, a database
                             that refuses the study (schema version, spec changed)
3     ``EXIT_INTERNAL``      internal or storage error: the database or the disk failed
                             (full, read-only, not a database), or a bug
130   ``EXIT_SIGINT``        interrupted by SIGINT (Ctrl-C); resumable
143   ``EXIT_SIGTERM``       stopped by SIGTERM (a scheduler's stop); resumable
====  =====================  =========================================================
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import traceback

__all__ = [
    "DEBUG_ENV",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_RUNS_FAILED",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "EXIT_USER_ERROR",
    "ConfigError",
    "DatasetMissingError",
    "RecordingError",
    "SpecError",
    "StorageError",
    "StorageFailure",
    "UserError",
    "traceback_note",
]

#: Done.
EXIT_OK = 0
#: The command finished, but some runs failed (their errors are in the database).
EXIT_RUNS_FAILED = 1
#: The user's input or environment is wrong: bad spec, missing data, refused database.
EXIT_USER_ERROR = 2
#: The storage failed (full disk, read-only file system, not a database) or a bug.
EXIT_INTERNAL = 3
#: Interrupted by SIGINT (128 + 2).
EXIT_SIGINT = 130
#: Stopped by SIGTERM (128 + 15).
EXIT_SIGTERM = 143


class UserError(Exception):
    """Base of every error caused by the user's input or environment, not by a bug."""

    exit_code = EXIT_USER_ERROR


class ConfigError(UserError):
    """A bad run configuration: unknown key, bad type, unknown trick level."""


class SpecError(UserError):
    """A bad study spec; the message names the file and the key."""


class DatasetMissingError(UserError):
    """A real dataset is not on disk; the message names the path and how to get it."""


class StorageError(UserError):
    """The results database cannot be used as asked (schema version, spec changed, ...)."""


class StorageFailure(UserError):
    """The storage itself failed: disk full, read-only file system, a file that is not a
    database, a lost connection. Nothing was lost that the database had committed."""

    exit_code = EXIT_INTERNAL


class RecordingError(UserError):
    """A recording on disk cannot be used (malformed, outside the sensor, mislabelled); the
    message names the file."""


def print_error(message: str) -> None:
    """``bsnn-bench: error: <message>`` on stderr as one line (newlines in ``message``, such as
    a database's error text, become spaces), in one write: a study's workers share the
    command's stderr, and print()'s two writes (text, then newline) of two processes can
    interleave into one line."""
    text = " ".join(message.split("\n"))
    sys.stderr.write(f"bsnn-bench: error: {text}\n")
    sys.stderr.flush()


#: Set to 1 to print the traceback of an internal error (as ``--debug`` does).
DEBUG_ENV = "BSNN_BENCH_DEBUG"


def traceback_note(exc: BaseException, debug: bool = False) -> str:
    """Where the traceback of a bug went: printed (debug), or a file in the temporary folder."""
    if debug:
        return "traceback above; please report it"
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        fd, name = tempfile.mkstemp(prefix=f"bsnn-bench-crash-{stamp}-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(f"bsnn-bench {' '.join(sys.argv[1:])}\n\n")
            fh.write("".join(traceback.format_exception(exc)))
    except OSError as err:
        return (f"traceback not saved: {err.strerror or err}; rerun with --debug or "
                f"{DEBUG_ENV}=1 to see it")
    return f"traceback in {name}; please report it"

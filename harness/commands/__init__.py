"""One module per ``bsnn-bench`` subcommand: ``register(subparsers)`` adds its parser and sets
``func``; the function returns the exit code. :mod:`harness.cli` lists them in ``COMMANDS``."""

from typing import Any

#: The ``--db`` option every command that reads or writes the results database takes.
DB_HELP = "SQLAlchemy URL (default sqlite:///results.sqlite)"


def add_db_option(p: Any) -> None:
    p.add_argument("--db", default=None, help=DB_HELP)

"""The ``bsnn-bench`` command: train | run | worker | status | report | export | show |
compare | tricks | datasets | migrate.

Every failure ends in one line on stderr, ``bsnn-bench: error: ...``, and a documented exit code
(:mod:`harness.errors`): 2 for the user's input or environment, 3 for a failure of the storage
(full disk, read-only file system, a lost database connection) or a bug. A bug's traceback is
written to a file named in that line; ``--debug`` (or ``BSNN_BENCH_DEBUG=1``) prints it instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from harness.errors import (
    DEBUG_ENV,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_SIGINT,
    EXIT_USER_ERROR,
    UserError,
    print_error,
    traceback_note,
)

__all__ = ["DEBUG_ENV", "main", "traceback_note"]


#: Subcommands in the order ``--help`` lists them; each is a module of harness.commands.
COMMANDS = ("train", "run", "worker", "status", "report", "export", "show", "compare", "tricks",
            "datasets", "migrate")
#: Subcommands that train in this process: they start again with the allocator setting.
TRAINING_COMMANDS = ("train", "run", "worker")


def version() -> str:
    """The installed distribution's version (the source tree's when run from a checkout)."""
    from importlib import metadata

    try:
        return metadata.version("bsnn-bench")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bsnn-bench", description="Ablation studies of binary spiking neural networks.",
        epilog="exit codes: 0 done, 1 finished with failed runs, 2 user error, 3 storage or "
               "internal error, 130 SIGINT, 143 SIGTERM")
    parser.add_argument("--debug", action="store_true",
                        help=f"print the traceback of an error ({DEBUG_ENV}=1 does the same)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"harness.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)  # after --debug
    if argv is None and command in TRAINING_COMMANDS:
        # Training in this process: start it again with the allocator keeping freed memory
        # (harness.run.memory); returns at once when that is already so, or turned off. Done
        # before anything else is imported (the commands import torch): whatever
        # this process loads is thrown away by the exec.
        from harness.run.memory import reexec_with_retained_memory

        reexec_with_retained_memory(["-m", "harness.cli", *sys.argv[1:]])
    parser = build_parser()  # imports no torch: the commands import what they need
    args = parser.parse_args(argv)
    if argv is None and args.command == "run":
        # A study with local workers: start their forkserver now, before the imports below
        # (tricks import torch), so that it loads torch and Lightning on another core
        # meanwhile (harness.study.prestart).
        from harness.study.prestart import prestart_for

        prestart_for(args)
    from tricks._registry import TrickError

    debug = bool(args.debug) or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        return int(args.func(args) or EXIT_OK)
    except (UserError, TrickError) as exc:
        if debug:
            traceback.print_exc()
        print_error(str(exc))
        return int(getattr(exc, "exit_code", EXIT_USER_ERROR))
    except KeyboardInterrupt:
        print("bsnn-bench: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except BrokenPipeError:
        # The reader went away (`bsnn-bench tricks | head`): not an error. Point stdout at
        # /dev/null so that the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the boundary: one line and exit 3, never a trace
        from harness.store.failures import describe_failure

        if debug:
            traceback.print_exc()
        storage = describe_failure(exc, getattr(args, "db", None))
        if storage is not None:
            print_error(storage)
        else:
            print_error(f"internal error: {type(exc).__name__}: {_first_line(exc)} "
                   f"({traceback_note(exc, debug)})")
        return EXIT_INTERNAL


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


if __name__ == "__main__":
    sys.exit(main())

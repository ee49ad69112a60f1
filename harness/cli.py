"""The ``bsnn-bench`` command: train | run | report | export | show | compare | tricks |
datasets.

User errors print one line and exit 2 (never a traceback); bugs still show their traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from harness.errors import UserError
from tricks._registry import TrickError

__all__ = ["main"]


#: Subcommands in the order ``--help`` lists them; each is a module of harness.commands.
COMMANDS = ("train", "run", "report", "export", "show", "compare", "tricks", "datasets")


def version() -> str:
    """The installed distribution's version (the source tree's when run from a checkout)."""
    from importlib import metadata

    try:
        return metadata.version("bsnn-bench")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bsnn-bench", description="Ablation studies of binary spiking neural networks.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"harness.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None and args.command in ("train", "run"):
        # Training in this process: start it again with the allocator keeping freed memory
        # (harness.run.memory); returns at once when that is already so, or turned off.
        from harness.run.memory import reexec_with_retained_memory

        reexec_with_retained_memory(["-m", "harness.cli", *sys.argv[1:]])
    try:
        return int(args.func(args) or 0)
    except (UserError, TrickError) as exc:
        print(f"bsnn-bench: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        print("bsnn-bench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`bsnn-bench tricks | head`): not an error. Point stdout at
        # /dev/null so that the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

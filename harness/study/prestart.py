"""The forkserver local study workers are forked from, started before anything heavy is imported.

``bsnn-bench run --workers N`` (N > 1, local launcher) calls :func:`prestart_workers` first
thing, before the CLI imports the tricks (and with them torch): the server, a fresh interpreter,
imports what a worker needs to train (:data:`PRELOAD`: torch, Lightning, the data pipeline,
about 5 s of CPU) on another core while the command parses the study and prepares the
database. A worker is then a fork of it and starts in milliseconds. The server inherits no
database connection, thread or torch state of the command; :mod:`harness.study.launch` hands each
worker the command's environment, ``sys.path`` and folder of the moment it starts it.

This module imports only the standard library and :mod:`harness.run.memory`, so calling it
costs nothing before the CLI's own imports.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Iterator
from typing import Any

from harness.run.memory import tuned_environ

__all__ = ["PRELOAD", "START_METHOD_ENV", "StartMethodError", "prestart_for",
           "prestart_workers", "start_method", "worker_env"]

#: ``forkserver`` (default on Linux) or ``spawn``: how local worker processes start.
START_METHOD_ENV = "BSNN_BENCH_START_METHOD"
#: What the forkserver imports before it forks the first worker: all a worker needs to train,
#: after the hook that makes the server's own exit immediate (:mod:`harness.study.forkserver_exit`).
PRELOAD = ("harness.study.forkserver_exit", "harness.study.worker", "harness.run.train",
           "harness.data.pipeline", "harness.run.build")


class StartMethodError(ValueError):
    """:data:`START_METHOD_ENV` names no start method (the CLI reports it as a user error)."""


def start_method() -> str:
    """How local workers start: ``forkserver`` on Linux unless :data:`START_METHOD_ENV` says
    ``spawn`` (elsewhere always ``spawn``: forking a process that loaded macOS frameworks is
    unsafe)."""
    choice = os.environ.get(START_METHOD_ENV, "").strip().lower()
    if choice not in ("", "forkserver", "spawn"):
        raise StartMethodError(f"{START_METHOD_ENV}={choice!r}: expected forkserver or spawn")
    if choice == "spawn" or not sys.platform.startswith("linux"):
        return "spawn"
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


@contextlib.contextmanager
def worker_env(threads: int) -> Iterator[None]:
    """Environment the workers (and their forkserver) start with: thread counts, allocator."""
    saved = dict(os.environ)
    try:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(threads))
        tuned = tuned_environ()
        if tuned is not None:
            os.environ.update(tuned)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def prestart_workers(threads: int = 1) -> None:
    """Start the forkserver the local workers will be forked from, with the workers' modules
    preloaded, and return at once (it imports them in the background). A no-op where workers
    are spawned, or when it runs already (one per process: tests reuse it)."""
    try:
        if start_method() != "forkserver":
            return
    except StartMethodError:
        return  # the launcher reports it
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(list(PRELOAD))
    # The server's own environment: the allocator setting is read only when a process starts.
    with worker_env(threads):
        forkserver.ensure_running()


def prestart_for(args: Any) -> None:
    """:func:`prestart_workers` when the parsed ``bsnn-bench run`` arguments ``args`` start more
    than one local CPU worker, without ``--dry-run`` (``--workers-per-gpu`` workers are
    spawned: :class:`harness.study.launch.LocalLauncher`)."""
    if args.launcher != "local" or args.dry_run or args.workers_per_gpu or args.workers <= 1:
        return
    prestart_workers(max(1, (os.cpu_count() or 1) // args.workers))

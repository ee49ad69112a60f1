"""Launchers: where a study's workers run. The coordinator hands one the worker options and a
``step`` to call while the workers work; the database is the only channel to the workers.

* ``local`` (default): ``--workers`` processes on this machine (a single worker runs in this
  process, no second interpreter), or with ``--workers-per-gpu K`` K workers per visible GPU,
  each pinned to its GPU with a 1/K share of its memory. On Linux they are forked from a
  multiprocessing *forkserver* that ``bsnn-bench run`` starts first thing
  (:mod:`harness.study.prestart`): it imports torch and Lightning once, on another core, while the
  command parses the study and prepares the database, so a worker starts in milliseconds
  instead of paying those imports (about 5 s of CPU each) after the coordinator is ready. The
  server is a fresh interpreter, not a fork of the coordinator: no database connection, thread
  or torch state is inherited. Each worker gets the environment, ``sys.path`` and working folder
  the coordinator has when it starts it, as a spawned one would (:func:`_worker_entry`).
  ``BSNN_BENCH_START_METHOD=spawn`` starts each worker as a fresh interpreter instead;
* ``none``: start nothing; the command prints the ``bsnn-bench worker`` line to run elsewhere;
* ``slurm``: a job array of worker tasks (:mod:`harness.study.slurm`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import shlex
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from harness.errors import EXIT_INTERNAL, UserError
from harness.study.options import INLINE_ENV, WorkerOptions
from harness.study.prestart import (
    START_METHOD_ENV,
    StartMethodError,
    prestart_workers,
    start_method,
    worker_env,
)

__all__ = ["LAUNCHERS", "START_METHOD_ENV", "Launcher", "LocalLauncher", "NoLauncher",
           "gpu_assignments", "prestart_workers", "start_method", "visible_gpus",
           "worker_command"]

LAUNCHERS = ("local", "none", "slurm")


class Launcher(Protocol):
    """Start workers for ``opts`` and call ``step()`` about twice a second until they end."""

    #: Whether the coordinator follows the study to its end (False: enqueue and return).
    follows: bool

    def run(self, opts: WorkerOptions, step: Callable[[], None]) -> list[int | None]:
        """Run the workers; return their exit codes (None: unknown, still queued)."""
        ...

    def signal(self, signum: int) -> None:
        """Pass SIGINT / SIGTERM on to the workers (they stop as documented in the worker)."""
        ...


def worker_command(opts: WorkerOptions, *, max_runs: int | None = None) -> str:
    """The ``bsnn-bench worker`` command line that works on this study from anywhere."""
    args = ["bsnn-bench", "worker", "--db", opts.url, "--study", opts.study_name,
            "--checkpoints", opts.checkpoints]
    if max_runs is not None:
        args += ["--max-runs", str(max_runs)]
    return shlex.join(args)


def visible_gpus() -> list[str]:
    """GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else all of torch's."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def gpu_assignments(gpus: Sequence[str], per_gpu: int) -> list[tuple[str, float]]:
    """``(device, memory fraction)`` of each of ``per_gpu * len(gpus)`` workers: GPU by GPU,
    ``per_gpu`` workers on each, every one with ``1 / per_gpu`` of its GPU's memory."""
    if per_gpu < 1:
        raise UserError(f"--workers-per-gpu must be at least 1, got {per_gpu}")
    if not gpus:
        raise UserError("--workers-per-gpu: no GPU is visible (CUDA_VISIBLE_DEVICES, "
                        "torch.cuda.device_count())")
    return [(f"cuda:{g}", 1.0 / per_gpu) for g in gpus for _ in range(per_gpu)]


def _worker_entry(opts: WorkerOptions, env: dict[str, str] | None = None,
                  path: list[str] | None = None, cwd: str | None = None) -> None:
    if env is not None:
        # Forked from the forkserver, which started earlier: take the coordinator's environment,
        # import path and folder of now, as a spawned worker would.
        os.environ.clear()
        os.environ.update(env)
        sys.path[:] = path or sys.path
        if cwd is not None:
            os.chdir(cwd)
    from harness.study.worker import worker_main

    try:
        code = worker_main(opts)
    except Exception as exc:  # noqa: BLE001 - one line, as the command itself says it
        from harness.errors import print_error, traceback_note
        from harness.store.failures import describe_failure

        what = describe_failure(exc, opts.url) or (
            f"internal error: {type(exc).__name__}: {exc} ({traceback_note(exc)})")
        print_error(f"worker {os.getpid()}: {what}")
        code = EXIT_INTERNAL
    # Everything is committed by now; skipping interpreter teardown (torch, Lightning) saves
    # seconds per worker at the end of every study.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@dataclasses.dataclass
class LocalLauncher:
    """Worker processes on this machine (or one worker in this process)."""

    workers: int
    #: Run a single worker in this process (no search: its Optuna steps need this thread).
    inline_ok: bool = True
    #: Per worker ``(device, memory fraction)``; None: the run configuration's device.
    gpus: list[tuple[str, float]] | None = None
    follows: bool = True

    def __post_init__(self) -> None:
        self.procs: list[Any] = []

    def run(self, opts: WorkerOptions, step: Callable[[], None]) -> list[int | None]:
        if self.workers == 1 and self.inline_ok and not self.gpus \
                and os.environ.get(INLINE_ENV, "1") != "0":
            return [self._inline(opts, step)]
        try:
            # GPU workers are spawned: each pins its GPU through CUDA_VISIBLE_DEVICES before
            # CUDA starts, which a server that preloaded torch and Lightning (and may have
            # counted the GPUs, cached) would make untrustworthy; not checked on a GPU yet.
            method = "spawn" if self.gpus else start_method()
        except StartMethodError as exc:
            raise UserError(str(exc)) from None
        if method == "forkserver":
            prestart_workers(opts.threads or 1)  # returns at once when it runs already
        ctx = multiprocessing.get_context(method)
        with worker_env(opts.threads or 1):
            for i in range(self.workers):
                wopts = opts
                if self.gpus:
                    device, fraction = self.gpus[i % len(self.gpus)]
                    wopts = dataclasses.replace(opts, device=device,
                                                gpu_memory_fraction=fraction)
                extra = ((dict(os.environ), list(sys.path), os.getcwd())
                         if method == "forkserver" else ())
                p = ctx.Process(target=_worker_entry, args=(wopts, *extra), daemon=False)
                p.start()
                self.procs.append(p)
        try:
            while any(p.is_alive() for p in self.procs):
                for p in self.procs:
                    p.join(timeout=0.5 / len(self.procs))
                step()
        finally:
            for p in self.procs:
                if p.is_alive():
                    p.join(timeout=60)
                if p.is_alive():
                    p.kill()
        return [p.exitcode for p in self.procs]

    def _inline(self, opts: WorkerOptions, step: Callable[[], None]) -> int:
        """One worker in this process: no second interpreter to start and no torch to
        re-import. ``step`` runs in a thread meanwhile; the signals are the worker's own."""
        from harness.study.worker import worker_main

        done = threading.Event()

        def monitor() -> None:
            while not done.wait(0.5):
                with contextlib.suppress(Exception):
                    step()

        thread = threading.Thread(target=monitor, daemon=True, name="bsnn-progress")
        thread.start()
        try:
            return worker_main(opts)
        finally:
            done.set()
            thread.join()

    def signal(self, signum: int) -> None:
        # The terminal sends SIGINT to the workers too; this covers a `kill -INT` of ours and
        # SIGTERM, which only we receive when a scheduler stops the coordinator.
        for p in self.procs:
            if p.is_alive() and p.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signum)


@dataclasses.dataclass
class NoLauncher:
    """Start nothing: print the command that starts a worker anywhere, and return."""

    max_runs: int | None = None
    follows: bool = False

    def run(self, opts: WorkerOptions, step: Callable[[], None]) -> list[int | None]:
        print("enqueued; start workers anywhere that reaches the database with:\n  "
              + worker_command(opts, max_runs=self.max_runs))
        return []

    def signal(self, signum: int) -> None:
        return None


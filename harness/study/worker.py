"""A study worker: claim a run, train it under a heartbeat, record the result, repeat.

Workers talk only to the database: the ``--max-runs`` budget and a search's keep-alive are rows
there too, so a worker the coordinator forked, one started by hand (``bsnn-bench worker``), a
Slurm task and a worker on another machine all behave the same.

Signals:

* SIGINT (Ctrl-C): the run in flight stops at once and is recorded ``interrupted`` (the next
  command re-runs it); no new run starts; further SIGINTs are ignored while that is written.
* SIGTERM (Slurm's preemption or time-limit signal, ``kill``; SIGUSR2, submitit's time-limit
  warning, the same): the run in flight trains to the
  end of its current epoch, saves a checkpoint, is recorded ``interrupted`` and handed back; the
  worker exits 143. Whoever claims the run next resumes it from that checkpoint.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from harness.store import claims, control, identity
from harness.store import engine as store_engine
from harness.study.attempt import Attempt, run_attempt
from harness.study.options import EXIT_INTERRUPTED, EXIT_OK, EXIT_SIGTERM, WorkerOptions
from harness.study.provenance import provenance_versions

__all__ = ["RUN_FN_ENV", "WorkerOptions", "provenance_versions", "worker_main"]

#: Test hook: ``module:function`` used instead of ``harness.run.train.train_run``. Read only
#: when set, so a user's study never depends on it; it lets the multi-process tests exercise the
#: real claim / heartbeat / record path with a run function that takes milliseconds.
RUN_FN_ENV = "BSNN_BENCH_RUN_FN"


def _resolve_run_fn() -> Callable[..., Any]:
    target = os.environ.get(RUN_FN_ENV)
    if target:
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)
    from harness.run.train import train_run

    return train_run


#: Signals that checkpoint the run in flight: SIGTERM, and SIGUSR2, which submitit asks Slurm to
#: send ahead of a task's time limit (``--signal=USR2@90``).
PREEMPT_SIGNALS = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGUSR2", None)) if s)


class Signals:
    """SIGINT raises KeyboardInterrupt while a run trains (otherwise it sets a flag); SIGTERM
    sets ``preempt``, which the run's checkpoint callback obeys at the end of the epoch."""

    def __init__(self) -> None:
        self.requested: int | None = None
        self.in_run = False
        self.preempt = threading.Event()

    def __call__(self, signum: int, _frame: Any) -> None:
        if self.requested is not None:
            return
        self.requested = signum
        if signum in PREEMPT_SIGNALS:
            self.preempt.set()
        elif self.in_run:
            raise KeyboardInterrupt

    def install(self) -> Callable[[], None]:
        """Take SIGINT and SIGTERM (main thread only); returns what restores the old ones."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        old = {s: signal.signal(s, self) for s in (signal.SIGINT, *PREEMPT_SIGNALS)}

        def restore() -> None:
            for s, h in old.items():
                signal.signal(s, h)

        return restore

    def exit_code(self) -> int:
        return EXIT_SIGTERM if self.requested in PREEMPT_SIGNALS else EXIT_INTERRUPTED


def _prepare_device(opts: WorkerOptions) -> None:
    """Pin this process to its GPU before CUDA starts; cap its share of the GPU's memory."""
    if opts.device and opts.device.startswith("cuda:"):
        os.environ["CUDA_VISIBLE_DEVICES"] = opts.device.split(":", 1)[1]
    if opts.threads:
        import torch

        torch.set_num_threads(opts.threads)
    if opts.gpu_memory_fraction is not None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_per_process_memory_fraction(opts.gpu_memory_fraction, 0)


def worker_main(opts: WorkerOptions) -> int:
    """Work on a study until nothing is left, the budget is spent, or a signal; return the exit
    code (0, 130 after SIGINT, 143 after SIGTERM).

    While the study's keep-alive is in the future (a search still asking for trials), an empty
    queue means "wait", not "done".
    """
    _prepare_device(opts)
    signals = Signals()
    restore = signals.install()
    engine = store_engine.make_engine(opts.url)
    worker = identity.worker_id()
    attempt = Attempt(opts=opts, engine=engine, worker=worker, host=socket.gethostname(),
                      versions=provenance_versions(), run_fn=_resolve_run_fn(),
                      signals=signals, lightning=not os.environ.get(RUN_FN_ENV))
    try:
        while signals.requested is None:
            if opts.budget_id is not None and not control.take_budget(engine, opts.budget_id):
                return EXIT_OK
            claims.mark_dead_local_workers(engine, opts.study_id)
            claim = claims.claim_next(engine, opts.study_id, worker, lease_s=opts.lease_s)
            if claim is None:
                if opts.budget_id is not None:
                    control.refund_budget(engine, opts.budget_id)
                waiting = control.keep_alive(engine, opts.study_id)
                if not waiting and not _others_running(engine, opts.study_id):
                    return EXIT_OK
                # Runs held by live workers may still fail over to us: wait and look again.
                time.sleep(0.3 if waiting else min(opts.heartbeat_s, 0.5))
                continue
            run_attempt(attempt, claim)
        return signals.exit_code()
    finally:
        restore()
        engine.dispose()


def _others_running(engine: Any, study_id: int) -> bool:
    return claims.count_by_status(engine, study_id).get("running", 0) > 0

"""A study worker: claim a run, train it under a heartbeat, record the result, repeat.

Workers run in their own processes (``spawn``), one per core share, all talking only to the
database: there is no other channel between them, so workers of other machines behave the same.

Ctrl-C: the first SIGINT stops the run in flight (it is recorded ``interrupted`` and will be
re-run by the next command) and no new run starts; further SIGINTs are ignored while the worker
writes that down.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import platform
import signal
import socket
import subprocess
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.deploy.weights import keep_best
from harness.errors import UserError
from harness.store import claims
from harness.store import engine as store_engine
from tricks._registry import TrickError

__all__ = ["RUN_FN_ENV", "WorkerOptions", "provenance_versions", "worker_main"]

#: Test hook: ``module:function`` used instead of ``harness.run.train.train_run``. Read only
#: when set, so a user's study never depends on it; it lets the multi-process tests exercise the
#: real claim / heartbeat / record path with a run function that takes milliseconds.
RUN_FN_ENV = "BSNN_BENCH_RUN_FN"

EXIT_OK = 0
EXIT_INTERRUPTED = 130


@dataclasses.dataclass(frozen=True)
class WorkerOptions:
    url: str
    study_id: int
    study_name: str
    lease_s: float = claims.DEFAULT_LEASE_S
    heartbeat_s: float = claims.DEFAULT_HEARTBEAT_S
    #: torch threads in this worker (cores // workers); None: leave torch's default.
    threads: int | None = None
    #: "median" -> report per-epoch validation accuracy to the Optuna trial and stop early.
    pruning: str = "none"
    #: Only a run whose seed is this one reports to Optuna for pruning (one curve per trial).
    pruning_seed: int | None = None


def provenance_versions() -> dict[str, Any]:
    """Versions of the software that produced a run, and the git commit when available."""
    from importlib import metadata

    out: dict[str, Any] = {"python": platform.python_version()}
    for dist in ("torch", "lightning", "snntorch", "tonic", "optuna", "sqlalchemy", "numpy",
                 "bsnn-bench"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=5, check=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True)
        out["git_commit"] = commit.stdout.strip()
        out["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = None
    return out


def _resolve_run_fn() -> Callable[..., Any]:
    target = os.environ.get(RUN_FN_ENV)
    if target:
        module, _, attr = target.partition(":")
        return getattr(importlib.import_module(module), attr)
    from harness.run.train import train_run

    return train_run


class _Heartbeat(threading.Thread):
    def __init__(self, engine: Any, claim: claims.Claim, worker: str, every_s: float) -> None:
        super().__init__(daemon=True, name="bsnn-heartbeat")
        self.engine, self.claim, self.worker, self.every_s = engine, claim, worker, every_s
        self.done = threading.Event()
        self.lost = False

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            try:
                if not claims.heartbeat(self.engine, self.claim, self.worker):
                    self.lost = True
                    return
            except Exception:  # noqa: BLE001 - a transient DB error must not kill the run
                continue


class _Interrupt:
    """SIGINT turns into KeyboardInterrupt only while a run trains; otherwise it sets a flag."""

    def __init__(self) -> None:
        self.requested = False
        self.in_run = False

    def __call__(self, _signum: int, _frame: Any) -> None:
        if self.requested:
            return
        self.requested = True
        if self.in_run:
            raise KeyboardInterrupt


def _pruning_callbacks(opts: WorkerOptions, claim: claims.Claim, cfg: Any) -> list[Any]:
    if opts.pruning == "none" or claim.trial_number is None:
        return []
    if opts.pruning_seed is not None and cfg.train.seed != opts.pruning_seed:
        return []
    from harness.study.trials import make_pruning_callback

    return [make_pruning_callback(opts.url, opts.study_name, claim.trial_number, opts.pruning)]


def worker_main(opts: WorkerOptions, budget: Any = None, keep_alive: Any = None) -> int:
    """Work on a study until nothing is left, the budget is spent, or SIGINT; return exit code.

    ``budget`` is a shared counter of runs this command may still start (``--max-runs``);
    while the event ``keep_alive`` is set (a search still asking for trials), an empty queue
    means "wait", not "done".
    """
    from harness.config import RunConfig

    if opts.threads:
        import torch

        torch.set_num_threads(opts.threads)
    interrupt = _Interrupt()
    previous = signal.signal(signal.SIGINT, interrupt)
    engine = store_engine.make_engine(opts.url)
    worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    host = socket.gethostname()
    versions = provenance_versions()
    run_fn = _resolve_run_fn()
    try:
        while not interrupt.requested:
            if budget is not None:
                with budget.get_lock():
                    if budget.value <= 0:
                        return EXIT_OK
                    budget.value -= 1
            claims.mark_dead_local_workers(engine, opts.study_id)
            claim = claims.claim_next(engine, opts.study_id, worker, lease_s=opts.lease_s)
            if claim is None:
                if budget is not None:
                    with budget.get_lock():
                        budget.value += 1
                waiting = keep_alive is not None and keep_alive.is_set()
                if not waiting and not _others_running(engine, opts.study_id):
                    return EXIT_OK
                # Runs held by live workers may still fail over to us: wait and look again.
                time.sleep(0.3 if waiting else min(opts.heartbeat_s, 0.5))
                continue
            _run_one(opts, engine, claim, worker, host, versions, run_fn, interrupt, RunConfig)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, previous)
        engine.dispose()


def _others_running(engine: Any, study_id: int) -> bool:
    return claims.count_by_status(engine, study_id).get("running", 0) > 0


def _run_one(opts: WorkerOptions, engine: Any, claim: claims.Claim, worker: str, host: str,
             versions: dict[str, Any], run_fn: Callable[..., Any], interrupt: _Interrupt,
             run_config: Any) -> None:
    beat = _Heartbeat(engine, claim, worker, opts.heartbeat_s)
    beat.start()
    started = time.perf_counter()
    outcome: dict[str, Any]
    try:
        cfg = run_config.from_dict(claim.config)
        callbacks = _pruning_callbacks(opts, claim, cfg)
        interrupt.in_run = True
        try:
            if interrupt.requested:
                # SIGINT arrived while this run was being claimed: hand it back untouched.
                raise KeyboardInterrupt
            result = run_fn(cfg, progress=False, callbacks=callbacks)
        finally:
            interrupt.in_run = False
        outcome = dict(status=getattr(result, "status", "failed"),
                       metrics=dict(getattr(result, "metrics", {}) or {}),
                       curves=dict(getattr(result, "curves", {}) or {}),
                       error=getattr(result, "error", None),
                       wall_time_s=getattr(result, "wall_time_s", None),
                       device=getattr(result, "device", None))
        if any(getattr(cb, "pruned", False) for cb in callbacks):
            outcome["status"] = "pruned"
    except BaseException as exc:  # noqa: BLE001 - every outcome of a run is recorded
        if interrupt.requested:
            outcome = dict(status="interrupted", metrics={}, curves={},
                           error="interrupted (SIGINT); re-run the command to resume",
                           wall_time_s=None, device=None)
        elif isinstance(exc, UserError | TrickError):
            # The user's setting, not a bug: the message says it all, no traceback.
            outcome = dict(status="failed", metrics={}, curves={},
                           error=f"{type(exc).__name__}: {exc}", wall_time_s=None, device=None)
        elif isinstance(exc, Exception):
            tb = traceback.format_exception(exc)
            outcome = dict(status="failed", metrics={}, curves={},
                           error=f"{type(exc).__name__}: {exc}\n{''.join(tb[-6:])}",
                           wall_time_s=None, device=None)
        else:
            raise
    finally:
        beat.done.set()
    if outcome["wall_time_s"] is None:
        outcome["wall_time_s"] = time.perf_counter() - started
    if outcome["status"] not in ("complete", "failed", "interrupted", "pruned"):
        outcome["error"] = f"run function returned unknown status {outcome['status']!r}"
        outcome["status"] = "failed"
    claims.record_result(engine, claim, worker, host=host, versions=versions, **outcome)
    keep_best(engine, opts.url, opts.study_name, claim, worker,
              result if outcome["status"] == "complete" else None)

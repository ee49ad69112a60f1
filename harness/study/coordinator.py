"""``bsnn-bench run STUDY.yaml``: run every run of a study exactly once, resumably, on N workers.

The command (the *coordinator*) validates the spec, opens the database and creates its schema
(ours and Optuna's) before any worker exists, registers the study, enqueues its runs as
``pending`` rows, then starts ``--workers`` processes (``spawn``) that claim runs from the
database one at a time (see :mod:`harness.store.claims` for the exactly-once protocol), and shows
progress until they are done. More machines join by running the same command on the same
PostgreSQL URL: they enqueue nothing new and claim what is left.

Resume rules (a re-run of the same command):

* ``complete`` runs are never re-run;
* ``pending``, ``interrupted`` (Ctrl-C) and stale ``running`` runs (their worker stopped
  renewing its lease, e.g. after SIGKILL) run again;
* ``failed`` runs stay failed (a failure is a result: a diverging configuration would diverge
  again) unless ``--retry-failed`` is given;
* a spec changed under the same study name is refused, unless the change only adds levels or
  seeds: then only the new runs run.

Optuna drives the study: its RDB storage lives in the same database, under the same study name.
Grid designs record every finished run as an Optuna trial (value: the spec's objective, params:
the level labels); the ``search`` design asks Optuna's TPE sampler for combinations, enqueues
their runs (every seed), and tells it the mean objective; median pruning stops a trial's first
seed early through a Lightning callback reporting per-epoch validation accuracy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from harness.errors import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_RUNS_FAILED,
    EXIT_SIGINT,
    StorageError,
    UserError,
)
from harness.run.memory import ALLOCATOR_ENV, tuned_environ
from harness.store import claims
from harness.store import engine as store_engine
from harness.store.schema import Run, Study
from harness.study.grid_trials import _record_grid_trials, add_grid_trial, name_objective
from harness.study.plan import _check_datasets, check_plan, check_spec_change, describe_plan
from harness.study.spec import PlannedRun, StudySpec, load_spec
from harness.study.trials import _optuna_study, _pruner, _Search, make_pruning_callback

__all__ = [
    "ALLOCATOR_ENV",
    "LEASE_ENV",
    "StudyOutcome",
    "add_grid_trial",
    "make_pruning_callback",
    "run_study",
    "run_study_command",
]

#: Lease and heartbeat (seconds) of a claimed run: ``"LEASE"`` or ``"LEASE:HEARTBEAT"``.
#: A run whose worker stops renewing for LEASE seconds is re-run elsewhere. Default 120:30.
LEASE_ENV = "BSNN_BENCH_LEASE"
#: Set to 0 to run a single worker in its own process too (by default it runs in this one).
INLINE_ENV = "BSNN_BENCH_INLINE"


@dataclasses.dataclass
class StudyOutcome:
    counts: dict[str, int]
    failed: list[str]
    interrupted: bool
    wall_time_s: float
    new_runs: int
    #: Exit codes of worker processes that ended otherwise than 0 or 130.
    crashed: tuple[int, ...] = ()

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_SIGINT
        if EXIT_INTERNAL in self.crashed:  # a worker met a storage failure or a bug
            return EXIT_INTERNAL
        return EXIT_RUNS_FAILED if self.failed else EXIT_OK


def _lease() -> tuple[float, float]:
    raw = os.environ.get(LEASE_ENV, "")
    if not raw:
        return claims.DEFAULT_LEASE_S, claims.DEFAULT_HEARTBEAT_S
    try:
        parts = [float(p) for p in raw.split(":")]
    except ValueError:
        raise UserError(f"{LEASE_ENV}={raw!r}: expected LEASE or LEASE:HEARTBEAT seconds") from None
    lease = parts[0]
    beat = parts[1] if len(parts) > 1 else lease / 4
    if not (lease > 0 and 0 < beat < lease):
        raise UserError(f"{LEASE_ENV}={raw!r}: need 0 < heartbeat < lease")
    return lease, beat


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# -- Optuna ----------------------------------------------------------------------------------


# -- registering the study -------------------------------------------------------------------

def _register(engine: Any, spec: StudySpec, url: str, planned: list[PlannedRun]) -> int:
    """Create or check the study row; refuse a changed spec unless it only adds runs."""
    for _ in range(3):
        try:
            return _register_once(engine, spec, url, planned)
        except IntegrityError:
            continue  # another machine registered the same study just now: check against it
    raise StorageError(f"cannot register study '{spec.name}' in {url}")


def _register_once(engine: Any, spec: StudySpec, url: str, planned: list[PlannedRun]) -> int:
    with Session(engine) as s, s.begin():
        row = s.scalars(select(Study).where(Study.name == spec.name)).first()
        if row is None:
            row = Study(name=spec.name, design=spec.design, spec=spec.raw,
                        spec_hash=spec.config_hash())
            s.add(row)
            s.flush()
            return int(row.id)
        check_spec_change(s, row, spec, url, {p.key for p in planned})
        row.spec = spec.raw
        return int(row.id)


# -- the command -----------------------------------------------------------------------------

def run_study_command(spec_path: str, *, db: str | None = None, workers: int = 1,
                      max_runs: int | None = None, dry_run: bool = False,
                      progress: bool = True, retry_failed: bool = False) -> int:
    """The ``bsnn-bench run`` command; returns its exit code (0, 1 if runs failed, 130)."""
    spec = load_spec(spec_path)
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if max_runs is not None and max_runs < 1:
        raise UserError(f"--max-runs must be at least 1, got {max_runs}")
    url = db or store_engine.DEFAULT_DB
    if dry_run:
        store_engine.check_usable(url)  # the refusals `run` would give, without writing
        state = check_plan(spec, url, retry_failed=retry_failed)
        print(describe_plan(spec, url, workers, state))
        return 0
    _check_datasets(spec)

    passes: list[StudySpec] = []

    def run_once(batch: StudySpec) -> StudyOutcome:
        # Failed runs are retried by the first pass only: a later batch must not re-run them.
        passes.append(batch)
        return run_study(batch, url=url, workers=workers, max_runs=max_runs, progress=progress,
                         retry_failed=retry_failed and len(passes) == 1)

    if spec.seed_rule is not None:
        from harness.study.precision import run_by_precision

        return run_by_precision(spec, url, run_once, one_pass=max_runs is not None,
                                progress=progress).exit_code
    return run_once(spec).exit_code


@contextlib.contextmanager
def _worker_env(threads: int) -> Iterator[None]:
    """Environment the spawned workers start with (thread counts, allocator tuning)."""
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


def _worker_entry(opts: Any, budget: Any, keep_alive: Any) -> None:
    from harness.study.worker import worker_main

    try:
        code = worker_main(opts, budget, keep_alive)
    except Exception as exc:  # noqa: BLE001 - one line, as the command itself says it
        from harness.cli import traceback_note
        from harness.store.failures import describe_failure

        what = describe_failure(exc, opts.url) or (
            f"internal error: {type(exc).__name__}: {exc} ({traceback_note(exc)})")
        print(f"bsnn-bench: error: worker {os.getpid()}: {what}", file=sys.stderr)
        code = EXIT_INTERNAL
    # Everything is committed by now; skipping interpreter teardown (torch, Lightning) saves
    # seconds per worker at the end of every study.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_study(spec: StudySpec, *, url: str, workers: int = 1, max_runs: int | None = None,
              progress: bool = True, retry_failed: bool = False) -> StudyOutcome:
    """Register, enqueue and run a study; see the module docstring for the rules."""
    from harness.study.progress import Progress
    from harness.study.worker import WorkerOptions

    t0 = time.perf_counter()
    engine = store_engine.open_database(url)
    planned = spec.plan() if spec.design != "search" else []
    study_id = _register(engine, spec, url, planned)
    new_runs = claims.insert_runs(engine, study_id, planned)
    sampler = pruner = None
    if spec.design == "search":
        import optuna

        sampler = optuna.samplers.TPESampler(seed=spec.seeds[0], constant_liar=True)
        pruner = _pruner(spec.pruning)
    ostudy = _optuna_study(url, spec.name, direction=spec.direction, sampler=sampler,
                           pruner=pruner)
    name_objective(ostudy, spec)
    if retry_failed:
        with Session(engine) as s, s.begin():
            # A grid run's next attempt gets its own Optuna trial; the failed one stays.
            s.execute(update(Run).where(Run.study_id == study_id, Run.status == "failed")
                      .values(status="pending",
                              trial_number=None if spec.design != "search" else Run.trial_number)
                      .execution_options(synchronize_session=False))

    search = _Search(spec, engine, study_id, ostudy, workers) if spec.design == "search" else None
    n_procs = _workers_needed(engine, study_id, workers, max_runs, search)
    lease_s, beat_s = _lease()
    threads = max(1, _cores() // max(1, n_procs))
    opts = WorkerOptions(url=url, study_id=study_id, study_name=spec.name, lease_s=lease_s,
                         heartbeat_s=beat_s, threads=threads, pruning=spec.pruning,
                         pruning_seed=spec.seeds[0])
    ctx = multiprocessing.get_context("spawn")
    budget = ctx.Value("i", max_runs) if max_runs is not None else None
    keep_alive = ctx.Event()
    if search is not None:
        keep_alive.set()
        search.step()
    total = spec.run_count()
    display = Progress(engine, study_id, total=total, workers=max(1, n_procs), enabled=progress,
                       name=spec.name)
    display.start_message(new_runs)

    stop = {"sigint": False}

    procs: list[Any] = []
    codes: list[int | None] = []
    if n_procs == 1 and search is None and os.environ.get(INLINE_ENV, "1") != "0":
        codes.append(_run_inline(opts, budget, display, engine, spec, study_id, url))
    else:
        _run_processes(ctx, n_procs, threads, opts, budget, keep_alive, procs, stop, display,
                       engine, spec, study_id, url, search)
        codes = [p.exitcode for p in procs]
    interrupted = stop["sigint"] or any(c == 130 for c in codes)
    crashed = [c for c in codes if c not in (0, 130)]
    counts = claims.count_by_status(engine, study_id)
    with Session(engine) as s:
        failed = list(s.scalars(select(Run.run_key).where(
            Run.study_id == study_id, Run.status == "failed").order_by(Run.position)))
    wall = time.perf_counter() - t0
    display.summary(counts, failed, wall, interrupted=interrupted, crashed=crashed)
    engine.dispose()
    if crashed and not failed and not interrupted:
        failed = [f"<worker exited with code {c}>" for c in crashed]
    return StudyOutcome(counts=counts, failed=failed, interrupted=interrupted,
                        wall_time_s=wall, new_runs=new_runs,
                        crashed=tuple(c for c in crashed if c is not None))


class _Bookkeeping:
    """While workers run: the progress display and, for a grid study, its Optuna trial records
    (at most every 2 s). A failing poll or record never stops the study; the final one raises."""

    def __init__(self, display: Any, engine: Any, spec: StudySpec, study_id: int, url: str,
                 *, record: bool) -> None:
        self.display, self.record = display, record
        self._record_args = (engine, spec, study_id, url)
        self._last = 0.0
        self._warned = ""

    def tick(self) -> None:
        with contextlib.suppress(Exception):
            self.display.poll()
        if self.record and time.perf_counter() - self._last > 2.0:
            self._last = time.perf_counter()
            try:
                _record_grid_trials(*self._record_args)
            except Exception as exc:  # noqa: BLE001 - the study goes on; final() raises
                # Said once per distinct error, never hidden: the next tick tries again.
                text = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                if text != self._warned:
                    self._warned = text
                    print(f"bsnn-bench: warning: recording Optuna trials failed (will "
                          f"retry): {text}", file=sys.stderr)

    def final(self) -> None:
        if self.record:
            _record_grid_trials(*self._record_args)
        self.display.poll(force=True)


def _run_inline(opts: Any, budget: Any, display: Any, engine: Any, spec: StudySpec,
                study_id: int, url: str) -> int:
    """One worker in this process: no second interpreter to start and no torch to re-import.

    Progress and Optuna bookkeeping run in a thread meanwhile; SIGINT is the worker's own.
    """
    import threading

    from harness.study.worker import worker_main

    done = threading.Event()
    books = _Bookkeeping(display, engine, spec, study_id, url, record=True)

    def monitor() -> None:
        while not done.wait(0.5):
            books.tick()

    thread = threading.Thread(target=monitor, daemon=True, name="bsnn-progress")
    thread.start()
    try:
        return worker_main(opts, budget, None)
    finally:
        done.set()
        thread.join()
        books.final()


def _run_processes(ctx: Any, n_procs: int, threads: int, opts: Any, budget: Any,
                   keep_alive: Any, procs: list[Any], stop: dict[str, bool], display: Any,
                   engine: Any, spec: StudySpec, study_id: int, url: str,
                   search: _Search | None) -> None:
    """N worker processes; this process shows progress and drives Optuna until they end."""

    def on_sigint(_signum: int, _frame: Any) -> None:
        # The terminal sends SIGINT to the workers too; forward it for a `kill -INT` of ours.
        stop["sigint"] = True
        for p in procs:
            if p.is_alive() and p.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGINT)

    books = _Bookkeeping(display, engine, spec, study_id, url, record=search is None)
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with _worker_env(threads):
            for _ in range(n_procs):
                p = ctx.Process(target=_worker_entry, args=(opts, budget, keep_alive),
                                daemon=False)
                p.start()
                procs.append(p)
        while any(p.is_alive() for p in procs):
            for p in procs:
                p.join(timeout=0.5 / len(procs))
            books.tick()
            if search is not None and (stop["sigint"] or search.step()):
                keep_alive.clear()
        if search is not None:
            search.step()
        books.final()
    finally:
        signal.signal(signal.SIGINT, previous)
        for p in procs:
            if p.is_alive():
                p.join(timeout=30)
            if p.is_alive():
                p.kill()


def _workers_needed(engine: Any, study_id: int, workers: int, max_runs: int | None,
                    search: Any) -> int:
    """Start no more workers than there are runs to do (each start costs a torch import)."""
    if search is not None:
        return workers if max_runs is None else min(workers, max_runs)
    counts = claims.count_by_status(engine, study_id)
    todo = sum(counts.get(k, 0) for k in ("pending", "interrupted", "running"))
    if max_runs is not None:
        todo = min(todo, max_runs)
    return min(workers, todo)



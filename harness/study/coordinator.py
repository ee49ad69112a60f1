"""``bsnn-bench run STUDY.yaml``: run every run of a study exactly once, resumably, anywhere.

The command (the *coordinator*) validates the spec, opens the database and creates its schema
(ours and Optuna's), registers the study (:mod:`harness.study.register`), enqueues its runs as
``pending`` rows, then hands the workers to a launcher (:mod:`harness.study.launch`: processes
on this machine, nothing, or a Slurm job array) and follows the study from the database until
the workers end. Workers claim runs one at a time (see :mod:`harness.store.claims` for the
exactly-once protocol); more machines join by running ``bsnn-bench worker`` (or the same
command) on the same PostgreSQL URL.

Resume rules (a re-run of the same command):

* ``complete`` runs are never re-run;
* ``pending``, ``interrupted`` (Ctrl-C, SIGTERM) and stale ``running`` runs (their worker stopped
  renewing its lease, e.g. after SIGKILL) run again, from their checkpoint when one was saved;
* ``failed`` runs stay failed (a failure is a result: a diverging configuration would diverge
  again) unless ``--retry-failed`` is given;
* a spec changed under the same study name is refused, unless the change only adds levels or
  seeds: then only the new runs run.

While the workers work the coordinator calls :meth:`StudyLoop.step` about twice a second:
progress, Optuna bookkeeping, the search design's ask/tell and its keep-alive, then any extra
``hooks`` (a rule that enqueues more runs belongs there).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from harness.errors import EXIT_INTERNAL, EXIT_OK, EXIT_RUNS_FAILED, UserError
from harness.store import claims, control
from harness.store import engine as store_engine
from harness.store.schema import Run
from harness.study.grid_trials import name_objective
from harness.study.launch import LAUNCHERS, Launcher, LocalLauncher, NoLauncher
from harness.study.loop import StudyLoop
from harness.study.options import (
    EXIT_INTERRUPTED,
    EXIT_SIGTERM,
    WorkerOptions,
    default_checkpoints,
    lease_from_env,
)
from harness.study.plan import _check_datasets, check_plan, describe_plan
from harness.study.register import register
from harness.study.spec import StudySpec, load_spec
from harness.study.trials import _optuna_study, _pruner, _Search

__all__ = ["StudyLoop", "StudyOutcome", "run_study", "run_study_command"]



@dataclasses.dataclass
class StudyOutcome:
    counts: dict[str, int]
    failed: list[str]
    interrupted: bool
    wall_time_s: float
    new_runs: int
    #: The signal that stopped the study (SIGINT or SIGTERM), if any.
    signal: int | None = None
    #: Exit codes of workers that ended otherwise than 0, 130 or 143.
    crashed: tuple[int, ...] = ()

    @property
    def exit_code(self) -> int:
        if self.signal == signal.SIGTERM:
            return EXIT_SIGTERM
        if self.interrupted:
            return EXIT_INTERRUPTED
        if EXIT_INTERNAL in self.crashed:  # a worker met a storage failure or a bug
            return EXIT_INTERNAL
        return EXIT_RUNS_FAILED if self.failed else EXIT_OK


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_study_command(spec_path: str, *, db: str | None = None, workers: int = 1,
                      max_runs: int | None = None, dry_run: bool = False,
                      progress: bool = True, retry_failed: bool = False,
                      launcher: str = "local", workers_per_gpu: int | None = None,
                      checkpoints: str | None = None, checkpoint_every_s: float | None = None,
                      keep_checkpoints: bool = False, slurm: dict[str, Any] | None = None
                      ) -> int:
    """The ``bsnn-bench run`` command; returns its exit code (0, 1 if runs failed, 130, 143)."""
    spec = load_spec(spec_path)
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if max_runs is not None and max_runs < 1:
        raise UserError(f"--max-runs must be at least 1, got {max_runs}")
    if launcher not in LAUNCHERS:
        raise UserError(f"--launcher {launcher!r}: expected one of {', '.join(LAUNCHERS)}")
    if checkpoint_every_s is not None and checkpoint_every_s <= 0:
        raise UserError(f"--checkpoint-every must be positive, got {checkpoint_every_s}")
    url = db or store_engine.DEFAULT_DB
    if launcher == "slurm" and url.startswith("sqlite"):
        raise UserError("--launcher slurm needs a PostgreSQL database (--db postgresql+psycopg:"
                        "//HOST/DB): Slurm tasks run on other nodes, and SQLite's WAL locking "
                        "is unsafe on the network file systems they would share")
    gpus = None
    if workers_per_gpu is not None:
        if launcher != "local":
            raise UserError("--workers-per-gpu is for the local launcher (Slurm: "
                            "--slurm-gpus-per-task)")
        from harness.study.launch import gpu_assignments, visible_gpus

        gpus = gpu_assignments(visible_gpus(), workers_per_gpu)
        workers = len(gpus)
    if spec.design == "search" and (launcher == "none" or (slurm or {}).get("detach")):
        raise UserError("design: search needs a coordinator that asks Optuna for trials "
                        "while workers run: use --launcher local or slurm, without --detach")
    if dry_run:
        store_engine.check_usable(url)  # the refusals `run` would give, without writing
        state = check_plan(spec, url, retry_failed=retry_failed)
        print(describe_plan(spec, url, workers, state))
        return 0
    _check_datasets(spec)
    if spec.seed_rule is not None and (launcher == "none" or (slurm or {}).get("detach")):
        raise UserError("a seeds-by-precision rule needs a coordinator that follows the results "
                        "to add seeds: use --launcher local or slurm, without --detach")

    def make_launcher() -> Launcher:
        if launcher == "none":
            return NoLauncher(max_runs=max_runs)
        if launcher == "slurm":
            from harness.study.slurm import SlurmLauncher

            return SlurmLauncher(workers=workers, **(slurm or {}))
        return LocalLauncher(workers=workers, gpus=gpus)

    passes: list[StudySpec] = []

    def run_once(batch: StudySpec) -> StudyOutcome:
        # Failed runs are retried by the first pass only: a later batch must not re-run them.
        passes.append(batch)
        return run_study(batch, url=url, workers=workers, max_runs=max_runs, progress=progress,
                         retry_failed=retry_failed and len(passes) == 1,
                         launcher=make_launcher(), checkpoints=checkpoints,
                         checkpoint_every_s=checkpoint_every_s,
                         keep_checkpoints=keep_checkpoints)

    if spec.seed_rule is not None:
        from harness.study.precision import run_by_precision

        return run_by_precision(spec, url, run_once, one_pass=max_runs is not None,
                                progress=progress).exit_code
    return run_once(spec).exit_code


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


def run_study(spec: StudySpec, *, url: str, workers: int = 1, max_runs: int | None = None,
              progress: bool = True, retry_failed: bool = False,
              launcher: Launcher | None = None, checkpoints: str | None = None,
              checkpoint_every_s: float | None = None,
              keep_checkpoints: bool = False) -> StudyOutcome:
    """Register, enqueue and run a study; see the module docstring for the rules."""
    from harness.study.progress import Progress

    t0 = time.perf_counter()
    engine = store_engine.open_database(url)
    planned = spec.plan() if spec.design != "search" else []
    study_id = register(engine, spec, url, planned)
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
    launcher = launcher or LocalLauncher(workers=workers)
    n_procs = _workers_needed(engine, study_id, workers, max_runs, search)
    if isinstance(launcher, LocalLauncher):
        launcher.workers = max(1, n_procs) if launcher.gpus is None else launcher.workers
        launcher.inline_ok = search is None
        if n_procs == 0:
            launcher.workers, launcher.inline_ok = 1, True
    elif not isinstance(launcher, NoLauncher) and hasattr(launcher, "workers"):
        launcher.workers = max(1, n_procs)  # no more Slurm tasks than runs to do
    lease_s, beat_s = lease_from_env()
    budget_id = None
    if max_runs is not None and not isinstance(launcher, NoLauncher):
        budget_id = control.create_budget(engine, study_id, max_runs)
    opts = WorkerOptions(url=url, study_id=study_id, study_name=spec.name, lease_s=lease_s,
                         heartbeat_s=beat_s, threads=max(1, _cores() // max(1, n_procs)),
                         pruning=spec.pruning, pruning_seed=spec.seeds[0], budget_id=budget_id,
                         checkpoints=checkpoints or default_checkpoints(url),
                         keep_checkpoints=keep_checkpoints,
                         **({"checkpoint_every_s": checkpoint_every_s}
                            if checkpoint_every_s is not None else {}))
    if not launcher.follows:
        launcher.run(opts, lambda: None)
        engine.dispose()
        return StudyOutcome(counts=claims.count_by_status(engine, study_id), failed=[],
                            interrupted=False, wall_time_s=time.perf_counter() - t0,
                            new_runs=new_runs)
    display = Progress(engine, study_id, total=spec.run_count(), workers=max(1, n_procs),
                       enabled=progress, name=spec.name)
    display.start_message(new_runs)
    loop = StudyLoop(display, engine, spec, study_id, url, search)
    if search is not None:
        loop.step()
    got: dict[str, int | None] = {"signal": None}

    def on_signal(signum: int, _frame: Any) -> None:
        got["signal"] = got["signal"] or signum
        loop.stopping = True
        launcher.signal(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = launcher.run(opts, loop.step)
        loop.final()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return _outcome(engine, study_id, display, codes, got["signal"], t0, new_runs)


def _outcome(engine: Any, study_id: int, display: Any, codes: list[int | None],
             signum: int | None, t0: float, new_runs: int) -> StudyOutcome:
    counts = claims.count_by_status(engine, study_id)
    left = sum(counts.get(k, 0) for k in ("pending", "interrupted", "running"))
    # A worker stopped by a signal of its own (a preempted or cancelled Slurm task) interrupts
    # the study only when it left work undone: the other workers may have finished it.
    if signum is None and left and any(c == EXIT_SIGTERM for c in codes):
        signum = signal.SIGTERM
    interrupted = signum is not None or (left > 0 and any(
        c in (EXIT_INTERRUPTED, EXIT_SIGTERM) for c in codes))
    crashed = [c for c in codes if c is not None and c not in (0, EXIT_INTERRUPTED, EXIT_SIGTERM)]
    with Session(engine) as s:
        failed = list(s.scalars(select(Run.run_key).where(
            Run.study_id == study_id, Run.status == "failed").order_by(Run.position)))
    wall = time.perf_counter() - t0
    display.summary(counts, failed, wall, interrupted=interrupted, crashed=crashed)
    engine.dispose()
    if crashed and not failed and not interrupted:
        failed = [f"<worker exited with code {c}>" for c in crashed]
    return StudyOutcome(counts=counts, failed=failed, interrupted=interrupted,
                        wall_time_s=wall, new_runs=new_runs, signal=signum,
                        crashed=tuple(crashed))

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
import functools
import itertools
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from harness.errors import StorageError, UserError
from harness.run.memory import ALLOCATOR_ENV, tuned_environ
from harness.store import claims
from harness.store import engine as store_engine
from harness.store.schema import FINAL_STATUSES, Run, RunMetric, Study
from harness.study.spec import PlannedRun, StudySpec, load_spec, run_key

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

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.failed else 0


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

@functools.cache
def _optuna_storage(url: str) -> Any:
    """One Optuna storage per process and URL: building it checks Optuna's schema (slow)."""
    import optuna

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    return optuna.storages.RDBStorage(url, **kwargs)


def _optuna_study(url: str, spec_name: str, *, direction: str = "maximize",
                  sampler: Any = None, pruner: Any = None) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name=spec_name, storage=_optuna_storage(url),
                               direction=direction, sampler=sampler, pruner=pruner,
                               load_if_exists=True)


def add_grid_trial(url: str, study_name: str, key: str, status: str, value: float | None,
                   choices: Mapping[str, tuple[str, ...]]) -> int:
    """Record a finished grid run as an Optuna trial; return its trial number."""
    import math

    import optuna
    from optuna.distributions import CategoricalDistribution

    ok = status == "complete" and value is not None and math.isfinite(value)
    labels = _labels_of(key)
    params = {f: lbl for f, lbl in labels.items() if f in choices and lbl in choices[f]}
    dists = {f: CategoricalDistribution(list(choices[f])) for f in params}
    trial = optuna.trial.create_trial(
        state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL,
        value=float(value) if ok else None, params=params, distributions=dists,
        user_attrs={"run_key": key, "status": status})
    storage_ = _optuna_storage(url)
    study_id = storage_.get_study_id_from_name(study_name)
    trial_id = storage_.create_new_trial(study_id, template_trial=trial)
    return int(storage_.get_trial_number_from_id(trial_id))


def _objective_values(session: Session, run_ids: list[int], objective: str) -> dict[int, float]:
    """The finite ``objective`` metric of each of ``run_ids`` that recorded one (the metrics
    table keeps NaN and infinities out of ``value``)."""
    if not run_ids:
        return {}
    return dict(session.execute(select(RunMetric.run_id, RunMetric.value).where(
        RunMetric.run_id.in_(run_ids), RunMetric.name == objective,
        RunMetric.value.is_not(None))).tuples().all())


def _record_grid_trials(engine: Any, spec: StudySpec, study_id: int, url: str) -> int:
    """Give every finished grid run of the study its Optuna trial, once.

    The coordinator does this, not the workers, so training processes never wait on Optuna. A
    run is marked (trial_number = -1) by compare-and-set before its trial is created, so two
    coordinators on one study never record it twice; -1 is left behind only if a coordinator
    dies in between (the bench tables, not Optuna's, are the record of results).
    """
    choices = {f.name: f.labels for f in spec.factors}
    with Session(engine) as s:
        rows = s.execute(select(Run.id, Run.run_key, Run.status).where(
            Run.study_id == study_id, Run.trial_number.is_(None),
            Run.status.in_(FINAL_STATUSES))).all()
    done = 0
    for run_id, key, status in rows:
        with Session(engine) as s, s.begin():
            res = s.execute(update(Run).where(Run.id == run_id, Run.trial_number.is_(None))
                            .values(trial_number=-1)
                            .execution_options(synchronize_session=False))
            if res.rowcount != 1:
                continue
            value = _objective_values(s, [run_id], spec.objective).get(run_id)
        number = add_grid_trial(url, spec.name, key, status, value, choices)
        claims.set_trial_number(engine, run_id, number)
        done += 1
    return done


def _labels_of(key: str) -> dict[str, str]:
    out = {}
    for part in key.split("|"):
        name, _, label = part.partition("=")
        if name != "seed":
            out[name] = label
    return out


def make_pruning_callback(url: str, study_name: str, trial_number: int,
                          pruner: str = "median") -> Any:
    """A Lightning callback reporting validation accuracy per epoch to an Optuna trial.

    When the pruner says stop, it ends training (``trainer.should_stop``) rather than raising,
    so the run's partial curves are recorded like any other result; the worker then stores the
    run as ``pruned``.
    """
    import lightning.pytorch as pl
    import optuna

    study = optuna.load_study(study_name=study_name, storage=_optuna_storage(url),
                              pruner=_pruner(pruner))
    sid = _optuna_storage(url).get_study_id_from_name(study_name)
    trial_id = _optuna_storage(url).get_trial_id_from_study_id_trial_number(sid, trial_number)
    trial = optuna.trial.Trial(study, trial_id)

    class _Pruning(pl.Callback):
        def __init__(self) -> None:
            self.pruned = False

        def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if trainer.sanity_checking:
                return
            metrics = trainer.callback_metrics
            value = next((metrics[k] for k in ("val_acc", "val/acc") if k in metrics), None)
            if value is None:
                return
            trial.report(float(value), step=int(trainer.current_epoch))
            if trial.should_prune():
                self.pruned = True
                trainer.should_stop = True

    return _Pruning()


def _pruner(kind: str) -> Any:
    import optuna

    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


# -- registering the study -------------------------------------------------------------------

def _spec_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    out = []
    for k in keys:
        if k in ("factors", "description", "grid_cap"):
            continue
        o, n = old.get(k), new.get(k)
        if isinstance(o, Mapping) and isinstance(n, Mapping):
            for sub in sorted(set(o) | set(n)):
                if sub != "seeds" and o.get(sub) != n.get(sub):
                    out.append(f"{k}.{sub}")
        elif o != n:
            out.append(k)
    of, nf = old.get("factors") or {}, new.get("factors") or {}
    if set(of) != set(nf):
        out.append("the set of factors")
    return out


def _register(engine: Any, spec: StudySpec, url: str, planned: list[PlannedRun]) -> int:
    """Create or check the study row; refuse a changed spec unless it only adds runs."""
    for _ in range(3):
        try:
            return _register_once(engine, spec, url, planned)
        except IntegrityError:
            continue  # another machine registered the same study just now: check against it
    raise StorageError(f"cannot register study '{spec.name}' in {url}")


def _register_once(engine: Any, spec: StudySpec, url: str, planned: list[PlannedRun]) -> int:
    def refuse(why: str) -> StorageError:
        allowed = ("only adding levels or seeds is allowed" if spec.design != "search"
                   else "a search study's spec cannot change")
        return StorageError(
            f"study '{spec.name}' in {url} was created from a different spec ({why}); "
            f"{allowed}: use a new study name (study: ...) or restore the spec")

    with Session(engine) as s, s.begin():
        row = s.scalars(select(Study).where(Study.name == spec.name)).first()
        if row is None:
            row = Study(name=spec.name, design=spec.design, spec=spec.raw,
                        spec_hash=spec.config_hash())
            s.add(row)
            s.flush()
            return int(row.id)
        if row.spec_hash != spec.config_hash():
            changed = ", ".join(_spec_diff(row.spec, spec.raw)) or "the run settings"
            raise refuse(f"changed: {changed}")
        if spec.design != "search":
            old_keys = set(s.scalars(select(Run.run_key).where(Run.study_id == row.id)))
            lost = sorted(old_keys - {p.key for p in planned})
            if lost:
                raise refuse(f"it removes {len(lost)} existing runs, e.g. {lost[0]}")
        elif row.spec != spec.raw:
            raise refuse("changed: " + (", ".join(_spec_diff(row.spec, spec.raw)) or "factors"))
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
        print(describe_plan(spec, url, workers))
        return 0
    _check_datasets(spec)
    outcome = run_study(spec, url=url, workers=workers, max_runs=max_runs, progress=progress,
                        retry_failed=retry_failed)
    return outcome.exit_code


def _check_datasets(spec: StudySpec) -> None:
    """A missing dataset fails here, once, before any run starts (DatasetMissingError)."""
    from harness.data.pipeline import check_dataset

    # Only dataset.* factors change the dataset: check each combination of theirs, the other
    # factors at their reference level (any design, search included, and fast on big grids).
    data_factors = [f for f in spec.factors if f.name.startswith("dataset.")]
    seen: set[str] = set()
    for idx in itertools.product(*(range(len(f.labels)) for f in data_factors)):
        combo = {f.name: 0 for f in spec.factors}
        combo.update({f.name: i for f, i in zip(data_factors, idx)})
        cfg = spec.config_for(combo, spec.seeds[0])
        key = repr(cfg.dataset)
        if key not in seen:
            seen.add(key)
            check_dataset(cfg)


def describe_plan(spec: StudySpec, url: str, workers: int) -> str:
    lines = [f"study {spec.name} ({spec.design}) from {spec.path}"]
    for f in spec.factors:
        lines.append(f"  {f.name} ({len(f.labels)}): {', '.join(f.labels)}")
    lines.append(f"  seeds ({len(spec.seeds)}): {', '.join(map(str, spec.seeds))}")
    combos = spec.combination_count()
    what = "trials" if spec.design == "search" else "combinations"
    lines.append(f"{spec.run_count()} runs = {combos} {what} x {len(spec.seeds)} seeds")
    est = _estimate_run_s(spec, url)
    if est is None:
        lines.append("time: no estimate (no finished run of this dataset/model in the "
                     "database yet; try --max-runs 1 first)")
    else:
        total = est * spec.run_count() / workers
        lines.append(f"time: about {_fmt_s(total)} with {workers} worker(s) "
                     f"({est:.1f} s per run from earlier runs in {url})")
    return "\n".join(lines)


def _estimate_run_s(spec: StudySpec, url: str) -> float | None:
    """Seconds per run from finished runs with the same dataset and model, read-only.

    Their time per epoch is scaled to this spec's epochs; None when there is nothing to go by.
    """
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return None
    try:
        engine = store_engine.make_engine(url)
        with Session(engine) as s:
            rows = s.execute(select(Run.config, Run.wall_time_s).where(
                Run.status == "complete", Run.wall_time_s.is_not(None))).all()
        engine.dispose()
    except Exception:  # noqa: BLE001 - an estimate never stops a dry run
        return None
    ref = spec.config_for({f.name: 0 for f in spec.factors}, spec.seeds[0]).to_dict()
    per_epoch = [wall / max(1, int(cfg["train"]["epochs"])) for cfg, wall in rows
                 if cfg.get("dataset") == ref["dataset"] and cfg.get("model") == ref["model"]]
    if not per_epoch:
        return None
    return sum(per_epoch) / len(per_epoch) * ref["train"]["epochs"]


def _fmt_s(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


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

    code = worker_main(opts, budget, keep_alive)
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
                        wall_time_s=wall, new_runs=new_runs)


class _Bookkeeping:
    """While workers run: the progress display and, for a grid study, its Optuna trial records
    (at most every 2 s). A failing poll or record never stops the study; the final one raises."""

    def __init__(self, display: Any, engine: Any, spec: StudySpec, study_id: int, url: str,
                 *, record: bool) -> None:
        self.display, self.record = display, record
        self._record_args = (engine, spec, study_id, url)
        self._last = 0.0

    def tick(self) -> None:
        with contextlib.suppress(Exception):
            self.display.poll()
            if self.record and time.perf_counter() - self._last > 2.0:
                _record_grid_trials(*self._record_args)
                self._last = time.perf_counter()

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


class _Search:
    """The coordinator side of ``design: search``: ask TPE for trials, tell it their results.

    Each trial is one combination; its runs (one per seed) go into ``bench_runs`` like grid
    runs and are claimed by the same workers. A combination sampled again reuses the runs that
    exist, so a (combination, seed) still trains at most once.
    """

    def __init__(self, spec: StudySpec, engine: Any, study_id: int, ostudy: Any,
                 workers: int) -> None:
        self.spec, self.engine, self.study_id, self.ostudy = spec, engine, study_id, ostudy
        self.workers = workers
        self.open: dict[int, list[str]] = {}
        import optuna

        # Trials a previous command asked for and never told: enqueue their runs again (a
        # no-op for runs already there) and wait for them like new ones.
        for t in ostudy.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            choice = {f.name: f.labels.index(t.params[f.name]) for f in spec.factors}
            self.open[t.number] = self._enqueue(choice, t.number)

    def _enqueue(self, choice: Mapping[str, int], number: int) -> list[str]:
        labels = self.spec.labels_for(choice)
        runs = [PlannedRun(run_key(labels, seed), seed, labels,
                           self.spec.config_for(choice, seed), 0) for seed in self.spec.seeds]
        claims.insert_runs(self.engine, self.study_id, runs, trial_number=number)
        return [r.key for r in runs]

    def step(self) -> bool:
        """Tell finished trials, ask new ones; True when every trial has been told."""
        import optuna

        self._tell_finished()
        started = len(self.ostudy.get_trials(deepcopy=False))
        while started < self.spec.n_trials and len(self.open) < self.workers:
            trial = self.ostudy.ask()
            choice = {f.name: f.labels.index(trial.suggest_categorical(f.name, list(f.labels)))
                      for f in self.spec.factors}
            self.open[trial.number] = self._enqueue(choice, trial.number)
            started += 1
        states = optuna.trial.TrialState
        unfinished = self.ostudy.get_trials(deepcopy=False, states=(states.RUNNING,
                                                                    states.WAITING))
        return started >= self.spec.n_trials and not unfinished and not self.open

    def _tell_finished(self) -> None:
        import optuna

        for number, keys in list(self.open.items()):
            with Session(self.engine) as s:
                rows = s.execute(select(Run.id, Run.status).where(
                    Run.study_id == self.study_id, Run.run_key.in_(keys))).all()
                if len(rows) < len(keys) or any(st not in FINAL_STATUSES for _i, st in rows):
                    continue
                values = list(_objective_values(
                    s, [run_id for run_id, st in rows if st == "complete"],
                    self.spec.objective).values())
            states = optuna.trial.TrialState
            try:
                if any(st == "pruned" for _i, st in rows):
                    self.ostudy.tell(number, state=states.PRUNED)
                elif values:
                    self.ostudy.tell(number, sum(values) / len(values))
                else:
                    self.ostudy.tell(number, state=states.FAIL)
            except (ValueError, RuntimeError):
                pass  # told already (by another coordinator on the same study)
            del self.open[number]

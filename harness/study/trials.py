"""Everything Optuna: its RDB storage in the results database, grid trials, pruning, search."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from harness.store import claims
from harness.store import engine as store_engine
from harness.store.schema import FINAL_STATUSES, Run, RunMetric
from harness.study.spec import PlannedRun, StudySpec, run_key


@functools.cache
def _optuna_storage(url: str) -> Any:
    """One Optuna storage per process and URL: building it checks Optuna's schema (slow)."""
    import optuna

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    # Optuna creates its tables on first use; two processes doing so at once on a fresh
    # PostgreSQL database collide on the catalogue (UniqueViolation): one at a time.
    with store_engine.schema_guard(url):
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

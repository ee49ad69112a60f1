"""Everything Optuna: its RDB storage in the results database, grid trials, pruning, search."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
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


def _objective_values(session: Session, run_ids: list[int], objective: str) -> dict[int, float]:
    """The finite ``objective`` metric of each of ``run_ids`` that recorded one (the metrics
    table keeps NaN and infinities out of ``value``)."""
    if not run_ids:
        return {}
    return dict(session.execute(select(RunMetric.run_id, RunMetric.value).where(
        RunMetric.run_id.in_(run_ids), RunMetric.name == objective,
        RunMetric.value.is_not(None))).tuples().all())




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

"""Grid designs' Optuna trials: one per combination, recorded when its last seed finishes.

What optuna-dashboard then shows agrees with the report: the objective is named
(``metric_names``) after the metric the trials carry, a trial's value is the mean over the
combination's complete seeds of the report's compared metric, its intermediate values are the
seed-mean validation accuracy per epoch (the dashboard's learning curves), its start and end are
its runs' first start and last finish (the timeline), and its user attributes hold the seeds,
each seed's value, the run keys and the mean costs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from harness.store import claims
from harness.store import engine as store_engine
from harness.store.schema import FINAL_STATUSES, Run, RunCurve, RunMetric
from harness.study.spec import StudySpec
from harness.study.trials import _labels_of, _optuna_storage

__all__ = ["GRID_METRIC", "INTERMEDIATE_CURVE", "TRIAL_COSTS", "add_grid_trial",
           "combination_key", "grid_trial", "name_objective", "record_grid_trials"]

#: The metric a grid study's trials carry: the report's default compared metric, so that the
#: dashboard's values are the report's combination means. (A search optimizes spec.objective.)
GRID_METRIC = "test_acc"
#: Per-run costs attached to a grid trial as user attributes (means over its complete seeds).
TRIAL_COSTS = ("weight_memory_bits", "weight_memory_ratio", "energy_uj_per_sample",
               "energy_memory_uj_per_sample", "synops_per_sample", "params", "train_time_s",
               "spike_rate")
#: The curve reported as a trial's intermediate values (per epoch, mean over seeds).
INTERMEDIATE_CURVE = "val_acc"


def name_objective(ostudy: Any, spec: StudySpec) -> None:
    """Name the study's objective (optuna-dashboard's axis labels): the metric its trials carry."""
    import warnings

    name = spec.objective if spec.design == "search" else GRID_METRIC
    if list(ostudy.metric_names or []) != [name]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning in some Optuna versions
            ostudy.set_metric_names([name])


def combination_key(key: str) -> str:
    """A run key without its seed: the combination it belongs to."""
    return "|".join(p for p in key.split("|") if not p.startswith("seed="))


@dataclasses.dataclass
class _Seed:
    run_id: int
    key: str
    status: str
    seed: int
    trial_number: int | None
    started: dt.datetime | None
    finished: dt.datetime | None


def _seed_means(session: Session, run_ids: list[int], names: tuple[str, ...]
                ) -> dict[str, float]:
    """Mean of each finite metric of ``names`` over ``run_ids`` (NaN/inf are stored NULL)."""
    rows = session.execute(select(RunMetric.name, RunMetric.value).where(
        RunMetric.run_id.in_(run_ids), RunMetric.name.in_(names),
        RunMetric.value.is_not(None))).tuples().all()
    sums: dict[str, list[float]] = {}
    for name, value in rows:
        sums.setdefault(name, []).append(float(value))
    return {n: sum(v) / len(v) for n, v in sums.items() if v}


def _curve_means(session: Session, run_ids: list[int], name: str) -> dict[int, float]:
    """Per epoch, the mean of curve ``name`` over the runs that recorded a finite value."""
    rows = session.execute(select(RunCurve.epoch, RunCurve.value).where(
        RunCurve.run_id.in_(run_ids), RunCurve.name == name,
        RunCurve.value.is_not(None))).tuples().all()
    per: dict[int, list[float]] = {}
    for epoch, value in rows:
        per.setdefault(int(epoch), []).append(float(value))
    return {e: sum(v) / len(v) for e, v in sorted(per.items())}


def grid_trial(session: Session, seeds: list[_Seed], choices: Mapping[str, tuple[str, ...]],
               metric: str = GRID_METRIC) -> Any:
    """The Optuna trial of one combination whose seeds are all finished: value = mean of
    ``metric`` over its complete seeds (FAIL when none recorded it), params = its levels,
    intermediate values = the seed-mean validation curve, user attributes = seeds, run keys,
    each seed's value and the mean costs; start and end = its first start and last finish."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    complete = [s for s in seeds if s.status == "complete"]
    ids = [s.run_id for s in complete]
    per_seed = dict(session.execute(select(RunMetric.run_id, RunMetric.value).where(
        RunMetric.run_id.in_(ids), RunMetric.name == metric,
        RunMetric.value.is_not(None))).tuples().all()) if ids else {}
    values = {s.seed: float(per_seed[s.run_id]) for s in complete if s.run_id in per_seed}
    labels = _labels_of(seeds[0].key)
    params = {f: lbl for f, lbl in labels.items() if f in choices and lbl in choices[f]}
    attrs: dict[str, Any] = {
        "seeds": sorted(values), "n_seeds": len(values),
        "run_keys": sorted(s.key for s in seeds), f"{metric}_by_seed":
            {str(k): v for k, v in sorted(values.items())},
        "failed_seeds": sorted(s.seed for s in seeds if s.status != "complete"),
        "statuses": sorted({s.status for s in seeds}),
    }
    attrs.update(_seed_means(session, ids, TRIAL_COSTS) if ids else {})
    starts = [s.started for s in seeds if s.started]
    ends = [s.finished for s in seeds if s.finished]
    state = optuna.trial.TrialState
    return optuna.trial.FrozenTrial(
        number=0, trial_id=0, state=state.COMPLETE if values else state.FAIL,
        value=sum(values.values()) / len(values) if values else None,
        datetime_start=min(starts) if starts else None,
        datetime_complete=max(ends) if ends else None,
        params=params, distributions={f: CategoricalDistribution(list(choices[f]))
                                      for f in params},
        user_attrs=attrs, system_attrs={},
        intermediate_values=_curve_means(session, ids, INTERMEDIATE_CURVE) if ids else {})


def add_grid_trial(url: str, study_name: str, trial: Any) -> int:
    """Store a finished trial (from :func:`grid_trial`); return its trial number."""
    storage_ = _optuna_storage(url)
    study_id = storage_.get_study_id_from_name(study_name)
    trial_id = storage_.create_new_trial(study_id, template_trial=trial)
    return int(storage_.get_trial_number_from_id(trial_id))


def _finished_combinations(engine: Any, study_id: int) -> dict[str, list[_Seed]]:
    """Combinations with a run not yet recorded and every run finished."""
    with Session(engine) as s:
        rows = s.execute(select(Run.id, Run.run_key, Run.status, Run.seed, Run.trial_number,
                                Run.started_at, Run.finished_at)
                         .where(Run.study_id == study_id).order_by(Run.position)).all()
    combos: dict[str, list[_Seed]] = {}
    for row in rows:
        combos.setdefault(combination_key(row[1]), []).append(_Seed(*row))
    return {k: v for k, v in combos.items()
            if any(r.trial_number is None for r in v)
            and all(r.status in FINAL_STATUSES for r in v)}


def record_grid_trials(engine: Any, spec: StudySpec, study_id: int, url: str) -> int:
    """Give every finished grid combination its Optuna trial, once: when its last seed ends.

    The coordinator does this, not the workers, so training processes never wait on Optuna.
    A combination's unrecorded runs are marked (trial_number = -1) by compare-and-set before
    its trial is created, so two coordinators never record it twice; if creating the trial
    fails the mark is reset, the other combinations are still recorded, and the first error is
    raised at the end (the next call tries the failed ones again). A combination
    that gets new runs later (added seeds, --retry-failed) gets a new trial over all its seeds;
    the earlier trial stays, with its ``n_seeds``.
    """
    choices = {f.name: f.labels for f in spec.factors}
    done = 0
    errors: list[Exception] = []
    for seeds in _finished_combinations(engine, study_id).values():
        ids = [r.run_id for r in seeds if r.trial_number is None]
        with Session(engine) as s:
            res = s.execute(update(Run).where(Run.id.in_(ids), Run.trial_number.is_(None))
                            .values(trial_number=-1)
                            .execution_options(synchronize_session=False))
            if res.rowcount != len(ids):
                s.rollback()  # another coordinator is recording this combination
                continue
            s.commit()
        try:
            # Read, then write Optuna's tables with no transaction of ours open (SQLite: one
            # writer at a time, and the workers keep writing results).
            with Session(store_engine.reader(engine)) as s:
                trial = grid_trial(s, seeds, choices)
            number = add_grid_trial(url, spec.name, trial)
        except Exception as exc:  # noqa: BLE001 - raised below, after the other combinations
            _unmark(engine, ids)
            errors.append(exc)
            continue
        except BaseException:
            _unmark(engine, ids)
            raise
        _set_trial_numbers(engine, ids, number)
        done += 1
    if errors:
        raise errors[0]
    return done


def _unmark(engine: Any, ids: list[int]) -> None:
    with Session(engine) as s, s.begin():
        s.execute(update(Run).where(Run.id.in_(ids), Run.trial_number == -1)
                  .values(trial_number=None).execution_options(synchronize_session=False))


def _set_trial_numbers(engine: Any, ids: list[int], number: int) -> None:
    for run_id in ids:
        claims.set_trial_number(engine, run_id, number)


"""What optuna-dashboard reads, read through Optuna's own API: a grid study's objective is
named, each combination is one trial whose value is the report's seed mean, with the seed-mean
validation curve as intermediate values, seeds and costs as user attributes, and real start and
end times; a failure to create a trial leaves no mark behind and is never silent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from test_study_fakes import use_fake_run, write_spec

from harness.report import top_configurations
from harness.results import curves_frame, runs_frame
from harness.store.schema import Run
from harness.study import grid_trials, loop
from harness.study.coordinator import run_study_command
from harness.study.spec import load_spec


def _study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **over: Any) -> tuple[str, Path]:
    use_fake_run(monkeypatch, tmp_path / "log")
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    spec = write_spec(tmp_path / "s.yaml", "dash", train={"epochs": 2, "seeds": [0, 1, 2]},
                      factors={"optimizer": ["adam", "sgd"], "model.pool": ["max", "avg"]},
                      **over)
    return url, spec


def test_trials_are_combination_seed_means_the_report_shows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    url, spec = _study(tmp_path, monkeypatch)
    assert run_study_command(str(spec), db=url, progress=False) == 0
    study = optuna.load_study(study_name="dash", storage=url)
    assert study.metric_names == ["test_acc"]
    trials = study.get_trials()
    assert len(trials) == 4  # one per combination, not one per run
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)

    runs = runs_frame(url, "dash")
    top = top_configurations(runs, metric="test_acc").set_index(["optimizer", "model.pool"])
    curves = curves_frame(url, "dash", "val_acc")
    for t in trials:
        combo = (t.params["optimizer"], t.params["model.pool"])
        assert t.value == pytest.approx(top.loc[combo, "mean"], abs=1e-12)
        assert t.user_attrs["seeds"] == [0, 1, 2] and t.user_attrs["n_seeds"] == 3
        sub = runs[(runs["optimizer"] == combo[0]) & (runs["model.pool"] == combo[1])]
        assert sorted(t.user_attrs["run_keys"]) == sorted(sub["run_key"])
        assert t.user_attrs["test_acc_by_seed"] == {
            str(r.seed): pytest.approx(r.test_acc) for r in sub.itertuples()}
        c = curves[(curves["optimizer"] == combo[0]) & (curves["model.pool"] == combo[1])]
        want = c.groupby("epoch")["value"].mean()
        assert t.intermediate_values == pytest.approx(dict(zip(want.index, want.to_numpy())))
        assert t.datetime_start is not None and t.datetime_complete >= t.datetime_start
        assert t.datetime_start == min(sub["started_at"])
    best = max(trials, key=lambda t: t.value)
    assert study.best_value == best.value == pytest.approx(top["mean"].max())
    engine = create_engine(url)
    with Session(engine) as s:
        numbers = dict(s.execute(select(Run.run_key, Run.trial_number)).tuples().all())
    engine.dispose()
    assert -1 not in numbers.values() and len(set(numbers.values())) == 4


def test_costs_are_user_attributes(tmp_path: Path) -> None:
    """On a study written through the ORM (known costs): the trial's attributes are the means
    over its seeds."""
    import optuna
    from test_results import FULL_SPEC, make_study, metric_values

    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    make_study(url, FULL_SPEC)
    spec_path = tmp_path / "full.yaml"
    import yaml

    spec_path.write_text(yaml.safe_dump(FULL_SPEC))
    spec = load_spec(spec_path)
    optuna.create_study(study_name="full", storage=url, direction="maximize")
    engine = create_engine(url)
    with Session(engine) as s:
        study_id = s.execute(select(Run.study_id)).scalars().first()
    assert grid_trials.record_grid_trials(engine, spec, study_id, url) == 6
    assert grid_trials.record_grid_trials(engine, spec, study_id, url) == 0  # once
    engine.dispose()
    trials = optuna.load_study(study_name="full", storage=url).get_trials()
    labels = {lab: i for i, lab in enumerate(spec.factors[1].labels)}
    for t in trials:
        b = spec.factors[0].labels.index(t.params["binarization"])
        o = labels[t.params["optimizer"]]
        values = [metric_values(b, o, s) for s in (0, 1, 2)]
        for name in ("energy_uj_per_sample", "weight_memory_bits", "synops_per_sample"):
            assert t.user_attrs[name] == pytest.approx(np.mean([v[name] for v in values]))
        assert t.value == pytest.approx(np.mean([v["test_acc"] for v in values]))


def test_a_failed_trial_creation_resets_the_mark_and_raises(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    url, spec = _study(tmp_path, monkeypatch)
    calls = {"n": 0}
    real = grid_trials.add_grid_trial

    def flaky(*args: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database is locked")
        return real(*args)

    monkeypatch.setattr(grid_trials, "add_grid_trial", flaky)
    # The study's final recording meets the error: it is raised, not hidden...
    with pytest.raises(RuntimeError, match="database is locked"):
        run_study_command(str(spec), db=url, progress=False)
    engine = create_engine(url)
    with Session(engine) as s:
        numbers = list(s.execute(select(Run.trial_number)).scalars())
    engine.dispose()
    # ...and no run keeps the -1 mark: the failed combination is simply not recorded yet.
    assert -1 not in numbers and numbers.count(None) == 3
    assert len(optuna.load_study(study_name="dash", storage=url).get_trials()) == 3
    # The same command again trains nothing and records the missing trial.
    assert run_study_command(str(spec), db=url, progress=False) == 0
    engine = create_engine(url)
    with Session(engine) as s:
        numbers = list(s.execute(select(Run.trial_number)).scalars())
    engine.dispose()
    assert None not in numbers and -1 not in numbers
    assert len(optuna.load_study(study_name="dash", storage=url).get_trials()) == 4
    assert len((tmp_path / "log").read_text().splitlines()) == 12  # each run trained once


def test_a_failing_record_during_the_study_is_said_not_swallowed(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    class Display:
        def poll(self, force: bool = False) -> None:
            pass

    def broken(*_args: Any) -> int:
        raise RuntimeError("optuna storage unreachable")

    monkeypatch.setattr(loop, "record_grid_trials", broken)
    books = loop.StudyLoop(Display(), None, None, 0, "sqlite://", None)
    books.step()
    books._last_record = 0.0
    books.step()  # the same error again: said once
    err = capsys.readouterr().err
    assert err.count("bsnn-bench: warning: recording Optuna trials failed (will retry): "
                     "RuntimeError: optuna storage unreachable") == 1
    with pytest.raises(RuntimeError):
        books.final()

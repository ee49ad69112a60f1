"""``design: search`` end to end with the real ``train_run``: TPE trials, per-epoch reports."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from harness.store.schema import Run
from harness.study.coordinator import run_study_command
from harness.study.worker import RUN_FN_ENV


@pytest.mark.slow
def test_search_with_median_pruning_reports_validation_accuracy_per_epoch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUN_FN_ENV, raising=False)
    spec = tmp_path / "search.yaml"
    spec.write_text(yaml.safe_dump({
        "study": "tiny-search",
        "design": "search",
        "n_trials": 3,
        "pruning": "median",
        "dataset": {"name": "digits-dvs", "limit": 32},
        "model": {"channels": [4, 8], "hidden": 16},
        "train": {"epochs": 2, "batch_size": 16, "seeds": [0]},
        "factors": {"binarization": ["fp32", "ste-clip"], "train.lr": [1.0e-3, 1.0e-2]},
    }))
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    assert run_study_command(str(spec), db=url, workers=1, progress=False) == 0
    trials = optuna.load_study(study_name="tiny-search", storage=url).get_trials()
    states = optuna.trial.TrialState
    assert len(trials) == 3
    assert all(t.state in (states.COMPLETE, states.PRUNED) for t in trials)
    # The pruning callback saw Lightning's logged val_acc after every epoch it ran.
    for t in trials:
        steps = sorted(t.intermediate_values)
        assert steps and steps == list(range(len(steps))) and len(steps) <= 2
        assert all(0.0 <= v <= 1.0 for v in t.intermediate_values.values())
    engine = create_engine(url)
    with Session(engine) as s:
        runs = s.scalars(select(Run)).all()
        assert {r.status for r in runs} <= {"complete", "pruned"}
        assert all(r.trial_number is not None for r in runs)
    engine.dispose()

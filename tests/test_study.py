"""The study command: bad specs exit 2 leaving the database untouched, dry runs, failures and
retries, --max-runs, added seeds, the search design and its pruning callback."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from test_study_fakes import executions, use_fake_run, write_spec

from harness.cli import main
from harness.store.schema import Run, RunCurve
from harness.study.coordinator import run_study_command
from harness.study.trials import make_pruning_callback


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("over, message", [
    ({"factors": {"optimiser": ["adam"]}}, "'factors.optimiser': unknown factor"),
    ({"factors": {"optimizer": ["adamw"]}}, "unknown optimizer level 'adamw'"),
    ({"factors": {"optimizer": [{"name": "hybrid", "switch_at": "x"}]}},
     "parameter 'switch_at': expected"),
    ({"factors": {"optimizer": ["adam", "adam"]}}, "duplicate level 'adam'"),
    ({"factors": {"optimizer": []}}, "empty factor"),
    ({"grid_cap": 5}, "is over the cap of 5"),
])
def test_bad_specs_exit_2_and_leave_the_database_untouched(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], over: dict, message: str) -> None:
    db = tmp_path / "r.sqlite"
    bad = write_spec(tmp_path / "bad.yaml", "bad-spec", **over)
    capsys.readouterr()
    assert main(["run", str(bad), "--db", f"sqlite:///{db}", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bsnn-bench: error: {bad}: ") and message in err
    assert len(err.strip().splitlines()) == 1  # one line, no traceback
    assert not db.exists()


def test_yaml_tag_spec_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "tag.yaml"
    bad.write_text("study: !!python/object/apply:os.getcwd []\nfactors: {optimizer: [adam]}\n")
    assert main(["run", str(bad), "--db", f"sqlite:///{tmp_path / 'r.sqlite'}"]) == 2
    assert "YAML tag not allowed" in capsys.readouterr().err
    assert not (tmp_path / "r.sqlite").exists()


def test_dry_run_prints_runs_factors_levels_and_an_estimate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path / "s.yaml", "dry")
    assert main(["run", str(spec), "--db", f"sqlite:///{tmp_path / 'r.sqlite'}",
                 "--dry-run"]) == 0
    assert not (tmp_path / "r.sqlite").exists()  # a dry run writes nothing
    out = capsys.readouterr().out
    assert "24 runs = 12 combinations x 2 seeds" in out
    assert "optimizer (3): adam, sgd, hybrid(switch_at=0.5)" in out
    assert "model.pool (2): max, avg" in out
    assert "time: no estimate" in out


def _spec(tmp_path: Path, seeds: list[int]) -> Path:
    return write_spec(tmp_path / "s.yaml", "fail", train={"epochs": 1, "seeds": seeds},
                      factors={"train.weight_decay": [0.0, 0.5], "model.pool": ["max", "avg"]})


def test_failures_max_runs_added_seeds_and_retry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    log = tmp_path / "log"
    # A: the first two runs only; the second raises (a bug in a run): recorded, study goes on.
    use_fake_run(monkeypatch, log, BSNN_FAKE_RAISE="1")
    assert main(["run", str(_spec(tmp_path, [0])), "--db", url, "--max-runs", "2"]) == 1
    out, err = capsys.readouterr()
    assert "1 failed runs" in err and "model.pool=avg|train.weight_decay=0|seed=0" in err
    assert "2 runs left" in err
    assert executions(log) == ["opt=adam|lrs=constant|pool=max|wd=0.0|seed=0",
                               "opt=adam|lrs=constant|pool=avg|wd=0.0|seed=0"]
    engine = create_engine(url)
    with Session(engine) as s:
        key = "model.pool=avg|train.weight_decay=0|seed=0"
        bug = s.scalars(select(Run).where(Run.run_key == key)).one()
        assert bug.status == "failed" and "RuntimeError: boom from a buggy run" in bug.error

    # B: one more seed. Only new runs and the two never started run; the failure stays failed.
    use_fake_run(monkeypatch, log)
    assert main(["run", str(_spec(tmp_path, [0, 1])), "--db", url]) == 1
    err = capsys.readouterr().err
    ran = executions(log)[2:]
    assert len(ran) == 6 and len(set(ran)) == 6
    assert "opt=adam|lrs=constant|pool=avg|wd=0.0|seed=0" not in ran
    with Session(engine) as s:
        runs = {r.run_key: r for r in s.scalars(select(Run))}
        diverged = runs["model.pool=max|train.weight_decay=0.5|seed=1"]
        assert diverged.status == "failed" and "NaN" in diverged.error
        curve = s.scalars(select(RunCurve).where(RunCurve.run_id == diverged.id)
                          .order_by(RunCurve.epoch)).all()
        assert [(c.value, c.special) for c in curve] == [(1.0, None), (None, "nan")]
        assert Counter(r.status for r in runs.values()) == {"complete": 3, "failed": 5}
    assert "5 failed runs" in err

    # C: --retry-failed runs exactly the failed ones again; the bug is gone, NaN stays NaN.
    assert main(["run", str(_spec(tmp_path, [0, 1])), "--db", url, "--retry-failed"]) == 1
    retried = executions(log)[8:]
    assert len(retried) == 5 and "opt=adam|lrs=constant|pool=avg|wd=0.0|seed=0" in retried
    with Session(engine) as s:
        assert Counter(r.status for r in s.scalars(select(Run))) == {"complete": 4, "failed": 4}
    engine.dispose()


def test_changed_spec_is_refused_with_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    use_fake_run(monkeypatch, tmp_path / "log")
    spec = write_spec(tmp_path / "s.yaml", "chg", train={"epochs": 1, "seeds": [0]},
                      factors={"model.pool": ["max"]})
    assert run_study_command(str(spec), db=url, workers=1, progress=False) == 0
    before = _digest(tmp_path / "r.sqlite")
    write_spec(spec, "chg", train={"epochs": 3, "seeds": [0]}, factors={"model.pool": ["max"]})
    capsys.readouterr()
    assert main(["run", str(spec), "--db", url]) == 2
    err = capsys.readouterr().err
    assert "was created from a different spec (changed: train.epochs)" in err
    assert _digest(tmp_path / "r.sqlite") == before


def test_search_design_asks_tpe_and_tells_the_mean_objective(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    log = tmp_path / "log"
    use_fake_run(monkeypatch, log)
    spec = write_spec(tmp_path / "s.yaml", "tpe", design="search", n_trials=5,
                      factors={"model.pool": ["max", "avg"], "train.weight_decay": [0.0, 0.1]})
    assert run_study_command(str(spec), db=url, workers=1, progress=False) == 0
    study = optuna.load_study(study_name="tpe", storage=url)
    trials = study.get_trials()
    assert len(trials) == 5
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    for t in trials:
        # The fake's val_acc_best is 0.5 + 0.1 * seed (+0.05 for avg pooling): mean of seeds 0, 1.
        expect = 0.55 + (0.05 if t.params["model.pool"] == "avg" else 0.0)
        assert t.value == pytest.approx(expect)
    # A combination sampled twice reuses its runs: each (combination, seed) ran once.
    ran = Counter(executions(log))
    assert set(ran.values()) == {1}
    combos = {tuple(sorted(t.params.items())) for t in trials}
    assert len(ran) == 2 * len(combos)


def test_pruning_callback_reports_and_stops_a_bad_trial(tmp_path: Path) -> None:
    import optuna

    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    study = optuna.create_study(study_name="prune", storage=url, direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2,
                                                                   n_warmup_steps=1))
    for acc in (0.8, 0.9):
        t = study.ask()
        for epoch in range(3):
            t.report(acc, epoch)
        study.tell(t, acc)
    bad = study.ask()
    cb = make_pruning_callback(url, "prune", bad.number, "median")
    trainer = SimpleNamespace(sanity_checking=False, callback_metrics={"val_acc": 0.1},
                              current_epoch=0, should_stop=False)
    cb.on_validation_epoch_end(trainer, None)
    assert not trainer.should_stop  # warm-up epoch: never pruned
    trainer.current_epoch = 1
    cb.on_validation_epoch_end(trainer, None)
    assert trainer.should_stop and cb.pruned
    reported = study.get_trials()[bad.number].intermediate_values
    assert reported == {0: pytest.approx(0.1), 1: pytest.approx(0.1)}
    good = study.ask()
    cb2 = make_pruning_callback(url, "prune", good.number, "median")
    trainer2 = SimpleNamespace(sanity_checking=False, callback_metrics={"val_acc": 0.95},
                               current_epoch=1, should_stop=False)
    cb2.on_validation_epoch_end(trainer2, None)
    assert not trainer2.should_stop and not cb2.pruned

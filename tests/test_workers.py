"""Three worker processes on one database run a 12-combination x 2-seed study exactly once.

The run function is the fast fake of ``test_study_fakes`` (through ``BSNN_BENCH_RUN_FN``), so
these tests exercise the real processes, claims, heartbeats and writes in seconds.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session
from test_study_fakes import executions, run_id_of, use_fake_run, write_spec

from harness.store.schema import Run, RunFactor, RunMetric, Study
from harness.study.coordinator import run_study_command
from harness.study.spec import load_spec


def check_exactly_once(url: str, spec_path: Path, name: str, log: Path) -> None:
    spec = load_spec(spec_path)
    expected = sorted(run_id_of(r.config) for r in spec.plan())
    assert len(expected) == 24
    ran = Counter(executions(log))
    assert sorted(ran) == expected and set(ran.values()) == {1}, ran
    engine = create_engine(url)
    with Session(engine) as s:
        study_id = s.scalar(select(Study.id).where(Study.name == name))
        runs = s.scalars(select(Run).where(Run.study_id == study_id)).all()
        assert len(runs) == 24
        assert {r.status for r in runs} == {"complete"}
        assert all(r.attempts == 1 for r in runs)
        workers = {r.worker for r in runs}
        ids = [r.id for r in runs]
        metrics = s.execute(select(RunMetric.run_id, RunMetric.name).where(
            RunMetric.run_id.in_(ids))).all()
        factors = s.execute(select(RunFactor.run_id).where(RunFactor.run_id.in_(ids))).all()
        first = runs[0]
        assert first.host and first.device == "cpu" and first.wall_time_s is not None
        assert {"python", "torch", "lightning", "snntorch", "tonic", "optuna",
                "git_commit"} <= set(first.versions)
        assert first.config["train"]["epochs"] == 1
    engine.dispose()
    assert len(workers) == 3, f"expected all 3 workers to take runs, got {workers}"
    assert len(metrics) == 24 * 2 and len(factors) == 24 * 3


def run_fake_study(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str, name: str) -> Path:
    log = tmp_path / "executions.log"
    use_fake_run(monkeypatch, log, sleep=0.15)
    spec = write_spec(tmp_path / "study.yaml", name)
    code = run_study_command(str(spec), db=url, workers=3, progress=False)
    assert code == 0
    check_exactly_once(url, spec, name, log)
    return log


def test_three_workers_on_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    log = run_fake_study(monkeypatch, tmp_path, url, "sqlite3w")
    # Optuna recorded one trial per combination (12 x 2 seeds), in the same database.
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM trials")).scalar() == 12
    engine.dispose()
    # The same command again finds everything complete and runs nothing.
    before = len(executions(log))
    assert run_study_command(str(tmp_path / "study.yaml"), db=url, workers=3,
                             progress=False) == 0
    assert len(executions(log)) == before

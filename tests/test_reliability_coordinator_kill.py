"""kill -9 of the whole ``bsnn-bench run`` process group (the coordinator and its workers) on
SQLite and PostgreSQL: the next command finishes the study, every run completes, and only runs
that were in flight at the kill are executed twice."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from test_study_fakes import cli_cmd, executions, fake_env, wait_for_runs, write_spec

from harness.store.schema import Run, Study


def _kill_group_then_resume(url: str, tmp_path: Path, name: str) -> None:
    log = tmp_path / "executions.log"
    spec = write_spec(tmp_path / "s.yaml", name)
    proc = subprocess.Popen(cli_cmd("run", str(spec), "--db", url, "--workers", "2", "--quiet"),
                            env=fake_env(log, sleep=0.3), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    engine = create_engine(url)
    try:
        wait_for_runs(engine, lambda rs: sum(r.status == "complete" for r in rs) >= 4
                      and any(r.status == "running" for r in rs))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    again = subprocess.run(cli_cmd("run", str(spec), "--db", url, "--workers", "2", "--quiet"),
                           env=fake_env(log), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    with Session(engine) as s:
        study_id = s.scalar(select(Study.id).where(Study.name == name))
        statuses = Counter(s.scalars(select(Run.status).where(Run.study_id == study_id)))
    engine.dispose()
    assert statuses == {"complete": 24}
    ran = Counter(executions(log))
    assert len(ran) == 24
    assert sum(n - 1 for n in ran.values()) <= 2  # at most the two runs in flight


def test_kill_9_of_the_coordinator_process_group_on_sqlite(tmp_path: Path) -> None:
    _kill_group_then_resume(f"sqlite:///{tmp_path / 'r.sqlite'}", tmp_path, "kill9-sqlite")


@pytest.mark.postgres
def test_kill_9_of_the_coordinator_process_group_on_postgresql(tmp_path: Path,
                                                               postgres_url: str) -> None:
    _kill_group_then_resume(postgres_url, tmp_path, f"kill9-pg-{os.getpid()}")

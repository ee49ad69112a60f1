"""Ctrl-C: runs in flight become ``interrupted``, the command exits 130, a re-run does the rest."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from test_study_fakes import (
    cli_cmd,
    executions,
    fake_env,
    run_id_of,
    use_fake_run,
    wait_for_runs,
    write_spec,
)

from harness.store.schema import Run
from harness.study.coordinator import run_study_command
from harness.study.spec import load_spec


def test_sigint_marks_interrupted_and_resume_runs_only_what_was_left(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    log = tmp_path / "executions.log"
    spec_path = write_spec(tmp_path / "study.yaml", "ctrlc")
    # A session of its own, so the signal reaches the command and its workers as a terminal's
    # Ctrl-C does (the whole foreground process group), and nothing else.
    proc = subprocess.Popen(cli_cmd("run", str(spec_path), "--db", url, "--workers", "2"),
                            env=fake_env(log, sleep=0.5), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    engine = create_engine(url)
    try:
        wait_for_runs(engine, lambda runs: sum(r.status == "complete" for r in runs) >= 4)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, (out, err)
    assert "interrupted" in err
    with Session(engine) as s:
        after = {r.run_key: r.status for r in s.scalars(select(Run))}
        interrupted = s.scalars(select(Run).where(Run.status == "interrupted")).all()
        assert all(r.error and "SIGINT" in r.error for r in interrupted)
    assert "running" not in after.values()
    assert 1 <= list(after.values()).count("interrupted") <= 2
    complete_before = {k for k, v in after.items() if v == "complete"}
    assert 4 <= len(complete_before) < 24
    executed_before = len(executions(log))

    use_fake_run(monkeypatch, log)
    assert run_study_command(str(spec_path), db=url, workers=1, progress=False) == 0

    spec = load_spec(spec_path)
    by_key = {r.key: run_id_of(r.config) for r in spec.plan()}
    resumed = Counter(executions(log)[executed_before:])
    assert set(resumed.values()) == {1}
    assert sorted(resumed) == sorted(by_key[k] for k in by_key if k not in complete_before)
    with Session(engine) as s:
        assert {r.status for r in s.scalars(select(Run))} == {"complete"}
    engine.dispose()

"""A worker SIGKILLed mid-run: its run goes stale, is run again, and nothing is lost or doubled."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

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


def test_sigkilled_worker_run_is_rerun_and_every_run_completes_once(
        tmp_path: Path, monkeypatch: object) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    log = tmp_path / "executions.log"
    spec_path = write_spec(tmp_path / "study.yaml", "killed")
    env = fake_env(log, sleep=0.3)
    proc = subprocess.Popen(cli_cmd("run", str(spec_path), "--db", url, "--workers", "2",
                                    "--quiet"), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    engine = create_engine(url)
    try:
        runs = wait_for_runs(engine, lambda rs: sum(r.status == "complete" for r in rs) >= 3
                         and any(r.status == "running" for r in rs))
        victim = next(r for r in runs if r.status == "running")
        pid = int(victim.worker.split(":")[1])
        os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    # The command says a worker died and exits non-zero, but the other workers took the
    # killed worker's run over at once (its pid is gone on this host).
    assert proc.returncode == 1, (out, err)
    assert "worker processes exited with codes [-9]" in err
    # Re-running the command finishes whatever is left and re-runs nothing complete.
    use_fake_run(monkeypatch, log)
    assert run_study_command(str(spec_path), db=url, workers=1, progress=False) == 0

    expected = sorted(run_id_of(r.config) for r in load_spec(spec_path).plan())
    ran = Counter(executions(log))
    assert sorted(ran) == expected
    doubled = [k for k, n in ran.items() if n > 1]
    assert len(doubled) == 1 and ran[doubled[0]] == 2, ran  # only the killed run, once more
    with Session(engine) as s:
        rows = list(s.scalars(select(Run)))
        assert len(rows) == 24 and {r.status for r in rows} == {"complete"}
        killed = s.get(Run, victim.id)
        assert killed is not None and killed.attempts == 2
        assert sum(r.attempts for r in rows) == 25
    engine.dispose()

"""``bsnn-bench run --launcher none`` + ``bsnn-bench worker``: enqueue here, work anywhere; the
``--max-runs`` budget in the database; ``bsnn-bench status``; SIGTERM to a coordinator."""

from __future__ import annotations

import datetime as dt
import os
import shlex
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import Session
from test_study_fakes import cli_cmd, executions, fake_env, wait_for_runs, write_spec

from harness.store.schema import Run, StudyBudget

PY = [sys.executable, "-m", "harness.cli"]


def _run(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


def _statuses(url: str) -> Counter:
    engine = create_engine(url)
    with Session(engine) as s:
        out = Counter(s.scalars(select(Run.status)))
    engine.dispose()
    return out


def test_enqueue_then_two_workers_drain_the_study_exactly_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    log = tmp_path / "log"
    # 0.3 s per run: 24 runs outlast the second worker's start (a second or two under load),
    # so that both take part however the two processes are scheduled.
    env = fake_env(log, sleep=0.3)
    spec = write_spec(tmp_path / "s.yaml", "by-hand")
    done = _run(cli_cmd("run", str(spec), "--db", url, "--launcher", "none"), env)
    assert done.returncode == 0, done.stderr
    assert executions(log) == []
    assert _statuses(url) == {"pending": 24}
    line = next(ln for ln in done.stdout.splitlines() if "bsnn-bench worker" in ln)
    args = shlex.split(line.strip())
    assert args[:2] == ["bsnn-bench", "worker"] and "--study" in args and url in args
    procs = [subprocess.Popen(PY + args[1:], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    runs = executions(log)
    assert len(runs) == 24 and len(set(runs)) == 24
    assert _statuses(url) == {"complete": 24}
    # Both workers took part (each log line carries the pid of the worker that ran it).
    pids = {ln.split('"pid": ')[1].rstrip("}") for ln in log.read_text().splitlines()}
    assert len(pids) == 2


def test_worker_budget_lives_in_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    log = tmp_path / "log"
    env = fake_env(log)
    spec = write_spec(tmp_path / "s.yaml", "budget")
    assert _run(cli_cmd("run", str(spec), "--db", url, "--launcher", "none"), env).returncode == 0
    w = _run(cli_cmd("worker", "--db", url, "--study", "budget", "--max-runs", "3"), env)
    assert w.returncode == 0, w.stderr
    assert len(executions(log)) == 3
    # Two coordinator workers share one budget row: 5 runs in all, not 5 each.
    r = _run(cli_cmd("run", str(spec), "--db", url, "--workers", "2", "--max-runs", "5",
                     "--quiet"), env)
    assert r.returncode == 0, r.stderr
    assert len(executions(log)) == 8
    engine = create_engine(url)
    with Session(engine) as s:
        assert sorted(s.scalars(select(StudyBudget.remaining))) == [0, 0]
    engine.dispose()


def test_worker_user_errors_are_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    env = fake_env(tmp_path / "log")
    spec = write_spec(tmp_path / "s.yaml", "known")
    assert _run(cli_cmd("run", str(spec), "--db", url, "--launcher", "none"), env).returncode == 0
    for args, message in [(["--study", "nope"], "no study named 'nope'"),
                          (["--study", "known", "--device", "tpu"], "--device 'tpu'"),
                          (["--study", "known", "--max-runs", "0"], "--max-runs")]:
        w = _run(cli_cmd("worker", "--db", url, *args), env)
        assert w.returncode == 2, w.stderr
        assert w.stderr.startswith("bsnn-bench: error: ") and message in w.stderr
        assert len(w.stderr.strip().splitlines()) == 1


def test_slurm_launcher_refuses_sqlite(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", "slurm-sqlite")
    r = _run(cli_cmd("run", str(spec), "--db", f"sqlite:///{tmp_path / 'r.sqlite'}",
                     "--launcher", "slurm"), fake_env(tmp_path / "log"))
    assert r.returncode == 2 and "PostgreSQL" in r.stderr and "network file systems" in r.stderr
    assert not (tmp_path / "r.sqlite").exists()


def test_status_shows_counts_in_flight_stale_and_failed_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    env = fake_env(tmp_path / "log")
    spec = write_spec(tmp_path / "s.yaml", "watched",
                      train={"epochs": 3, "seeds": [0], "weight_decay": 0.0},
                      factors={"optimizer": ["adam", "sgd"], "train.weight_decay": [0.0, 0.5]})
    r = _run(cli_cmd("run", str(spec), "--db", url, "--max-runs", "2", "--quiet"), env)
    assert r.returncode == 1, r.stderr  # weight_decay 0.5 "diverges" in the fake run
    engine = create_engine(url)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with Session(engine) as s, s.begin():
        pending = s.scalars(select(Run).where(Run.status == "pending")
                            .order_by(Run.position)).all()
        s.execute(update(Run).where(Run.id == pending[0].id).values(
            status="running", worker="nodeA:12:abcdefabcdef:1234", heartbeat_at=now))
        s.execute(update(Run).where(Run.id == pending[1].id).values(
            status="running", worker="nodeB:13:abcdefabcdef:5678",
            heartbeat_at=now - dt.timedelta(hours=1)))
    engine.dispose()
    st = _run(cli_cmd("status", "--db", url), env)
    assert st.returncode == 0, st.stderr
    out = st.stdout
    assert "study watched (full-factorial): 4 runs: complete 1, failed 1, running 2" in out
    assert "in flight (1):" in out and "host nodeA" in out and "epoch 0/3" in out
    assert "stale (1;" in out and "host nodeB" in out and "60min ago" in out
    assert "failed (1):" in out and "training loss became NaN at epoch 1" in out
    assert "ETA: " in out
    missing = _run(cli_cmd("status", "--db", f"sqlite:///{tmp_path / 'none.sqlite'}"), env)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert not (tmp_path / "none.sqlite").exists()
    other = _run(cli_cmd("status", "--db", url, "--study", "nope"), env)
    assert other.returncode == 2 and "no study named 'nope'" in other.stderr


def test_sigterm_to_the_coordinator_stops_its_workers_and_exits_143(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    log = tmp_path / "log"
    spec = write_spec(tmp_path / "s.yaml", "term")
    proc = subprocess.Popen(cli_cmd("run", str(spec), "--db", url, "--workers", "2", "--quiet"),
                            env=fake_env(log, sleep=0.3), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    engine = create_engine(url)
    try:
        wait_for_runs(engine, lambda runs: sum(r.status == "complete" for r in runs) >= 2)
        proc.send_signal(signal.SIGTERM)  # the coordinator alone, as a scheduler would
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    engine.dispose()
    assert proc.returncode == 143, err
    pids = {int(ln.split('"pid": ')[1].rstrip("}")) for ln in log.read_text().splitlines()}
    for pid in pids:  # no orphaned worker goes on with the study
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    counts = _statuses(url)
    assert counts["running"] == 0 and counts["complete"] < 24
    assert sum(counts.values()) == 24

"""Studies on a real Slurm (the single-node cluster of ``.ci/slurm-up``) and PostgreSQL.

Skipped, with the reason, where ``sbatch`` is absent (a laptop) or no PostgreSQL answers. Runs
use the fast fake run function of ``test_study_fakes`` except where training itself matters.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from _pg import drop_study
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from test_study_fakes import cli_cmd, executions, fake_env, write_spec

from harness.store.schema import Run, Study

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def slurm() -> None:
    if shutil.which("sbatch") is None:
        pytest.skip("sbatch is not on the PATH (no Slurm here; .ci/slurm-up starts one)")
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if not any(s in state.stdout for s in ("idle", "mix", "alloc")):
        pytest.skip(f"Slurm answers but no node is up: {state.stdout.strip() or state.stderr}")


@pytest.fixture
def study(postgres_study: str) -> str:
    return postgres_study


def _runs(url: str, name: str) -> list[Run]:
    engine = create_engine(url)
    with Session(engine) as s:
        runs = list(s.scalars(select(Run).join(Study).where(Study.name == name)))
        s.expunge_all()
    engine.dispose()
    return runs


def _wait(url: str, name: str, predicate, timeout: float = 300) -> list[Run]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = _runs(url, name)
        if runs and predicate(runs):
            return runs
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for study {name}")


def _slurm_cmd(spec: Path, url: str, tmp: Path, *extra: str) -> list[str]:
    return cli_cmd("run", str(spec), "--db", url, "--launcher", "slurm", "--workers", "2",
                   "--checkpoints", str(tmp / "ck"), "--quiet", *extra)


def test_a_two_task_array_runs_every_run_exactly_once(slurm: None, postgres_url: str,
                                                      study: str, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", study)
    log = tmp_path / "log"
    t0 = time.monotonic()
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    done = subprocess.run(_slurm_cmd(spec, postgres_url, tmp_path), env=fake_env(log, 0.1),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "submitted Slurm job array" in done.stdout and "submitit logs: " in done.stdout
    logs = Path(done.stdout.split("submitit logs: ")[1].split()[0])
    assert logs.is_dir() and any(logs.iterdir())
    runs = _runs(postgres_url, study)
    assert Counter(r.status for r in runs) == {"complete": 24}
    assert len(executions(log)) == 24 and len(set(executions(log))) == 24
    tasks = {(r.versions["slurm"]["array_job_id"], r.versions["slurm"]["array_task_id"])
             for r in runs}
    assert len({job for job, _ in tasks}) == 1 and {t for _, t in tasks} <= {"0", "1"}
    first = min(r.started_at for r in runs)
    print(f"\nslurm: the command took {time.monotonic() - t0:.1f} s; the first run started "
          f"{(first - started).total_seconds():.1f} s after the command")


def test_scancel_of_a_task_then_the_same_command_completes_every_run_once(
        slurm: None, postgres_url: str, study: str, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", study)
    log = tmp_path / "log"
    env = fake_env(log, 0.4)
    proc = subprocess.Popen(_slurm_cmd(spec, postgres_url, tmp_path), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    engine = create_engine(postgres_url)
    try:
        _wait(postgres_url, study, lambda runs: sum(r.status == "complete" for r in runs) >= 3)
        array = next(r.versions["slurm"]["array_job_id"] for r in _runs(postgres_url, study)
                     if r.versions)
        subprocess.run(["scancel", f"{array}_0"], check=True)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
        engine.dispose()
    assert proc.returncode == 0, err  # the other task drained the study
    again = subprocess.run(_slurm_cmd(spec, postgres_url, tmp_path), env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert Counter(r.status for r in _runs(postgres_url, study)) == {"complete": 24}
    runs = executions(log)
    assert len(set(runs)) == 24 and len(runs) == 24, Counter(runs).most_common(2)


def test_two_workers_by_hand_drain_an_enqueued_postgresql_study(
        postgres_url: str, study: str, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", study)
    log = tmp_path / "log"
    env = fake_env(log, 0.05)
    enq = subprocess.run(cli_cmd("run", str(spec), "--db", postgres_url, "--launcher", "none"),
                         env=env, capture_output=True, text=True, timeout=300)
    assert enq.returncode == 0, enq.stderr
    workers = [subprocess.Popen(cli_cmd("worker", "--db", postgres_url, "--study", study),
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
    assert Counter(r.status for r in _runs(postgres_url, study)) == {"complete": 24}
    assert len(executions(log)) == 24 and len(set(executions(log))) == 24
    assert len({r.worker for r in _runs(postgres_url, study)}) == 2


def test_sigterm_to_a_task_mid_run_then_the_same_command_resumes_it(
        slurm: None, postgres_url: str, study: str, tmp_path: Path) -> None:
    """Real training: the run checkpoints at its epoch end, the re-run resumes from there and
    ends with the metrics of the same run trained without interruption."""
    import yaml

    env = {k: v for k, v in os.environ.items() if k != "BSNN_BENCH_RUN_FN"}
    base = {"dataset": {"name": "digits-dvs", "limit": 48},
            "model": {"channels": [4, 8], "hidden": 16},
            "train": {"epochs": 8, "batch_size": 16, "seeds": [0], "num_threads": 1},
            "factors": {"binarization": ["ste-clip"]}}
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"study": study, **base}))
    ref_name = f"{study}-ref"
    ref_spec = tmp_path / "ref.yaml"
    ref_spec.write_text(yaml.safe_dump({"study": ref_name, **base}))
    try:
        ref = subprocess.run(cli_cmd("run", str(ref_spec), "--db", postgres_url, "--quiet"),
                             env=env, capture_output=True, text=True, timeout=600)
        assert ref.returncode == 0, ref.stderr
        cmd = cli_cmd("run", str(spec), "--db", postgres_url, "--launcher", "slurm",
                      "--workers", "1", "--checkpoints", str(tmp_path / "ck"), "--quiet")
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        engine = create_engine(postgres_url)
        from harness.store.schema import RunCurve

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with Session(engine) as s:
                n = s.scalar(select(RunCurve.epoch).join(Run).join(Study)
                             .where(Study.name == study).limit(1))
            if n is not None:
                break
            time.sleep(0.1)
        (run,) = _runs(postgres_url, study)
        array = run.versions and run.versions["slurm"]["array_job_id"]
        if not array:
            array = subprocess.run(["squeue", "-h", "-o", "%F", "-n", "bsnn-worker"],
                                   capture_output=True, text=True).stdout.split()[0]
        # To the job step (the worker), as Slurm signals a task before its time limit.
        subprocess.run(["scancel", "--signal=TERM", str(array)], check=True)
        proc.communicate(timeout=300)
        engine.dispose()
        (stopped,) = _runs(postgres_url, study)
        assert stopped.status == "interrupted", (stopped.status, stopped.error)
        again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr
        (resumed,) = _runs(postgres_url, study)
        (reference,) = _runs(postgres_url, ref_name)
        assert resumed.status == "complete" and resumed.resumed_from_epoch
        from harness.results import runs_frame

        got = runs_frame(postgres_url, study).iloc[0]
        want = runs_frame(postgres_url, ref_name).iloc[0]
        for metric in ("test_acc", "val_acc_best", "train_loss", "spike_rate"):
            assert got[metric] == want[metric], metric
        assert reference.status == "complete"
    finally:
        drop_study(postgres_url, ref_name)


def _array_gone(array: str, timeout: float = 180) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-j", array], capture_output=True, text=True)
        if not out.stdout.strip():
            return True
        time.sleep(1)
    return False


def test_detach_returns_once_queued_and_ctrl_c_cancels_the_array(
        slurm: None, postgres_url: str, study: str, tmp_path: Path) -> None:
    import signal

    spec = write_spec(tmp_path / "s.yaml", study)
    env = fake_env(tmp_path / "log", 0.3)
    detached = subprocess.run(_slurm_cmd(spec, postgres_url, tmp_path, "--detach"), env=env,
                              capture_output=True, text=True, timeout=300)
    assert detached.returncode == 0, detached.stderr
    array = detached.stdout.split("submitted Slurm job array ")[1].split()[0]
    assert _array_gone(array)  # the tasks drained the study without anyone following it
    assert Counter(r.status for r in _runs(postgres_url, study)) == {"complete": 24}

    again = write_spec(tmp_path / "t.yaml", f"{study}-c")
    try:
        proc = subprocess.Popen(_slurm_cmd(again, postgres_url, tmp_path), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait(postgres_url, f"{study}-c", lambda runs: any(r.status == "complete" for r in runs))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 130, err
        array = out.split("submitted Slurm job array ")[1].split()[0]
        assert _array_gone(array, timeout=10)  # cancelled, and waited for
        runs = _runs(postgres_url, f"{study}-c")
        assert not any(r.status == "running" for r in runs)
        assert sum(r.status == "complete" for r in runs) < 24
    finally:
        drop_study(postgres_url, f"{study}-c")

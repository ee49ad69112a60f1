"""SIGTERM to a worker mid-run (what Slurm sends on preemption): the run checkpoints at the end
of its epoch, is recorded ``interrupted`` and the worker exits 143; the next worker resumes it
from the checkpoint, records ``resumed_from_epoch``, and ends with exactly the metrics of an
uninterrupted run; the live curves never hold an epoch twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from harness.store.schema import Run, RunCurve, RunMetric, Study

EPOCHS = 8


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("BSNN_BENCH_RUN_FN", None)
    return env


def _spec(path: Path, name: str) -> Path:
    path.write_text(yaml.safe_dump({
        "study": name,
        "dataset": {"name": "digits-dvs", "limit": 48},
        "model": {"channels": [4, 8], "hidden": 16},
        "train": {"epochs": EPOCHS, "batch_size": 16, "seeds": [0]},
        "factors": {"binarization": ["ste-clip"]},
    }))
    return path


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *args]


def _worker(url: str, study: str) -> list[str]:
    return _cli("worker", "--db", url, "--study", study, "--threads", "1")


def _run_row(engine: object, study: str) -> Run:
    with Session(engine) as s:
        return s.scalars(select(Run).join(Study).where(Study.name == study)).one()


def _metrics(engine: object, run_id: int) -> dict[str, float | None]:
    with Session(engine) as s:
        return {n: v for n, v in s.execute(select(RunMetric.name, RunMetric.value)
                                           .where(RunMetric.run_id == run_id))
                if n != "train_time_s"}


def _curve_rows(engine: object, run_id: int) -> dict[str, list[int]]:
    with Session(engine) as s:
        rows = s.execute(select(RunCurve.name, RunCurve.epoch).where(RunCurve.run_id == run_id)
                         .order_by(RunCurve.name, RunCurve.epoch)).all()
    out: dict[str, list[int]] = {}
    for name, epoch in rows:
        out.setdefault(name, []).append(epoch)
    return out


@pytest.mark.slow
def test_sigterm_checkpoints_and_the_next_worker_resumes_bit_exactly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    env = _env()
    for name in ("reference", "preempted"):
        r = subprocess.run(_cli("run", str(_spec(tmp_path / f"{name}.yaml", name)), "--db", url,
                                "--launcher", "none"), env=env, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr
    ref = subprocess.run(_worker(url, "reference"), env=env, capture_output=True, text=True,
                         timeout=600)
    assert ref.returncode == 0, ref.stderr
    engine = create_engine(url)
    reference = _run_row(engine, "reference")
    assert reference.status == "complete" and reference.resumed_from_epoch is None

    proc = subprocess.Popen(_worker(url, "preempted"), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # the first epoch's curves are written live
            with Session(engine) as s:
                n = s.scalar(select(func.count()).select_from(RunCurve).join(Run).join(Study)
                             .where(Study.name == "preempted"))
            if n:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    stopped = _run_row(engine, "preempted")
    assert stopped.status == "interrupted" and "SIGTERM" in (stopped.error or ""), stopped.error
    ckpt = tmp_path / "checkpoints" / "preempted" / f"run-{stopped.id}.ckpt"
    assert ckpt.is_file()
    done_before = len(_curve_rows(engine, stopped.id)["val_acc"])
    assert 1 <= done_before < EPOCHS

    again = subprocess.run(_worker(url, "preempted"), env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr
    resumed = _run_row(engine, "preempted")
    assert resumed.status == "complete"
    assert resumed.resumed_from_epoch == done_before
    assert _metrics(engine, resumed.id) == _metrics(engine, reference.id)
    curves = _curve_rows(engine, resumed.id)
    assert curves and all(epochs == list(range(EPOCHS)) for epochs in curves.values())
    assert not ckpt.exists()  # a completed run drops its checkpoint
    engine.dispose()

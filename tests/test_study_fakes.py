"""Helpers of the study tests (no tests here): a fast run function and tiny spec writers.

``fake_run`` stands in for ``harness.run.train.train_run`` in the multi-process tests, selected
through ``BSNN_BENCH_RUN_FN`` so that the workers, claims, heartbeats and result writes are the
real ones while a run takes milliseconds. Every call appends one line to ``$BSNN_FAKE_LOG``
(O_APPEND writes of one short line are atomic), so a test can count how often each run was
*executed*, not only how often it was recorded.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

FAKE = "test_study_fakes:fake_run"


@dataclasses.dataclass
class FakeResult:
    status: str
    metrics: dict[str, float]
    curves: dict[str, list[float]]
    error: str | None
    wall_time_s: float
    device: str = "cpu"


def run_id_of(cfg: Any) -> str:
    """What identifies a run in the log: its factor labels, pooling, weight decay and seed."""
    labels = cfg.labels()
    return (f"opt={labels['optimizer']}|lrs={labels['lr_schedule']}|pool={cfg.model.pool}|"
            f"wd={cfg.train.weight_decay}|seed={cfg.train.seed}")


def fake_run(cfg: Any, *, progress: bool = False, callbacks: Any = ()) -> FakeResult:
    t0 = time.perf_counter()
    log = os.environ.get("BSNN_FAKE_LOG")
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps({"run": run_id_of(cfg), "pid": os.getpid()}) + "\n")
                     .encode())
        finally:
            os.close(fd)
    time.sleep(float(os.environ.get("BSNN_FAKE_SLEEP", "0")))
    if cfg.train.weight_decay == 0.5:
        # A configuration that "diverges": NaN loss after two epochs, partial curves kept.
        return FakeResult("failed", {"train_loss": float("nan")},
                          {"train_loss": [1.0, float("nan")]},
                          "training loss became NaN at epoch 1", time.perf_counter() - t0)
    acc = 0.5 + 0.1 * cfg.train.seed + (0.05 if cfg.model.pool == "avg" else 0.0)
    if os.environ.get("BSNN_FAKE_RAISE") and cfg.model.pool == "avg":
        raise RuntimeError("boom from a buggy run")
    return FakeResult("complete", {"test_acc": acc, "val_acc_best": acc},
                      {"train_loss": [1.0, 0.5], "val_acc": [acc - 0.1, acc]}, None,
                      time.perf_counter() - t0)


def executions(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [json.loads(line)["run"] for line in log.read_text().splitlines() if line.strip()]


def write_spec(path: Path, name: str, **over: Any) -> Path:
    """A 12-combination x 2-seed study (3 optimizers x 2 schedules x 2 poolings)."""
    spec: dict[str, Any] = {
        "study": name,
        "design": "full-factorial",
        "dataset": {"name": "digits-dvs", "limit": 32},
        "train": {"epochs": 1, "seeds": [0, 1]},
        "factors": {
            "optimizer": ["adam", "sgd", {"name": "hybrid", "switch_at": 0.5}],
            "lr_schedule": ["constant", "cosine"],
            "model.pool": ["max", "avg"],
        },
    }
    for key, value in over.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def use_fake_run(monkeypatch: Any, log: Path, sleep: float = 0.0, **extra: str) -> None:
    """Make studies run in this process (and the workers it spawns) use :func:`fake_run`."""
    monkeypatch.setenv("BSNN_BENCH_RUN_FN", FAKE)
    monkeypatch.setenv("BSNN_FAKE_LOG", str(log))
    monkeypatch.setenv("BSNN_FAKE_SLEEP", str(sleep))
    monkeypatch.delenv("BSNN_FAKE_RAISE", raising=False)
    for key, value in extra.items():
        monkeypatch.setenv(key, value)


def wait_for_runs(engine: Any, predicate: Any, timeout: float = 90.0) -> list[Any]:
    """Poll the study's runs until ``predicate(runs)`` holds (a command in another process is
    filling the database); fail after ``timeout`` seconds."""
    from sqlalchemy import select
    from sqlalchemy.exc import OperationalError, ProgrammingError
    from sqlalchemy.orm import Session

    from harness.store.schema import Run

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with Session(engine) as s:
                runs = list(s.scalars(select(Run)))
        except (OperationalError, ProgrammingError):  # no tables yet (SQLite, PostgreSQL)
            runs = []
        if predicate(runs):
            return runs
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the study to reach the expected state")


def fake_env(log: Path, sleep: float = 0.0, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    tests_dir = str(Path(__file__).resolve().parent)
    env["PYTHONPATH"] = os.pathsep.join([tests_dir, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["BSNN_BENCH_RUN_FN"] = FAKE
    env["BSNN_FAKE_LOG"] = str(log)
    env["BSNN_FAKE_SLEEP"] = str(sleep)
    env.update(extra)
    return env


def cli_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *args]

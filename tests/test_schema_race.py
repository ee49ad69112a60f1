"""Many coordinators and workers starting at once on a fresh PostgreSQL database: creating our
schema and Optuna's is serialized by an advisory lock, so none of them crashes (without it two
processes collide in the catalogue with UniqueViolation). Repeated on fresh schemas."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from _pg_schema import fresh_schema
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from harness.store.schema import SCHEMA_VERSION, SchemaInfo

PROCESSES = 5
ROUNDS = 3

#: What every coordinator does first (and a worker the first half of): open the database
#: (create or check the schema), then Optuna's storage (create its tables), then a study.
STARTUP = """
import sys, time
url, start = sys.argv[1], float(sys.argv[2])
from harness.store import engine as store_engine
from harness.study.trials import _optuna_study
while time.time() < start:
    time.sleep(0.001)
store_engine.open_database(url)
_optuna_study(url, "race")
print("ok")
"""


@pytest.mark.postgres
@pytest.mark.slow
def test_processes_started_together_on_a_fresh_database_all_succeed(postgres_url: str) -> None:
    env = dict(os.environ)
    for _ in range(ROUNDS):
        with fresh_schema(postgres_url) as url:
            start = time.time() + 6.0  # after every interpreter has imported what it needs
            procs = [subprocess.Popen([sys.executable, "-c", STARTUP, url, str(start)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(PROCESSES)]
            results = [p.communicate(timeout=180) for p in procs]
            for p, (out, err) in zip(procs, results):
                assert p.returncode == 0 and out.strip() == "ok", err[-2000:]
            engine = create_engine(url)
            with Session(engine) as s:
                assert s.scalars(select(SchemaInfo.version)).all() == [SCHEMA_VERSION]
                assert s.scalar(select(func.count()).select_from(SchemaInfo)) == 1
            engine.dispose()

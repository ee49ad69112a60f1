"""The exactly-once study of ``test_workers`` on PostgreSQL, the database of multi-machine runs.

Needs the server named by ``BSNN_TEST_POSTGRES_URL`` (``.ci/run`` sets it); skipped with the
reason where it is not set or no server answers. The study name is unique and removed after.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete
from sqlalchemy.orm import Session
from test_workers import run_fake_study

from harness.store.schema import Study


@pytest.mark.postgres
def test_three_workers_on_postgresql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     postgres_url: str) -> None:
    import optuna

    url = postgres_url
    name = f"pg3w-{uuid.uuid4().hex[:10]}"
    try:
        run_fake_study(monkeypatch, tmp_path, url, name)
    finally:
        engine = create_engine(url)
        with Session(engine) as s, s.begin():
            s.execute(delete(Study).where(Study.name == name))
        engine.dispose()
        try:
            optuna.delete_study(study_name=name, storage=url)
        except KeyError:
            pass

"""Older schemas migrated in place: a database written by version 1 or 2 (built here with that
version's tables) opens, gains the new columns and tables, and keeps every run; its study levels
(version 3) are rebuilt in spec order, and the next registration of the spec rewrites them."""

from __future__ import annotations

from pathlib import Path

import pytest
from _pg_schema import fresh_schema
from sqlalchemy import Column, MetaData, Table, create_engine, insert, inspect, select
from sqlalchemy.orm import Session

from harness.results import runs_frame, study_levels
from harness.store import claims
from harness.store import engine as store_engine
from harness.store.schema import SCHEMA_VERSION, Base, Run, SchemaInfo, StudyFactor
from harness.study.register import register
from harness.study.spec import parse_spec

#: Columns each version added (tables: bench_study_factors and bench_budgets came with 3).
ADDED = {2: {"bench_runs": {"weights_path", "weights_sha256"}},
         3: {"bench_studies": {"keep_alive_until"}, "bench_runs": {"resumed_from_epoch"}}}
NEW_COLUMNS = {"bench_studies": {"keep_alive_until"},
               "bench_runs": {"resumed_from_epoch", "weights_path", "weights_sha256"}}
V1_TABLES = ("bench_schema", "bench_studies", "bench_runs", "bench_run_factors",
             "bench_run_metrics", "bench_run_curves")

SPEC = {"study": "old", "train": {"epochs": 1, "seeds": [0, 1]},
        # Spec order is not alphabetical: the rebuilt levels keep the spec's factor order.
        "factors": {"optimizer": ["sgd", "adam"], "model.pool": ["max", "avg"]}}


def _old_metadata(version: int) -> MetaData:
    """Version ``version``'s tables: today's minus what later versions added."""
    later: dict[str, set[str]] = {}
    for v, added in ADDED.items():
        if v > version:
            for table, cols in added.items():
                later.setdefault(table, set()).update(cols)
    md = MetaData()
    for name in V1_TABLES:
        table = Base.metadata.tables[name]
        cols: list[Column] = [c._copy() for c in table.columns
                              if c.name not in later.get(name, set())]
        Table(name, md, *cols)
    return md


def _write_old(url: str, version: int) -> None:
    """A database of ``version`` holding one 2x2x2 study, half of it complete."""
    md = _old_metadata(version)
    engine = create_engine(url)
    md.create_all(engine)
    spec = parse_spec(SPEC, "old.yaml")
    t = md.tables
    with engine.begin() as conn:
        conn.execute(insert(t["bench_schema"]).values(id=1, version=version))
        conn.execute(insert(t["bench_studies"]).values(
            id=1, name="old", design="full-factorial", spec=spec.raw,
            spec_hash=spec.config_hash()))
        for run in spec.plan():
            done = run.position % 2 == 0
            conn.execute(insert(t["bench_runs"]).values(
                id=run.position + 1, study_id=1, run_key=run.key,
                status="complete" if done else "pending", seed=run.seed,
                config=run.config.to_dict(), position=run.position, attempts=int(done)))
            for factor, label in run.labels.items():
                conn.execute(insert(t["bench_run_factors"]).values(
                    run_id=run.position + 1, factor=factor, level=label))
            if done:
                conn.execute(insert(t["bench_run_metrics"]).values(
                    run_id=run.position + 1, name="test_acc", value=0.5 + run.position / 100))
    engine.dispose()


def _check_migrated(url: str) -> None:
    engine = store_engine.open_database(url)
    try:
        insp = inspect(engine)
        assert {"bench_study_factors", "bench_budgets"} <= set(insp.get_table_names())
        for table, cols in NEW_COLUMNS.items():
            assert cols <= {c["name"] for c in insp.get_columns(table)}
        with Session(engine) as s:
            assert s.scalar(select(SchemaInfo.version)) == SCHEMA_VERSION == 3
            assert len(s.scalars(select(Run)).all()) == 8
            rows = s.execute(select(StudyFactor.factor, StudyFactor.labels)
                             .order_by(StudyFactor.position)).all()
        # Factor order of the stored spec, labels in run order (reference first).
        assert dict(rows) == {"model.pool": ["max", "avg"], "optimizer": ["sgd", "adam"]}
        runs = runs_frame(url, "old")
        assert runs.attrs["levels"]["optimizer"] == ["sgd", "adam"]
        assert sorted(runs.loc[runs["status"] == "complete", "test_acc"]) == [
            0.5, 0.52, 0.54, 0.56]
        # Opening again is a no-op; registering the spec rewrites the levels from the spec.
        store_engine.open_database(url)
        spec = parse_spec(SPEC, "old.yaml")
        register(engine, spec, url, spec.plan())
        assert list(study_levels(url, "old")) == ["optimizer", "model.pool"]
        # The migrated database works for a worker: claim and record with the new column.
        claim = claims.claim_next(engine, 1, "w", lease_s=60)
        assert claim is not None and claim.position == 1
        assert claims.record_result(engine, claim, "w", status="complete", metrics={},
                                    curves={}, error=None, wall_time_s=1.0, host="h",
                                    device="cpu", versions={}, resumed_from_epoch=3)
        with Session(engine) as s:
            assert s.get(Run, claim.run_id).resumed_from_epoch == 3
    finally:
        engine.dispose()


@pytest.mark.parametrize("version", [1, 2])
def test_older_sqlite_database_is_migrated_in_place(tmp_path: Path, version: int) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    _write_old(url, version)
    _check_migrated(url)


@pytest.mark.postgres
@pytest.mark.parametrize("version", [1, 2])
def test_older_postgresql_database_is_migrated_in_place(postgres_url: str,
                                                        version: int) -> None:
    with fresh_schema(postgres_url) as url:
        _write_old(url, version)
        _check_migrated(url)

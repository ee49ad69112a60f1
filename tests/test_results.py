"""harness.results: runs and curves frames read from a results database built through the ORM.

``make_study`` and ``FULL_SPEC`` are shared with tests/test_report.py: a small factorial
(binarization x optimizer x 3 seeds) whose metric values are known in closed form.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.orm import Session

import tricks
from harness.errors import StorageError
from harness.results import curves_frame, list_studies, runs_frame, study_levels
from harness.store import control
from harness.store.schema import (
    SCHEMA_VERSION,
    Base,
    Run,
    RunCurve,
    RunFactor,
    RunMetric,
    SchemaInfo,
    Study,
    encode_float,
)
from harness.study.factors import value_label

FULL_SPEC: dict[str, Any] = {
    "study": "full",
    "design": "full-factorial",
    "dataset": {"name": "digits-dvs", "time_steps": 8},
    "model": {"arch": "conv"},
    "train": {"epochs": 4, "seeds": [0, 1, 2]},
    "factors": {
        "binarization": ["fp32", "ste-clip"],
        "optimizer": ["adam", "sgd", {"name": "hybrid", "switch_at": 0.5}],
    },
}

BIN_EFFECT = {0: 0.0, 1: -0.06}           # ste-clip loses 6 points, always
OPT_EFFECT = {0: 0.0, 1: -0.02, 2: 0.004}  # sgd a little worse, hybrid about even with adam
PARAMS = 10_000


def metric_values(b: int, o: int, seed: int) -> dict[str, float]:
    """The known final metrics of run (binarization index b, optimizer index o, seed)."""
    # Deterministic "noise" that differs per combination and seed but never cancels an effect.
    noise = ((7 * b + 3 * o + 5 * seed) % 11 - 5) / 1000.0
    acc = 0.85 + BIN_EFFECT[b] + OPT_EFFECT[o] + noise
    bits = PARAMS * (32 if b == 0 else 1)
    return {
        "test_acc": acc,
        "test_acc_shift_bn": acc - 0.01 - ((seed + o) % 3) / 1000.0,
        "val_acc_best": acc + 0.01,
        "epochs_to_95pct": math.inf if (b, o, seed) == (1, 1, 2) else 2.0 + o,
        "spike_rate": 0.1 + 0.01 * b + 0.001 * seed,
        "synops_per_sample": 1e5 * (1 + 0.1 * o) + 100 * seed,
        "weight_memory_bits": float(bits),
        "weight_memory_ratio": bits / (32 * PARAMS),
        "energy_uj_per_sample": (5.0 if b == 0 else 0.5) + 0.01 * o,
        "train_time_s": 10.0 + o,
        "switch_epoch": 2.0 if o == 2 else math.nan,
        "params": float(PARAMS),
    }


def curve_values(b: int, o: int, seed: int, epochs: int = 4) -> list[float]:
    final = metric_values(b, o, seed)["val_acc_best"]
    return [final * (e + 1) / epochs for e in range(epochs)]


def level_label(factor: str, level: Any) -> str:
    """The label the coordinator stores (what bench_study_factors and bench_run_factors hold)."""
    if factor in tricks.registry():
        return tricks.make(factor, level).label()
    return value_label(level)


def labels_of(spec: dict[str, Any]) -> dict[str, list[str]]:
    return {f: [level_label(f, lv) for lv in levels] for f, levels in spec["factors"].items()}


def make_study(url: str, spec: dict[str, Any], *, statuses: dict[int, str] | None = None,
               values=metric_values, create: bool = True,
               combos: set[tuple[int, int]] | None = None) -> None:
    """Write ``spec``'s full grid (every combination x seed) into ``url`` through the ORM.

    ``statuses`` maps a run position to a status other than complete; pending runs carry no
    metrics, a failed run an error and a partial curve. ``combos`` keeps only these (level
    index, level index) combinations (a one-at-a-time design).
    """
    engine = create_engine(url)
    if create:
        Base.metadata.create_all(engine)
    labels = labels_of(spec)
    factors = list(labels)
    statuses = statuses or {}
    t0 = dt.datetime(2026, 1, 2, 3, 4, 5)
    with Session(engine) as s, s.begin():
        if create and s.get(SchemaInfo, 1) is None:
            s.add(SchemaInfo(id=1, version=SCHEMA_VERSION))
        study = Study(name=spec["study"], design=spec["design"], spec=spec, spec_hash="h" * 64)
        s.add(study)
        s.flush()
        # As the coordinator's registration writes them (harness.study.register).
        control.write_levels(s, study.id, labels, {"surrogate": "atan"})
        grid = [(b, o) for b in range(len(labels[factors[0]]))
                for o in range(len(labels[factors[1]])) if combos is None or (b, o) in combos]
        position = 0
        for b, o in grid:
            for seed in spec["train"]["seeds"]:
                levels = {factors[0]: labels[factors[0]][b], factors[1]: labels[factors[1]][o]}
                key = "|".join(f"{f}={levels[f]}" for f in sorted(levels)) + f"|seed={seed}"
                status = statuses.get(position, "complete")
                run = Run(study_id=study.id, run_key=key, status=status, seed=seed,
                          position=position, config={"model": {"arch": "conv"},
                                                     "train": {"seed": seed}},
                          attempts=1 if status != "pending" else 0)
                if status in ("complete", "failed"):
                    run.started_at = t0 + dt.timedelta(minutes=position)
                    run.finished_at = run.started_at + dt.timedelta(seconds=30)
                    run.wall_time_s = 30.0 + position
                    run.host = "hostA" if position % 2 else "hostB"
                    run.device = "cpu"
                    run.versions = {"python": "3.11.9", "torch": "2.13.0"}
                if status == "failed":
                    run.error = f"loss became NaN at epoch 1 (run {position})"
                s.add(run)
                s.flush()
                for f, lab in levels.items():
                    s.add(RunFactor(run_id=run.id, factor=f, level=lab))
                if status == "complete":
                    for name, v in values(b, o, seed).items():
                        val, special = encode_float(v)
                        s.add(RunMetric(run_id=run.id, name=name, value=val, special=special))
                if status in ("complete", "failed"):
                    curve = curve_values(b, o, seed)
                    if status == "failed":
                        curve = [curve[0], math.nan]
                    for epoch, v in enumerate(curve):
                        val, special = encode_float(v)
                        s.add(RunCurve(run_id=run.id, name="val_acc", epoch=epoch, value=val,
                                       special=special))
                position += 1
    engine.dispose()


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('results') / 'results.sqlite'}"
    make_study(url, FULL_SPEC)
    partial = dict(FULL_SPEC, study="partial")
    make_study(url, partial, statuses={1: "failed", 4: "pending", 7: "running", 10: "pending"},
               create=False)
    return url


def test_runs_frame_columns_and_values(db_url: str) -> None:
    runs = runs_frame(db_url, "full")
    assert list(runs.columns[:6]) == ["run_id", "run_key", "status", "seed", "binarization",
                                      "optimizer"]
    assert {"test_acc", "spike_rate", "weight_memory_bits", "wall_time_s", "host", "device",
            "started_at", "finished_at"} <= set(runs.columns)
    assert len(runs) == 18 and set(runs["status"]) == {"complete"}
    labels = labels_of(FULL_SPEC)
    assert runs.attrs["levels"] == labels
    assert runs.attrs["factors"] == ["binarization", "optimizer"]
    for _, row in runs.iterrows():
        b = labels["binarization"].index(row["binarization"])
        o = labels["optimizer"].index(row["optimizer"])
        expected = metric_values(b, o, row["seed"])
        assert row["test_acc"] == pytest.approx(expected["test_acc"])
        assert row["weight_memory_bits"] == expected["weight_memory_bits"]
        assert f"seed={row['seed']}" in row["run_key"]
    # Specials decode to real IEEE values, not NULL.
    inf_run = runs[(runs["binarization"] == labels["binarization"][1])
                   & (runs["optimizer"] == labels["optimizer"][1]) & (runs["seed"] == 2)]
    assert math.isinf(inf_run["epochs_to_95pct"].item())
    adam = runs[runs["optimizer"] == labels["optimizer"][0]]
    assert adam["switch_epoch"].isna().all()
    assert runs["wall_time_s"].tolist() == [30.0 + i for i in range(18)]


def test_runs_frame_status_filter_and_partial(db_url: str) -> None:
    runs = runs_frame(db_url, "partial")
    assert runs["status"].value_counts().to_dict() == {"complete": 14, "pending": 2,
                                                       "failed": 1, "running": 1}
    failed = runs_frame(db_url, "partial", status="failed")
    assert len(failed) == 1 and "loss became NaN" in failed["error"].item()
    assert failed["test_acc"].isna().all()
    some = runs_frame(db_url, "partial", status=["pending", "running"])
    assert sorted(some["status"]) == ["pending", "pending", "running"]
    with pytest.raises(StorageError, match="unknown run status 'done'"):
        runs_frame(db_url, "partial", status="done")


def test_study_without_runs_keeps_spec_levels(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    make_study(url, FULL_SPEC, combos=set())
    runs = runs_frame(url, "full")
    assert runs.empty and runs.attrs["levels"] == labels_of(FULL_SPEC)
    assert list(runs.columns[:6]) == ["run_id", "run_key", "status", "seed", "binarization",
                                      "optimizer"]


def test_curves_frame_long_form(db_url: str) -> None:
    curves = curves_frame(db_url, "full", "val_acc")
    assert list(curves.columns) == ["run_id", "status", "binarization", "optimizer", "seed",
                                    "epoch", "value"]
    assert len(curves) == 18 * 4
    labels = labels_of(FULL_SPEC)
    first = curves[curves["run_id"] == curves["run_id"].min()]
    b = labels["binarization"].index(first["binarization"].iloc[0])
    o = labels["optimizer"].index(first["optimizer"].iloc[0])
    assert first["epoch"].tolist() == [0, 1, 2, 3]
    assert first["value"].tolist() == pytest.approx(curve_values(b, o, first["seed"].iloc[0]))
    failed = curves_frame(db_url, "partial", "val_acc", status="failed")
    assert len(failed) == 2 and math.isnan(failed["value"].iloc[1])
    assert curves_frame(db_url, "full", "no_such_curve").empty


def test_engine_accepted_and_studies_listed(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        assert list_studies(engine) == ["full", "partial"]
        assert len(runs_frame(engine, "full", status="complete")) == 18
    finally:
        engine.dispose()


def test_missing_database_is_an_error_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nope.sqlite"
    with pytest.raises(StorageError, match="nope.sqlite' does not exist"):
        runs_frame(f"sqlite:///{path}", "x")
    assert not path.exists()


def test_foreign_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE unrelated (x INTEGER)")
    with pytest.raises(StorageError, match="holds no bsnn-bench results"):
        list_studies(f"sqlite:///{path}")
    assert inspect(engine).get_table_names() == ["unrelated"]
    engine.dispose()


def test_schema_version_mismatch_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v.sqlite'}"
    make_study(url, FULL_SPEC)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE bench_schema SET version = {SCHEMA_VERSION + 1}")
    engine.dispose()
    with pytest.raises(StorageError, match=f"schema version {SCHEMA_VERSION + 1}"):
        runs_frame(url, "full")


def test_unknown_study_names_it(db_url: str) -> None:
    with pytest.raises(StorageError, match="no study named 'nope'.*'full', 'partial'"):
        runs_frame(db_url, "nope")


def test_levels_come_from_the_database_in_spec_order(db_url: str) -> None:
    assert study_levels(db_url, "full") == labels_of(FULL_SPEC)
    runs = runs_frame(db_url, "full")
    assert runs.attrs["levels"] == labels_of(FULL_SPEC)
    assert runs.attrs["constant_levels"] == {"surrogate": "atan"}


def test_frames_match_plain_read_sql(db_url: str) -> None:
    """The documented tables give the same numbers as the frame (notebook users mix both)."""
    engine = create_engine(db_url)
    try:
        raw = pd.read_sql(
            "SELECT r.id AS run_id, m.value FROM bench_run_metrics m JOIN bench_runs r "
            "ON r.id = m.run_id JOIN bench_studies s ON s.id = r.study_id "
            "WHERE s.name = 'full' AND m.name = 'test_acc' ORDER BY r.id", engine)
    finally:
        engine.dispose()
    runs = runs_frame(db_url, "full").sort_values("run_id")
    assert runs["test_acc"].tolist() == pytest.approx(raw["value"].tolist())


@pytest.mark.postgres
def test_runs_frame_on_postgresql(postgres_url: str) -> None:
    """The same frames from PostgreSQL (the many-machines database), in a study of its own."""
    import uuid

    url = postgres_url
    name = f"results-test-{uuid.uuid4().hex[:12]}; DROP TABLE bench_runs; --"
    make_study(url, dict(FULL_SPEC, study=name), statuses={3: "failed"})
    try:
        runs = runs_frame(url, name)
        assert len(runs) == 18 and (runs["status"] == "failed").sum() == 1
        assert runs.attrs["levels"] == labels_of(FULL_SPEC)
        assert runs["epochs_to_95pct"].max() == math.inf
        assert name in list_studies(url)
        curves = curves_frame(url, name, "val_acc", status="complete")
        assert len(curves) == 17 * 4
    finally:
        engine = create_engine(url)
        with Session(engine) as s, s.begin():
            s.delete(s.scalars(select(Study).where(Study.name == name)).one())
        engine.dispose()


def test_sqlite_reads_are_one_snapshot(tmp_path: Path) -> None:
    """A result committed while a frame is being read must not half-appear in it."""
    from sqlalchemy import func

    from harness.results import connect

    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    make_study(url, FULL_SPEC)
    writer = create_engine(url)
    with writer.connect() as conn:
        # The runner's databases are in WAL mode (readers and a writer work side by side).
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    with connect(url) as engine, Session(engine) as reader:
        before = reader.scalar(select(func.count()).select_from(RunMetric))
        with Session(writer) as s, s.begin():
            s.add(RunMetric(run_id=1, name="late_metric", value=1.0))
        assert reader.scalar(select(func.count()).select_from(RunMetric)) == before
    writer.dispose()
    assert "late_metric" in runs_frame(url, "full").columns

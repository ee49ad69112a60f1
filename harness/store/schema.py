"""The results database: SQLAlchemy 2 ORM models of the public ``bench_*`` tables.

Optuna keeps its own tables (``studies``, ``trials``, ``trial_*``, ``version_info``,
``alembic_version``) in the same database; ours all start with ``bench_`` so they never collide.
The schema version lives in ``bench_schema``; :func:`harness.store.engine.open_database` migrates a
database written by an older version or refuses it with the command to run.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "SCHEMA_VERSION",
    "Base",
    "RunCurve",
    "RunFactor",
    "RunMetric",
    "SchemaInfo",
    "Study",
    "Run",
    "FINAL_STATUSES",
    "RUN_STATUSES",
    "encode_float",
    "decode_float",
]

#: Bump on every change of the tables below, and add a migration step in harness.store.engine.
#: 2: ``bench_runs.weights_path`` and ``weights_sha256`` (the run's kept best weights).
SCHEMA_VERSION = 2

#: ``pruned``: a ``design: search`` trial stopped early by Optuna's pruner (partial curves kept).
RUN_STATUSES = ("pending", "running", "complete", "failed", "interrupted", "pruned")
#: Statuses a run keeps for good: it is done, one way or the other.
FINAL_STATUSES = ("complete", "failed", "pruned")


def utcnow() -> dt.datetime:
    """Naive UTC now, as every timestamp column stores it."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class SchemaInfo(Base):
    """One row: the schema version this database was written with."""

    __tablename__ = "bench_schema"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Study(Base):
    __tablename__ = "bench_studies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    design: Mapped[str] = mapped_column(String(32), nullable=False)
    #: The spec as loaded from YAML (plain JSON types).
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    #: Hash of the parts of the spec that define what a run computes (not its levels list).
    spec_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    runs: Mapped[list[Run]] = relationship(back_populates="study", cascade="all, delete-orphan")
    __table_args__ = (UniqueConstraint("name", name="uq_bench_studies_name"),)


class Run(Base):
    __tablename__ = "bench_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("bench_studies.id", ondelete="CASCADE"),
                                          nullable=False)
    #: Canonical factor levels + seed; unique per study, so a run is claimed at most once.
    run_key: Mapped[str] = mapped_column(String(1024), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    seed: Mapped[int] = mapped_column(Integer, nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Position in the study's run order (grid order; search trials by trial number).
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: Optuna trial number that ran it, when Optuna drove the run.
    trial_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Who holds it and until when: a worker that dies stops renewing, and the run goes stale.
    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    wall_time_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    device: Mapped[str | None] = mapped_column(String(255), nullable=True)
    versions: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: The kept best-validation weights (harness.deploy.weights): file path and its SHA-256.
    #: Nothing reads them but export; a deleted file only makes that run unexportable.
    weights_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    weights_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)

    study: Mapped[Study] = relationship(back_populates="runs")
    factors: Mapped[list[RunFactor]] = relationship(cascade="all, delete-orphan")
    metrics: Mapped[list[RunMetric]] = relationship(cascade="all, delete-orphan")
    curves: Mapped[list[RunCurve]] = relationship(cascade="all, delete-orphan")

    __table_args__ = (
        UniqueConstraint("study_id", "run_key", name="uq_bench_runs_study_key"),
        # The claim query: next pending/stale run of a study, in order.
        Index("ix_bench_runs_study_status", "study_id", "status", "position"),
    )


class RunFactor(Base):
    __tablename__ = "bench_run_factors"
    run_id: Mapped[int] = mapped_column(ForeignKey("bench_runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    factor: Mapped[str] = mapped_column(String(255), primary_key=True)
    #: Canonical label of the level (``hybrid(switch_at=0.5)``).
    level: Mapped[str] = mapped_column(String(1024), nullable=False)


class RunMetric(Base):
    """Final scalars. NaN and ±inf are kept: ``value`` is NULL and ``special`` says which."""

    __tablename__ = "bench_run_metrics"
    run_id: Mapped[int] = mapped_column(ForeignKey("bench_runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    special: Mapped[str | None] = mapped_column(String(8), nullable=True)


class RunCurve(Base):
    """Per-epoch learning curves, long form."""

    __tablename__ = "bench_run_curves"
    run_id: Mapped[int] = mapped_column(ForeignKey("bench_runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    special: Mapped[str | None] = mapped_column(String(8), nullable=True)


def encode_float(x: float) -> tuple[float | None, str | None]:
    """Split a float into (finite value or None, 'nan'/'inf'/'-inf' or None) for storage."""
    x = float(x)
    if math.isnan(x):
        return None, "nan"
    if math.isinf(x):
        return None, "inf" if x > 0 else "-inf"
    return x, None


def decode_float(value: float | None, special: str | None) -> float:
    if special is not None:
        return float(special)
    return float("nan") if value is None else float(value)



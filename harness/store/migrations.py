"""Schema migrations: ``MIGRATIONS[v]`` upgrades a database from schema version v to v + 1.

Each step runs inside :func:`harness.store.engine.open_database`'s (or ``migrate``'s)
transaction, under the schema lock, on its connection.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy import Connection, insert, select, text

from harness.store.schema import Base, Run, RunFactor, Study, StudyBudget, StudyFactor

__all__ = ["MIGRATIONS"]


def _add_weights_columns(s: Connection) -> None:
    """1 -> 2: where each run's kept weights are, and their SHA-256; the energy of schema 1
    (synaptic operations only) is renamed, so that it never mixes with the new total, which
    adds memory access (harness.run.costs): re-run a study for the new energy metrics."""
    s.execute(text("ALTER TABLE bench_runs ADD COLUMN weights_path VARCHAR(1024)"))
    s.execute(text("ALTER TABLE bench_runs ADD COLUMN weights_sha256 VARCHAR(64)"))
    s.execute(text("UPDATE bench_run_metrics SET name = 'energy_synops_only_uj_per_sample' "
                   "WHERE name = 'energy_uj_per_sample'"))


def _migrate_2_to_3(conn: Connection) -> None:
    """Version 3: study factors and levels, run budgets, search keep-alive, resumed epochs.

    An older study's levels are rebuilt from its stored spec (factor order) and the labels
    its runs stored, in run order (grid order starts with the reference combination, so the
    reference level comes first); the next ``bsnn-bench run`` of the spec rewrites them from
    the spec itself.
    """
    conn.execute(text("ALTER TABLE bench_runs ADD COLUMN resumed_from_epoch INTEGER"))
    conn.execute(text("ALTER TABLE bench_studies ADD COLUMN keep_alive_until TIMESTAMP"))
    Base.metadata.create_all(conn, tables=[StudyFactor.__table__, StudyBudget.__table__])
    studies = conn.execute(select(Study.id, Study.spec)).all()
    for study_id, spec in studies:
        if isinstance(spec, str):
            spec = json.loads(spec)
        rows = conn.execute(
            select(RunFactor.factor, RunFactor.level).join(Run, Run.id == RunFactor.run_id)
            .where(Run.study_id == study_id).order_by(Run.position, Run.id)).all()
        seen: dict[str, list[str]] = {}
        for factor, level in rows:
            labels = seen.setdefault(factor, [])
            if level not in labels:
                labels.append(level)
        named = list((spec or {}).get("factors") or {}) if isinstance(spec, dict) else []
        order = [f for f in named if f in seen] + [f for f in seen if f not in named]
        for i, factor in enumerate(order):
            conn.execute(insert(StudyFactor).values(study_id=study_id, factor=factor,
                                                    position=i, varied=True,
                                                    labels=seen[factor]))


MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _add_weights_columns,
                                                       2: _migrate_2_to_3}

"""Registering a study in the database: create its row or check the spec against it.

A spec changed under the same study name is refused, unless the change only adds levels or seeds
(a grid design then runs just the new combinations). Every registration (re)writes the study's
factors and level labels in spec order (``bench_study_factors``): that is where the read side
(:mod:`harness.results`, reports) takes them from, without the trick registry or this parser.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import tricks
from harness.config import RunConfig
from harness.errors import StorageError
from harness.store import control
from harness.store.schema import Study
from harness.study.plan import check_spec_change
from harness.study.spec import PlannedRun, StudySpec

__all__ = ["register"]


def _levels(spec: StudySpec) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The varied factors' labels in spec order, and the label of every trick factor the study
    leaves at its base configuration's level."""
    varied = {f.name: list(f.labels) for f in spec.factors}
    base = RunConfig.from_dict(spec.base)
    constant = {name: base.level(name).label() for name in tricks.registry()
                if name not in varied}
    return varied, constant


def register(engine: Any, spec: StudySpec, url: str, planned: list[PlannedRun]) -> int:
    """Create or check the study row; refuse a changed spec unless it only adds runs."""
    for _ in range(3):
        try:
            return _register_once(engine, spec, url, planned)
        except IntegrityError:
            continue  # another machine registered the same study just now: check against it
    raise StorageError(f"cannot register study '{spec.name}' in {url}")


def _register_once(engine: Any, spec: StudySpec, url: str, planned: list[PlannedRun]) -> int:
    with Session(engine) as s, s.begin():
        row = s.scalars(select(Study).where(Study.name == spec.name)).first()
        if row is None:
            row = Study(name=spec.name, design=spec.design, spec=spec.raw,
                        spec_hash=spec.config_hash())
            s.add(row)
            s.flush()
            control.write_levels(s, row.id, *_levels(spec))
            return int(row.id)
        check_spec_change(s, row, spec, url, {p.key for p in planned})
        row.spec = spec.raw
        control.write_levels(s, row.id, *_levels(spec))
        return int(row.id)

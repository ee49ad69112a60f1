"""Registering a study in the database: create its row or check the spec against it.

A spec changed under the same study name is refused, unless the change only adds levels or seeds
(a grid design then runs just the new combinations). Every registration (re)writes the study's
factors and level labels in spec order (``bench_study_factors``): that is where the read side
(:mod:`harness.results`, reports) takes them from, without the trick registry or this parser.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import tricks
from harness.config import RunConfig
from harness.errors import StorageError
from harness.store import control
from harness.store.schema import Run, Study
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


def _spec_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    out = []
    for k in keys:
        if k in ("factors", "description", "grid_cap"):
            continue
        o, n = old.get(k), new.get(k)
        if isinstance(o, Mapping) and isinstance(n, Mapping):
            for sub in sorted(set(o) | set(n)):
                if sub != "seeds" and o.get(sub) != n.get(sub):
                    out.append(f"{k}.{sub}")
        elif o != n:
            out.append(k)
    of, nf = old.get("factors") or {}, new.get("factors") or {}
    if set(of) != set(nf):
        out.append("the set of factors")
    return out


def register(engine: Any, spec: StudySpec, url: str, planned: list[PlannedRun]) -> int:
    """Create or check the study row; refuse a changed spec unless it only adds runs."""
    for _ in range(3):
        try:
            return _register_once(engine, spec, url, planned)
        except IntegrityError:
            continue  # another machine registered the same study just now: check against it
    raise StorageError(f"cannot register study '{spec.name}' in {url}")


def _register_once(engine: Any, spec: StudySpec, url: str, planned: list[PlannedRun]) -> int:
    def refuse(why: str) -> StorageError:
        allowed = ("only adding levels or seeds is allowed" if spec.design != "search"
                   else "a search study's spec cannot change")
        return StorageError(
            f"study '{spec.name}' in {url} was created from a different spec ({why}); "
            f"{allowed}: use a new study name (study: ...) or restore the spec")

    with Session(engine) as s, s.begin():
        row = s.scalars(select(Study).where(Study.name == spec.name)).first()
        if row is None:
            row = Study(name=spec.name, design=spec.design, spec=spec.raw,
                        spec_hash=spec.config_hash())
            s.add(row)
            s.flush()
            control.write_levels(s, row.id, *_levels(spec))
            return int(row.id)
        if row.spec_hash != spec.config_hash():
            changed = ", ".join(_spec_diff(row.spec, spec.raw)) or "the run settings"
            raise refuse(f"changed: {changed}")
        reordered = spec.level_order_change(row.spec)
        if reordered:
            raise refuse(reordered)
        if spec.design != "search":
            old_keys = set(s.scalars(select(Run.run_key).where(Run.study_id == row.id)))
            lost = sorted(old_keys - {p.key for p in planned})
            if lost:
                raise refuse(f"it removes {len(lost)} existing runs, e.g. {lost[0]}")
        elif row.spec != spec.raw:
            raise refuse("changed: " + (", ".join(_spec_diff(row.spec, spec.raw)) or "factors"))
        row.spec = spec.raw
        control.write_levels(s, row.id, *_levels(spec))
        return int(row.id)

"""The plan of a study before it runs: every check ``run`` makes, read-only, and the dry-run text.

``bsnn-bench run --dry-run`` calls :func:`check_plan`, which makes the checks ``run`` makes
before it trains anything (datasets present, database reachable, schema version readable, the
spec not changed in a way the study's database refuses), writes nothing, and counts the runs
still to do; :func:`describe_plan` turns that into text with a time estimate of those runs.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from harness.errors import DatasetMissingError, StorageError
from harness.fraction import FRACTIONAL, alias_structure
from harness.store import engine as store_engine
from harness.store.schema import SCHEMA_VERSION, Run, SchemaInfo, Study
from harness.study.spec import StudySpec

#: Statuses whose runs a plain ``run`` trains (failed ones only with ``--retry-failed``).
_TODO = ("pending", "running", "interrupted")


def _check_datasets(spec: StudySpec) -> None:
    """A missing dataset fails here, once, before any run starts (DatasetMissingError)."""
    from harness.data.pipeline import check_dataset

    # Only dataset.* factors change the dataset: check each combination of theirs, the other
    # factors at their reference level (any design, search included, and fast on big grids).
    data_factors = [f for f in spec.factors if f.name.startswith("dataset.")]
    seen: set[str] = set()
    for idx in itertools.product(*(range(len(f.labels)) for f in data_factors)):
        combo = {f.name: 0 for f in spec.factors}
        combo.update({f.name: i for f, i in zip(data_factors, idx)})
        cfg = spec.config_for(combo, spec.seeds[0])
        key = repr(cfg.dataset)
        if key not in seen:
            seen.add(key)
            try:
                check_dataset(cfg)
            except DatasetMissingError as exc:
                # The hint for a study: its file, not train's --set.
                raise DatasetMissingError(
                    f"{exc} (in {spec.path}: dataset: {{download: true}})") from None


def spec_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The settings (dotted) that differ between two raw specs, besides factors and seeds."""
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


def check_spec_change(session: Session, row: Study, spec: StudySpec, url: str,
                      planned_keys: set[str]) -> None:
    """Refuse (StorageError) a spec changed under the registered study's name, unless the
    change only adds levels or seeds (grid designs)."""
    def refuse(why: str) -> StorageError:
        allowed = ("only adding levels or seeds is allowed" if spec.design != "search"
                   else "a search study's spec cannot change")
        return StorageError(
            f"study '{spec.name}' in {url} was created from a different spec ({why}); "
            f"{allowed}: use a new study name (study: ...) or restore the spec")

    if row.spec_hash != spec.config_hash():
        changed = ", ".join(spec_diff(row.spec, spec.raw)) or "the run settings"
        raise refuse(f"changed: {changed}")
    reordered = spec.level_order_change(row.spec)
    if reordered:
        raise refuse(reordered)
    if spec.design != "search":
        old_keys = set(session.scalars(select(Run.run_key).where(Run.study_id == row.id)))
        lost = sorted(old_keys - planned_keys)
        if lost:
            raise refuse(f"it removes {len(lost)} existing runs, e.g. {lost[0]}")
    elif row.spec != spec.raw:
        raise refuse("changed: " + (", ".join(spec_diff(row.spec, spec.raw)) or "factors"))


def check_schema_version(url: str, version: int) -> str | None:
    """Raise what ``run`` would raise for this stored schema version; a note when ``run``
    would migrate the database in place, None when it is current. Writes nothing."""
    if version == SCHEMA_VERSION:
        return None
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"database '{url}' has results schema version {version}, newer than this "
            f"bsnn-bench (version {SCHEMA_VERSION}); upgrade it: pip install --upgrade bsnn-bench")
    if any(v not in store_engine.MIGRATIONS for v in range(version, SCHEMA_VERSION)):
        raise StorageError(
            f"database '{url}' has results schema version {version} and no migration to "
            f"version {SCHEMA_VERSION} exists; open it with the bsnn-bench that wrote it, "
            f"or start a new database: bsnn-bench run SPEC --db sqlite:///new-results.sqlite")
    return f"run would upgrade the database from schema version {version} to {SCHEMA_VERSION}"


@dataclasses.dataclass
class PlanState:
    """What ``run`` would find: runs per status already recorded, and how many it would train."""

    total: int
    todo: int
    counts: dict[str, int]
    notes: list[str]


def check_plan(spec: StudySpec, url: str, *, retry_failed: bool = False) -> PlanState:
    """Every check ``run`` makes before training, read-only; the runs still to do."""
    _check_datasets(spec)
    total = spec.run_count()
    state = PlanState(total=total, todo=total, counts={}, notes=[])
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        state.notes.append(f"database {url} does not exist yet: run creates it")
        return state
    engine = store_engine.make_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        with Session(store_engine.reader(engine)) as s:
            if "bench_schema" in tables:
                version = s.scalars(select(SchemaInfo.version)).first()
                note = check_schema_version(url, version) if version is not None else None
                if note:
                    state.notes.append(note)
            row = (s.scalars(select(Study).where(Study.name == spec.name)).first()
                   if "bench_studies" in tables else None)
            if row is None:
                state.notes.append(f"study '{spec.name}' is new in {url}")
                return state
            planned = {p.key for p in spec.plan()} if spec.design != "search" else set()
            check_spec_change(s, row, spec, url, planned)
            stored = dict(s.execute(select(Run.run_key, Run.status)
                                    .where(Run.study_id == row.id)).tuples().all())
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot open database '{url}': "
                           f"{getattr(exc, 'orig', None) or exc}") from None
    finally:
        engine.dispose()
    counts: dict[str, int] = {}
    for status in stored.values():
        counts[status] = counts.get(status, 0) + 1
    state.counts = counts
    redo = (*_TODO, "failed") if retry_failed else _TODO
    if spec.design == "search":
        finished = sum(n for st, n in counts.items() if st not in redo)
        state.todo = max(0, total - finished)
    else:
        state.todo = sum(1 for k in planned if stored.get(k, "pending") in redo)
    return state


def describe_plan(spec: StudySpec, url: str, workers: int, state: PlanState | None = None
                  ) -> str:
    state = state or PlanState(spec.run_count(), spec.run_count(), {}, [])
    lines = [f"study {spec.name} ({spec.design}) from {spec.path}"]
    for f in spec.factors:
        lines.append(f"  {f.name} ({len(f.labels)}): {', '.join(f.labels)}")
    if spec.design == FRACTIONAL:
        lines.append("  alias structure:")
        lines += [f"    {line}" for line in
                  alias_structure({f.name: f.labels for f in spec.factors}).lines()]
    lines.append(f"  seeds ({len(spec.seeds)}): {', '.join(map(str, spec.seeds))}")
    if spec.seed_rule is not None:
        lines.append(spec.seed_rule.describe() + f" (at most {spec.max_run_count()} runs)")
    combos = spec.combination_count()
    what = "trials" if spec.design == "search" else "combinations"
    lines.append(f"{spec.run_count()} runs = {combos} {what} x {len(spec.seeds)} seeds")
    if state.counts:
        shown = ", ".join(f"{n} {st}" for st, n in sorted(state.counts.items()))
        lines.append(f"in the database: {shown}")
    lines += [f"note: {n}" for n in state.notes]
    lines.append(f"to run: {state.todo} of {state.total}")
    if state.todo == 0:
        lines.append("time: nothing to do (every run is recorded; --retry-failed re-runs the "
                     "failed ones)" if state.counts.get("failed") else "time: nothing to do")
        return "\n".join(lines)
    est = _estimate_run_s(spec, url)
    if est is None:
        lines.append("time: no estimate (no finished run of this dataset/model in the "
                     "database yet; try --max-runs 1 first)")
    else:
        total = est * state.todo / workers
        lines.append(f"time: about {_fmt_s(total)} for {state.todo} runs with {workers} "
                     f"worker(s) ({est:.1f} s per run from earlier runs in {url})")
    return "\n".join(lines)


def _estimate_run_s(spec: StudySpec, url: str) -> float | None:
    """Seconds per run from finished runs with the same dataset and model, read-only.

    Their time per epoch is scaled to this spec's epochs; None when there is nothing to go by.
    """
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return None
    try:
        engine = store_engine.make_engine(url)
        with Session(engine) as s:
            rows = s.execute(select(Run.config, Run.wall_time_s).where(
                Run.status == "complete", Run.wall_time_s.is_not(None))).all()
        engine.dispose()
    except Exception:  # noqa: BLE001 - an estimate never stops a dry run
        return None
    ref = spec.config_for({f.name: 0 for f in spec.factors}, spec.seeds[0]).to_dict()
    per_epoch = [wall / max(1, int(cfg["train"]["epochs"])) for cfg, wall in rows
                 if cfg.get("dataset") == ref["dataset"] and cfg.get("model") == ref["model"]]
    if not per_epoch:
        return None
    return sum(per_epoch) / len(per_epoch) * ref["train"]["epochs"]


def _fmt_s(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"

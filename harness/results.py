"""Read a study's runs out of the results database as pandas frames, for reports and notebooks.

Example::

    from harness.results import runs_frame, curves_frame
    runs = runs_frame("sqlite:///results.sqlite", "full_factorial", status="complete")
    runs.groupby("optimizer")["test_acc"].mean()
    curves = curves_frame("sqlite:///results.sqlite", "full_factorial", "val_acc")

Everything here only reads: no table is ever created, so pointing it at a database that a study
is still writing is safe, and a mistyped path is an error rather than a new empty database.
Factor columns hold canonical level labels (``hybrid(switch_at=0.5)``); metric columns hold
floats with NaN and ±inf decoded. ``frame.attrs["levels"]`` maps each factor of the study spec to
its level labels, reference first, which is what :mod:`harness.report` compares against; the
coordinator stores them in ``bench_study_factors`` when it registers the study, so reading needs
neither the trick registry nor the spec parser. ``frame.attrs["constant_levels"]`` names the
level of each trick factor the study does not vary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from harness.errors import StorageError
from harness.store.read import DEFAULT_DB_URL, connect, snapshot
from harness.store.schema import (
    RUN_STATUSES,
    Run,
    RunCurve,
    RunFactor,
    RunMetric,
    Study,
    StudyFactor,
    decode_float,
)

__all__ = [
    "DEFAULT_DB_URL",
    "RUN_COLUMNS",
    "connect",
    "curves_frame",
    "list_studies",
    "run_curves",
    "runs_frame",
    "study_info",
    "study_levels",
]

#: Columns every runs frame has besides its factor and metric columns.
RUN_COLUMNS = ("run_id", "run_key", "status", "seed", "position", "wall_time_s", "host",
               "device", "started_at", "finished_at", "error", "versions", "config")


def list_studies(db: str | Engine | None) -> list[str]:
    """Names of every study in the database, in creation order."""
    with connect(db) as engine, engine.connect() as conn:
        return list(conn.execute(select(Study.name).order_by(Study.id)).scalars())


def _study_row(session: Session, study: str) -> Study:
    row = session.scalars(select(Study).where(Study.name == study)).first()
    if row is None:
        known = session.scalars(select(Study.name).order_by(Study.id)).all()
        listing = ", ".join(repr(n) for n in known) or "none"
        raise StorageError(f"no study named {study!r} in the database (studies: {listing})")
    return row


def study_info(db: str | Engine | None, study: str) -> dict[str, Any]:
    """The study's row: name, design, spec (as loaded from YAML), spec_hash, created_at."""
    with connect(db) as engine, Session(engine) as session:
        s = _study_row(session, study)
        return {"name": s.name, "design": s.design, "spec": s.spec, "spec_hash": s.spec_hash,
                "created_at": s.created_at}


def _stored_levels(session: Session, study_id: int) -> tuple[dict[str, list[str]],
                                                            dict[str, str]]:
    """The study's varied factors with their labels (spec order) and its constant trick levels,
    as the coordinator wrote them from the spec."""
    rows = session.execute(select(StudyFactor.factor, StudyFactor.varied, StudyFactor.labels)
                           .where(StudyFactor.study_id == study_id)
                           .order_by(StudyFactor.position)).all()
    varied = {f: [str(x) for x in labels] for f, v, labels in rows if v}
    constant = {f: str(labels[0]) for f, v, labels in rows if not v and labels}
    return varied, constant


def study_levels(db: str | Engine | None, study: str) -> dict[str, list[str]]:
    """``{factor: [level labels]}`` of a study, spec order, the reference (first) level first."""
    with connect(db) as engine, Session(engine) as session:
        return _stored_levels(session, _study_row(session, study).id)[0]


def _check_status(status: str | Sequence[str] | None) -> list[str] | None:
    if status is None:
        return None
    wanted = [status] if isinstance(status, str) else list(status)
    bad = [s for s in wanted if s not in RUN_STATUSES]
    if bad:
        raise StorageError(f"unknown run status {bad[0]!r} (expected one of: "
                           f"{', '.join(RUN_STATUSES)})")
    return wanted


def _merge_levels(spec_levels: dict[str, list[str]], observed: pd.DataFrame,
                  factors: list[str]) -> dict[str, list[str]]:
    """Spec level order, extended by labels found in the runs (the spec may have grown)."""
    levels: dict[str, list[str]] = {}
    ordered = observed.sort_values(["position", "run_id"]) if len(observed) else observed
    for factor in factors:
        labels = list(spec_levels.get(factor, []))
        if factor in ordered:
            seen = [v for v in ordered[factor].dropna().unique().tolist() if v not in labels]
            stored = set(ordered[factor].dropna())
            if labels and stored and not stored & set(labels):
                # None of the spec's labels were stored (labels changed between versions):
                # fall back on run order, whose first run is the reference combination.
                labels = []
                seen = ordered[factor].dropna().unique().tolist()
            labels.extend(seen)
        levels[factor] = labels
    return levels


def runs_frame(db: str | Engine | None, study: str, *,
               status: str | Sequence[str] | None = None) -> pd.DataFrame:
    """One row per run of ``study``: identity, a column per factor and per final metric, provenance.

    Columns: ``run_id, run_key, status, seed``, the factors (level labels, spec order), the
    final metrics (floats, NaN/±inf decoded), then ``position, wall_time_s, host, device,
    started_at, finished_at, error, versions, config``. ``status`` keeps only runs with that
    status (or any of several). ``attrs`` holds ``study``, ``design``, ``spec``, ``factors``,
    ``levels``, ``metrics`` and ``constant_levels``.
    """
    wanted = _check_status(status)
    with connect(db) as engine, Session(snapshot(engine)) as conn:
        s = _study_row(conn, study)
        query = select(Run).where(Run.study_id == s.id).order_by(Run.position, Run.id)
        if wanted is not None:
            query = query.where(Run.status.in_(wanted))
        runs = list(conn.scalars(query))
        ids = [r.id for r in runs]
        factor_rows = conn.execute(
            select(RunFactor.run_id, RunFactor.factor, RunFactor.level)
            .join(Run, Run.id == RunFactor.run_id).where(Run.study_id == s.id)).all()
        metric_rows = conn.execute(
            select(RunMetric.run_id, RunMetric.name, RunMetric.value, RunMetric.special)
            .join(Run, Run.id == RunMetric.run_id).where(Run.study_id == s.id)).all()
        spec, design = s.spec, s.design
        spec_levels, constant = _stored_levels(conn, s.id)

    keep = set(ids)
    base = pd.DataFrame([{
        "run_id": r.id, "run_key": r.run_key, "status": r.status, "seed": r.seed,
        "position": r.position, "wall_time_s": r.wall_time_s, "host": r.host,
        "device": r.device, "started_at": r.started_at, "finished_at": r.finished_at,
        "error": r.error, "versions": r.versions, "config": r.config} for r in runs],
        columns=list(RUN_COLUMNS))
    base["wall_time_s"] = base["wall_time_s"].astype(float)

    stored_factors = list(dict.fromkeys(f for _, f, _ in factor_rows))
    factors = list(spec_levels) + [f for f in stored_factors if f not in spec_levels]
    fac = pd.DataFrame([(i, f, lv) for i, f, lv in factor_rows if i in keep],
                       columns=["run_id", "factor", "level"])
    fac_wide = (fac.pivot(index="run_id", columns="factor", values="level")
                if len(fac) else pd.DataFrame(index=pd.Index([], name="run_id")))
    met = pd.DataFrame([(i, n, decode_float(v, sp)) for i, n, v, sp in metric_rows if i in keep],
                       columns=["run_id", "name", "value"])
    met_wide = (met.pivot(index="run_id", columns="name", values="value")
                if len(met) else pd.DataFrame(index=pd.Index([], name="run_id")))
    # Columns do not depend on the status filter: every metric any run of the study recorded.
    metrics = sorted({n for _, n, _, _ in metric_rows})

    clash = (set(factors) | set(metrics)) & set(RUN_COLUMNS)
    clash |= set(factors) & set(metrics)
    if clash:
        raise StorageError(f"study {study!r}: factor or metric name {sorted(clash)[0]!r} clashes "
                           f"with another column of the runs frame")

    frame = base.set_index("run_id")
    for factor in factors:
        col = fac_wide[factor] if factor in fac_wide else pd.Series(dtype=object)
        frame[factor] = col.reindex(frame.index).astype(object)
    for metric in metrics:
        col = met_wide[metric] if metric in met_wide else pd.Series(dtype=float)
        frame[metric] = col.reindex(frame.index).astype(float)
    frame = frame.reset_index()
    ident = ["run_id", "run_key", "status", "seed"]
    rest = [c for c in RUN_COLUMNS if c not in ident]
    frame = frame[ident + factors + metrics + rest]
    frame.attrs.update({
        "study": study, "design": design, "spec": spec,
        "factors": [f for f in factors if f in spec_levels] or factors,
        "levels": _merge_levels(spec_levels, frame, factors),
        "metrics": metrics,
        "constant_levels": constant,
    })
    return frame


def curves_frame(db: str | Engine | None, study: str, metric: str, *,
                 status: str | Sequence[str] | None = None,
                 runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Learning curve ``metric`` of every run of ``study`` in long form.

    Columns: ``run_id, status``, the factors (level labels), ``seed, epoch, value``; one row per
    (run, epoch), sorted by run and epoch. ``attrs`` as in :func:`runs_frame`. ``runs``: the
    study's :func:`runs_frame` (or rows of it) when the caller has it already; otherwise it is
    read, with ``status``.
    """
    if runs is None:
        runs = runs_frame(db, study, status=status)
    elif status is not None:
        runs = runs[runs["status"].isin(_check_status(status))]
    with connect(db) as engine, Session(engine) as conn:
        s = _study_row(conn, study)
        rows = conn.execute(
            select(RunCurve.run_id, RunCurve.epoch, RunCurve.value, RunCurve.special)
            .join(Run, Run.id == RunCurve.run_id)
            .where(Run.study_id == s.id, RunCurve.name == metric)
            .order_by(RunCurve.run_id, RunCurve.epoch)).all()
    factors = [c for c in runs.attrs["levels"]]
    long = pd.DataFrame([(i, e, decode_float(v, sp)) for i, e, v, sp in rows],
                        columns=["run_id", "epoch", "value"])
    long["value"] = long["value"].astype(float)
    meta = runs[["run_id", "status", *factors, "seed"]]
    out = meta.merge(long, on="run_id", how="inner")
    out = out.sort_values(["run_id", "epoch"], kind="stable").reset_index(drop=True)
    out.attrs.update(runs.attrs)
    out.attrs["metric"] = metric
    return out


def run_curves(db: str | Engine | None, study: str, run_id: int) -> pd.DataFrame:
    """Every learning curve of one run of ``study``, wide: one row per epoch (0-based curve
    index), one column per curve name (``train_loss``, ``val_acc``, ...), NaN/±inf decoded."""
    with connect(db) as engine, Session(engine) as conn:
        s = _study_row(conn, study)
        rows = conn.execute(
            select(RunCurve.epoch, RunCurve.name, RunCurve.value, RunCurve.special)
            .join(Run, Run.id == RunCurve.run_id)
            .where(Run.study_id == s.id, Run.id == run_id)
            .order_by(RunCurve.epoch, RunCurve.name)).all()
    long = pd.DataFrame([(e, n, decode_float(v, sp)) for e, n, v, sp in rows],
                        columns=["epoch", "name", "value"])
    if long.empty:
        return pd.DataFrame(index=pd.Index([], name="epoch"))
    wide = long.pivot(index="epoch", columns="name", values="value").astype(float)
    wide.columns.name = None
    return wide

"""``bsnn-bench status``: where each study of a database stands. Reads only."""

from __future__ import annotations

import argparse
from typing import Any

from harness.commands import add_db_option


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="counts, runs in flight, stale and failed runs, ETA")
    add_db_option(p)
    p.add_argument("--study", default=None, help="only this study (default: every study)")
    p.set_defaults(func=main)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    return f"{seconds / 60:.0f}min ago"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown (no run completed yet)"
    h, rem = divmod(int(round(seconds)), 3600)
    return f"{h}h{rem // 60:02d}m" if h else f"{rem // 60}m{rem % 60:02d}s"


def format_status(st: Any) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(st.counts.items())) or "no runs"
    lines = [f"study {st.name} ({st.design}): {st.total} runs: {counts}"]
    live = [r for r in st.running if not r.stale]
    stale = [r for r in st.running if r.stale]
    if live:
        lines.append(f"  in flight ({len(live)}):")
        for r in live:
            of = f"/{r.epochs}" if r.epochs else ""
            lines.append(f"    {r.run_key}  host {r.host}  worker {r.worker}  epoch "
                         f"{r.epochs_done}{of}  heartbeat {_age(r.heartbeat_age_s)}")
    if stale:
        lines.append(f"  stale ({len(stale)}; their worker stopped renewing, the next worker "
                     f"re-claims them):")
        for r in stale:
            lines.append(f"    {r.run_key}  host {r.host}  worker {r.worker}  heartbeat "
                         f"{_age(r.heartbeat_age_s)}")
    if st.failed:
        lines.append(f"  failed ({len(st.failed)}):")
        for key, error in st.failed:
            lines.append(f"    {key}: {error}")
    if any(st.counts.get(k) for k in ("pending", "interrupted", "running")):
        lines.append(f"  ETA: {_duration(st.eta_s)}")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from harness.errors import StorageError
    from harness.store.read import connect
    from harness.store.schema import Study
    from harness.store.status import study_status
    from harness.study.options import lease_from_env

    lease_s, _ = lease_from_env()
    with connect(args.db) as engine:
        with Session(engine) as s:
            query = select(Study).order_by(Study.id)
            if args.study is not None:
                query = query.where(Study.name == args.study)
            studies = list(s.scalars(query))
            s.expunge_all()
        if args.study is not None and not studies:
            raise StorageError(f"no study named {args.study!r} in the database")
        if not studies:
            print("no studies in the database")
        for study in studies:
            print(format_status(study_status(engine, study, lease_s=lease_s)))
    return 0

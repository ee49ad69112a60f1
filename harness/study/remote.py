"""A worker started by hand, by Slurm or on another machine: options from the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from harness.errors import StorageError, UserError
from harness.store import control
from harness.store import engine as store_engine
from harness.store.schema import Study
from harness.study.options import (
    WorkerOptions,
    check_device,
    default_checkpoints,
    lease_from_env,
)

__all__ = ["options_for", "worker_command_main"]


def options_for(url: str, study: str, *, max_runs: int | None = None,
                threads: int | None = None, device: str | None = None,
                checkpoints: str | None = None, checkpoint_every_s: float | None = None,
                keep_checkpoints: bool = False) -> WorkerOptions:
    """Worker options for a registered study (its pruning settings come from its stored spec)."""
    if max_runs is not None and max_runs < 1:
        raise UserError(f"--max-runs must be at least 1, got {max_runs}")
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be at least 1, got {threads}")
    if checkpoint_every_s is not None and checkpoint_every_s <= 0:
        raise UserError(f"--checkpoint-every must be positive, got {checkpoint_every_s}")
    check_device(device)
    engine = store_engine.open_database(url)
    try:
        with Session(engine) as s:
            row = s.scalars(select(Study).where(Study.name == study)).first()
            if row is None:
                known = ", ".join(repr(n) for n in s.scalars(select(Study.name))) or "none"
                raise StorageError(f"no study named {study!r} in {url} (studies: {known}); "
                                   f"enqueue it first: bsnn-bench run SPEC --db {url} "
                                   f"--launcher none")
            study_id, spec = int(row.id), dict(row.spec or {})
        budget = control.create_budget(engine, study_id, max_runs) if max_runs else None
    finally:
        engine.dispose()
    seeds = ((spec.get("train") or {}).get("seeds") or [(spec.get("train") or {}).get("seed", 0)])
    pruning = spec.get("pruning") or "none"
    lease_s, beat_s = lease_from_env()
    extra: dict[str, Any] = {}
    if checkpoint_every_s is not None:
        extra["checkpoint_every_s"] = checkpoint_every_s
    return WorkerOptions(url=url, study_id=study_id, study_name=study, lease_s=lease_s,
                         heartbeat_s=beat_s, threads=threads,
                         pruning=pruning if spec.get("design") == "search" else "none",
                         pruning_seed=int(seeds[0]), budget_id=budget,
                         checkpoints=checkpoints or default_checkpoints(url),
                         keep_checkpoints=keep_checkpoints, device=device, **extra)


def worker_command_main(db: str, study: str, **kwargs: Any) -> int:
    """``bsnn-bench worker``; the exit code of :func:`harness.study.worker.worker_main`."""
    from harness.study.worker import worker_main

    opts = options_for(db, study, **kwargs)
    return worker_main(opts)

"""What a study worker is told: the database, the study, its lease, budget, checkpoints, device.

The coordinator, the launchers and ``bsnn-bench worker`` build a :class:`WorkerOptions`; the
worker itself reads nothing else (everything shared lives in the database).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from harness.errors import EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, UserError
from harness.store import claims

__all__ = [
    "CHECKPOINT_EVERY_S",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SIGTERM",
    "INLINE_ENV",
    "LEASE_ENV",
    "WorkerOptions",
    "default_checkpoints",
    "lease_from_env",
]

#: Ctrl-C (SIGINT) 130, SIGTERM (Slurm's preemption and time-limit signal) 143.
EXIT_INTERRUPTED = EXIT_SIGINT

#: Lease and heartbeat (seconds) of a claimed run: ``"LEASE"`` or ``"LEASE:HEARTBEAT"``.
#: A run whose worker stops renewing for LEASE seconds is re-run elsewhere. Default 120:30.
LEASE_ENV = "BSNN_BENCH_LEASE"
#: Set to 0 to run a single worker in its own process too (by default it runs in this one).
INLINE_ENV = "BSNN_BENCH_INLINE"
#: Default seconds of training between two periodic checkpoints of a run (a signal always
#: checkpoints at once). A default digits-dvs run lasts seconds and never writes one.
CHECKPOINT_EVERY_S = 300.0


@dataclasses.dataclass(frozen=True)
class WorkerOptions:
    url: str
    study_id: int
    study_name: str
    lease_s: float = claims.DEFAULT_LEASE_S
    heartbeat_s: float = claims.DEFAULT_HEARTBEAT_S
    #: torch threads in this worker (cores // workers); None: leave torch's default.
    threads: int | None = None
    #: "median" -> report per-epoch validation accuracy to the Optuna trial and stop early.
    pruning: str = "none"
    #: Only a run whose seed is this one reports to Optuna for pruning (one curve per trial).
    pruning_seed: int | None = None
    #: ``bench_budgets`` row this worker's claims draw on (``--max-runs``), or None: no limit.
    budget_id: int | None = None
    #: Folder of the runs' preemption checkpoints (``<dir>/<study>/<run id>.ckpt``).
    checkpoints: str = "checkpoints"
    checkpoint_every_s: float = CHECKPOINT_EVERY_S
    #: Keep a run's checkpoint when it completes (by default it is deleted).
    keep_checkpoints: bool = False
    #: "cpu", "cuda" or "cuda:I" (pins the worker to GPU I); None: the run configuration's.
    device: str | None = None
    #: Share of the GPU's memory this worker may take (``--workers-per-gpu K``: 1/K).
    gpu_memory_fraction: float | None = None


def lease_from_env() -> tuple[float, float]:
    raw = os.environ.get(LEASE_ENV, "")
    if not raw:
        return claims.DEFAULT_LEASE_S, claims.DEFAULT_HEARTBEAT_S
    try:
        parts = [float(p) for p in raw.split(":")]
    except ValueError:
        raise UserError(f"{LEASE_ENV}={raw!r}: expected LEASE or LEASE:HEARTBEAT seconds") from None
    lease = parts[0]
    beat = parts[1] if len(parts) > 1 else lease / 4
    if not (lease > 0 and 0 < beat < lease):
        raise UserError(f"{LEASE_ENV}={raw!r}: need 0 < heartbeat < lease")
    return lease, beat


def default_checkpoints(url: str) -> str:
    """``checkpoints/`` next to a SQLite database file; for a server database, in the current
    folder (give ``--checkpoints`` on shared storage when workers run on several machines)."""
    try:
        parsed: Any = make_url(url)
    except Exception:  # noqa: BLE001 - a bad URL is reported when the database is opened
        return "checkpoints"
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return str(Path(parsed.database).resolve().parent / "checkpoints")
    return str(Path("checkpoints").resolve())


def check_device(device: str | None) -> None:
    if device is None or device in ("cpu", "cuda"):
        return
    if device.startswith("cuda:") and device[5:].isdigit():
        return
    raise UserError(f"--device {device!r}: expected cpu, cuda or cuda:I")

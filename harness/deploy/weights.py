"""Keeping each complete run's best-validation weights, for export.

Where: ``<database file stem>-weights/`` next to a SQLite database (``results.sqlite`` ->
``results-weights/``), ``bsnn-weights/`` in the working directory for other databases, or the
folder given by ``bsnn-bench run --weights DIR`` (environment ``BSNN_BENCH_WEIGHTS``;
``off`` keeps none: ``--no-weights``). One file per run:
``<root>/<study>/<first 16 hex of sha1(run key)>.pt``, a ``torch.save`` of
``{"study", "run_key", "state_dict", "signs"}``: weights whose forward is their sign alone
(``ste``, ``ste-clip``) are stored as ``signs[name] = (packbits of w >= 0, shape)`` and read back
as ±1, which computes the same forward; everything else is kept as trained (default model
about 20 kB binary, 300 kB fp32).
Its absolute path and SHA-256 go into ``bench_runs.weights_path`` / ``weights_sha256``. Reports
never read these files; deleting the folder only makes runs unexportable.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from harness.errors import UserError
from harness.store.schema import Run

__all__ = ["WEIGHTS_ENV", "keep_best", "load_weights", "save_weights", "weights_root"]

WEIGHTS_ENV = "BSNN_BENCH_WEIGHTS"


def weights_root(url: str, override: str | None = None) -> Path | None:
    """The weights folder for database ``url``; None when keeping weights is off."""
    chosen = override if override is not None else os.environ.get(WEIGHTS_ENV)
    if chosen:
        return None if chosen == "off" else Path(chosen).expanduser().resolve()
    if url.startswith("sqlite:///") and url[len("sqlite:///"):] not in ("", ":memory:"):
        db = Path(url[len("sqlite:///"):].split("?", 1)[0]).expanduser().resolve()
        return db.parent / f"{db.stem}-weights"
    return Path("bsnn-weights").resolve()


def _file_name(study: str, run_key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", study)[:100] or "study"
    return Path(safe) / f"{hashlib.sha1(run_key.encode()).hexdigest()[:16]}.pt"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_weights(root: Path, study: str, run_key: str, state: dict[str, Any],
                 sign_only: Iterable[str] = ()) -> tuple[str, str]:
    """Write a run's state dict under ``root`` (``sign_only`` entries as bits); return
    ``(absolute path, sha256)``."""
    import numpy as np
    import torch

    path = root / _file_name(study, run_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    packed = set(sign_only) & set(state)
    cpu = {k: v.detach().cpu() for k, v in state.items() if k not in packed}
    signs = {k: (torch.from_numpy(np.packbits((state[k].detach().cpu() >= 0).numpy().ravel())),
                 tuple(state[k].shape)) for k in sorted(packed)}
    torch.save({"study": study, "run_key": run_key, "state_dict": cpu, "signs": signs}, tmp)
    tmp.replace(path)
    return str(path), _sha256(path)


def keep_best(engine: Any, url: str, study: str, claim: Any, worker: str,
              result: Any) -> str | None:
    """Save a complete run's ``result.best_state`` and record it on the run's row.

    The row is updated only while it is the complete result of this worker's claim (a lost
    claim writes nothing). Returns the path, or None when nothing was kept.
    """
    state = getattr(result, "best_state", None) if result is not None else None
    root = weights_root(url)
    if not state or root is None:
        return None
    try:
        path, digest = save_weights(root, study, claim.run_key, state,
                                    getattr(result, "sign_only", ()))
    except OSError as exc:
        # The run's result is recorded already; without its weights it only cannot be exported.
        print(f"bsnn-bench: warning: weights of {claim.run_key} not kept: {exc}", file=sys.stderr)
        return None
    with Session(engine) as s, s.begin():
        s.execute(update(Run).where(Run.id == claim.run_id, Run.worker == worker,
                                    Run.attempts == claim.attempt, Run.status == "complete")
                  .values(weights_path=path, weights_sha256=digest)
                  .execution_options(synchronize_session=False))
    return path


def load_weights(path: str | None, sha256: str | None, *, root: str | None = None,
                 what: str = "the run") -> dict[str, Any]:
    """The state dict kept at ``path``, checked against ``sha256``.

    ``root`` (``--weights DIR``) looks for the file under another weights folder (same
    ``<study>/<file>`` layout), e.g. after the folder was moved.
    """
    import torch

    if not path:
        raise UserError(f"{what} has no kept weights (it ran with --no-weights, failed, or was "
                        f"recorded before weights were kept): re-run it to export it")
    p = Path(path)
    if root is not None:
        p = Path(root).expanduser() / p.parent.name / p.name
    if not p.is_file():
        raise UserError(f"the weights of {what} are missing: {p} (pass --weights DIR if the "
                        f"weights folder moved)")
    if sha256 and _sha256(p) != sha256:
        raise UserError(f"the weights file {p} does not match the SHA-256 recorded for {what}")
    import numpy as np

    saved = torch.load(p, map_location="cpu", weights_only=True)
    state = dict(saved["state_dict"])
    for name, (bits, shape) in saved.get("signs", {}).items():
        ones = np.unpackbits(bits.numpy(), count=int(np.prod(shape))).reshape(shape)
        state[name] = torch.from_numpy(ones.astype(np.float32) * 2 - 1)
    return state

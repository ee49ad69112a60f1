"""What produced a run: software versions, the git commit, and the Slurm job when there is one."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["SLURM_VARIABLES", "provenance_versions"]

#: Recorded under ``versions["slurm"]`` when set (a worker running as a Slurm task).
SLURM_VARIABLES = {"job_id": "SLURM_JOB_ID", "array_job_id": "SLURM_ARRAY_JOB_ID",
                   "array_task_id": "SLURM_ARRAY_TASK_ID", "node": "SLURMD_NODENAME",
                   "partition": "SLURM_JOB_PARTITION"}


def provenance_versions() -> dict[str, Any]:
    """Versions of the software that produced a run, the git commit when available, and the
    Slurm job and array task ids of a worker that runs inside Slurm."""
    from importlib import metadata

    out: dict[str, Any] = {"python": platform.python_version()}
    for dist in ("torch", "lightning", "snntorch", "tonic", "optuna", "sqlalchemy", "numpy",
                 "bsnn-bench"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    root = Path(__file__).resolve().parent.parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=5, check=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True)
        out["git_commit"] = commit.stdout.strip()
        out["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = None
    slurm = {k: os.environ[v] for k, v in SLURM_VARIABLES.items() if os.environ.get(v)}
    if slurm:
        out["slurm"] = slurm
    return out

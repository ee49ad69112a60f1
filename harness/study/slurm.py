"""The Slurm launcher: one job array of ``--workers`` tasks through submitit, each task a study
worker (:func:`harness.study.worker.worker_main`), followed from the database like local workers.

Every task runs this Python with this environment (``sbatch --export=ALL``), so the nodes need
the same installation and the checkpoint folder on shared storage. Ctrl-C or SIGTERM cancels the
array: Slurm sends SIGTERM to the tasks, whose runs in flight checkpoint at their epoch end and
are recorded ``interrupted``; the coordinator waits for that, then exits 130 (143). Submitit
polls job states with ``sacct``, which clusters without accounting lack: task liveness is read
from ``squeue`` instead.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.study.options import WorkerOptions

__all__ = ["SlurmLauncher", "slurm_task"]

#: Seconds between two ``squeue`` polls; the progress display polls the database more often.
POLL_S = 3.0
#: How long a cancelled array's tasks get to checkpoint and record their runs.
CANCEL_WAIT_S = 120.0


def slurm_task(opts: WorkerOptions) -> int:
    """The function each array task runs (submitit pickles a reference to it)."""
    from harness.study.worker import worker_main

    return worker_main(opts)


@dataclasses.dataclass
class SlurmLauncher:
    workers: int
    partition: str | None = None
    time_min: int = 60
    gpus_per_task: int | None = None
    cpus_per_task: int | None = None
    mem_mb: int | None = None
    array_parallelism: int | None = None
    logs: str | None = None
    detach: bool = False

    def __post_init__(self) -> None:
        for name in ("time_min", "gpus_per_task", "cpus_per_task", "mem_mb",
                     "array_parallelism"):
            value = getattr(self, name)
            if value is not None and value < 1:
                flag = "--slurm-" + name.replace("_min", "").replace("_mb", "").replace("_", "-")
                raise UserError(f"{flag} must be at least 1, got {value}")
        self.jobs: list[Any] = []
        self.array_id: str | None = None
        self.stop_requested = False

    @property
    def follows(self) -> bool:
        return not self.detach

    def _executor(self, folder: Path) -> Any:
        if shutil.which("sbatch") is None:
            raise UserError("--launcher slurm: sbatch is not on the PATH (run on a Slurm login "
                            "node, or use --launcher none and start bsnn-bench worker by hand)")
        import submitit

        ex = submitit.SlurmExecutor(folder=str(folder), max_num_timeout=0,
                                    python=sys.executable)
        params: dict[str, Any] = {"time": self.time_min, "job_name": "bsnn-worker",
                                  "ntasks_per_node": 1, "nodes": 1}
        if self.partition:
            params["partition"] = self.partition
        if self.gpus_per_task:
            params["gpus_per_task"] = self.gpus_per_task
        if self.cpus_per_task:
            params["cpus_per_task"] = self.cpus_per_task
        if self.mem_mb:
            params["mem"] = f"{self.mem_mb}M"
        if self.array_parallelism:
            params["array_parallelism"] = self.array_parallelism
        ex.update_parameters(**params)
        return ex

    def run(self, opts: WorkerOptions, step: Callable[[], None]) -> list[int | None]:
        folder = Path(self.logs) if self.logs else Path(opts.checkpoints).parent / "slurm-logs"
        folder = folder.resolve() / _safe(opts.study_name)
        folder.mkdir(parents=True, exist_ok=True)
        ex = self._executor(folder)
        task_opts = dataclasses.replace(opts, threads=self.cpus_per_task or opts.threads,
                                        device="cuda" if self.gpus_per_task else opts.device)
        try:
            self.jobs = ex.map_array(slurm_task, [task_opts] * self.workers)
        except Exception as exc:  # noqa: BLE001 - sbatch refused (partition, limits): say so
            raise UserError(f"--launcher slurm: submitting the job array failed: "
                            f"{str(exc).strip().splitlines()[-1]}") from None
        self.array_id = str(self.jobs[0].job_id).split("_")[0]
        print(f"submitted Slurm job array {self.array_id} ({self.workers} worker tasks); "
              f"submitit logs: {folder}", flush=True)
        if self.detach:
            return [None] * len(self.jobs)
        last, alive, deadline = 0.0, True, None
        while alive:
            step()
            time.sleep(0.5)
            if self.stop_requested and deadline is None:
                # Slurm sends SIGTERM to the tasks; their runs checkpoint and are recorded.
                subprocess.run(["scancel", str(self.array_id)], capture_output=True, timeout=30)
                deadline = time.monotonic() + CANCEL_WAIT_S
            if time.monotonic() - last >= POLL_S:
                alive = self._queued() and (deadline is None or time.monotonic() < deadline)
                last = time.monotonic()
        return [self._code(j) for j in self.jobs]

    def _queued(self) -> bool:
        """Whether any task of the array is still pending or running (per squeue)."""
        try:
            out = subprocess.run(["squeue", "-h", "-o", "%i", "-j", str(self.array_id)],
                                 capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return True  # the controller is busy: look again later
        if out.returncode != 0:
            # An array that left the queue is unknown to squeue ("Invalid job id").
            return "Invalid job id" not in out.stderr
        return bool(out.stdout.strip())

    @staticmethod
    def _code(job: Any) -> int | None:
        if not job.paths.result_pickle.exists():
            return None  # cancelled or killed before it could return
        try:
            return int(job.result())
        except Exception:  # noqa: BLE001 - the task raised: a crashed worker
            return 1

    def signal(self, signum: int) -> None:
        """Cancel the whole array (done by :meth:`run`'s loop, not in the signal handler)."""
        self.stop_requested = True


def _safe(name: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "study"

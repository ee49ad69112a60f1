"""Inside a Slurm allocation a run is still one single-process trainer: Lightning neither adopts
the allocation nor prints its ``srun`` advice; and the ``--workers-per-gpu`` pinning, without a
GPU."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.study.launch import gpu_assignments, visible_gpus

SCRIPT = """
import warnings, logging, sys
sys.path[:0] = [{tests!r}]
from _train_tiny import TinyNet, tiny_cfg, tiny_data
from harness.run.train import train_run
import lightning as L
cfg = tiny_cfg(epochs=1)
{extra}
result = train_run(cfg, model=TinyNet(), data=tiny_data())
print("status", result.status)
"""

#: A task of a job array (Lightning would adopt the allocation and set its requeue handlers).
TASK_ENV = {"SLURM_JOB_ID": "4242", "SLURM_NTASKS": "2", "SLURM_JOB_NAME": "bsnn",
            "SLURM_NODELIST": "localhost", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
            "SLURM_NODEID": "0", "SLURM_NTASKS_PER_NODE": "2", "SLURM_ARRAY_JOB_ID": "4242",
            "SLURM_ARRAY_TASK_ID": "1"}
#: An interactive allocation (salloc; Lightning would print its srun advice).
SHELL_ENV = {"SLURM_JOB_ID": "4243", "SLURM_JOB_NAME": "bash", "SLURM_NODELIST": "localhost"}
#: Lightning left to itself: the Trainer without our plugin, its warnings not filtered.
NO_PLUGIN = """
import contextlib
import harness.run.train as t
t._quiet = lambda progress: contextlib.nullcontext()
orig = L.Trainer
class Trainer(orig):
    def __init__(self, *args, plugins=None, **kwargs):
        super().__init__(*args, **kwargs)
L.Trainer = Trainer
"""


def _train_in_slurm_env(tmp_path: Path, slurm: dict[str, str],
                        extra: str = "") -> subprocess.CompletedProcess:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    srun = fake_bin / "srun"  # Lightning's advice is printed when `srun` is on the PATH
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(srun.stat().st_mode | stat.S_IEXEC)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
    env.update(slurm)
    env["PATH"] = f"{fake_bin}{os.pathsep}{os.environ['PATH']}"
    code = SCRIPT.format(tests=str(Path(__file__).parent), extra=extra)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize(("slurm", "lightning_says"), [(TASK_ENV, "SLURM auto-requeueing"),
                                                       (SHELL_ENV, "`srun` command")])
def test_no_srun_warning_and_no_slurm_takeover(tmp_path: Path, slurm: dict[str, str],
                                               lightning_says: str) -> None:
    done = _train_in_slurm_env(tmp_path, slurm)
    assert done.returncode == 0, done.stderr
    assert "status complete" in done.stdout
    out = done.stdout + done.stderr
    assert "srun" not in out and "SLURM" not in out, out
    # Without the plugin the same run prints Lightning's line (so this test can fail).
    bare = _train_in_slurm_env(tmp_path, slurm, NO_PLUGIN)
    assert lightning_says in bare.stdout + bare.stderr


def test_workers_per_gpu_pins_each_worker_to_one_gpu_with_a_memory_share() -> None:
    assert gpu_assignments(["0", "1"], 2) == [("cuda:0", 0.5), ("cuda:0", 0.5),
                                               ("cuda:1", 0.5), ("cuda:1", 0.5)]
    assert gpu_assignments(["3"], 4) == [("cuda:3", 0.25)] * 4
    with pytest.raises(UserError, match="no GPU is visible"):
        gpu_assignments([], 2)
    with pytest.raises(UserError, match="at least 1"):
        gpu_assignments(["0"], 0)


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert visible_gpus() == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert visible_gpus() == []


def test_a_pinned_worker_process_sees_only_its_gpu(tmp_path: Path) -> None:
    """The worker sets CUDA_VISIBLE_DEVICES from its device before CUDA starts."""
    code = ("from harness.study.options import WorkerOptions\n"
            "from harness.study.worker import _prepare_device\n"
            "import os\n"
            "_prepare_device(WorkerOptions(url='sqlite://', study_id=1, study_name='s', "
            "device='cuda:5', gpu_memory_fraction=0.25))\n"
            "print(os.environ['CUDA_VISIBLE_DEVICES'])\n")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "4,5"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "5"

"""How local workers start: forked from the prestarted forkserver (Linux) or spawned.

A forkserver outlives the study that started it (one per process: these tests share one), and
its environment is the one of its start; each worker must still see the coordinator's
environment, import path and folder of the moment it is started, exactly as a spawned one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_study_fakes import executions, use_fake_run, write_spec

from harness.cli import build_parser
from harness.errors import UserError
from harness.study import prestart
from harness.study.coordinator import run_study_command

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="workers are forked from a forkserver on Linux only")


def _pids(log: Path) -> set[int]:
    return {json.loads(line)["pid"] for line in log.read_text().splitlines() if line.strip()}


@linux_only
def test_forkserver_workers_see_the_environment_and_folder_of_now(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(prestart.START_METHOD_ENV, raising=False)
    assert prestart.start_method() == "forkserver"
    prestart.prestart_workers()  # started before the variables below exist
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    log = tmp_path / "executions.log"  # BSNN_FAKE_LOG is set only now
    use_fake_run(monkeypatch, log, sleep=0.15)
    spec = write_spec(tmp_path / "study.yaml", "fs")
    # A relative database path: the workers must open it in this folder, not the server's.
    assert run_study_command(str(spec), db="sqlite:///r.sqlite", workers=2,
                             progress=False) == 0
    assert len(executions(log)) == 24
    assert len(_pids(log)) == 2 and os.getpid() not in _pids(log)
    assert (here / "r.sqlite").is_file()


def test_spawned_workers_run_the_study_too(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(prestart.START_METHOD_ENV, "spawn")
    assert prestart.start_method() == "spawn"
    log = tmp_path / "executions.log"
    # Spawned workers import for seconds, not always together: runs long enough for both.
    use_fake_run(monkeypatch, log, sleep=0.3)
    spec = write_spec(tmp_path / "study.yaml", "sp")
    assert run_study_command(str(spec), db=f"sqlite:///{tmp_path / 'r.sqlite'}", workers=2,
                             progress=False) == 0
    assert len(executions(log)) == 24 and len(_pids(log)) == 2


def test_unknown_start_method_is_one_clear_error(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(prestart.START_METHOD_ENV, "fork")
    with pytest.raises(prestart.StartMethodError, match="BSNN_BENCH_START_METHOD='fork': "
                                                        "expected forkserver or spawn"):
        prestart.start_method()
    prestart.prestart_workers()  # early and silent: the launcher reports it
    use_fake_run(monkeypatch, tmp_path / "executions.log")
    spec = write_spec(tmp_path / "study.yaml", "bad")
    with pytest.raises(UserError, match="BSNN_BENCH_START_METHOD='fork'"):
        run_study_command(str(spec), db=f"sqlite:///{tmp_path / 'r.sqlite'}", workers=2,
                          progress=False)


@pytest.mark.parametrize(("argv", "starts"), [
    (["run", "s.yaml", "--workers", "2"], True),
    (["--debug", "run", "s.yaml", "--workers=4", "--db", "sqlite:///x"], True),
    (["run", "s.yaml", "--workers-per-gpu", "2"], False),           # GPU workers: spawned
    (["run", "s.yaml"], False),                                    # one worker: in-process
    (["run", "s.yaml", "--workers", "2", "--dry-run"], False),
    (["run", "s.yaml", "--workers", "2", "--launcher", "slurm"], False),
])
def test_the_cli_prestarts_the_server_only_for_local_workers(
        argv: list[str], starts: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(prestart, "prestart_workers", lambda threads=1: calls.append(threads))
    prestart.prestart_for(build_parser().parse_args(argv))
    assert bool(calls) == starts


def test_the_cli_parses_before_it_imports_torch() -> None:
    # The prestart is only worth it before torch is imported: parsing must not import it.
    code = ("import sys; from harness.cli import build_parser; "
            "build_parser().parse_args(['run', 's.yaml', '--workers', '2']); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"

"""Exit codes a script can trust, through the real command line in a subprocess: 0 done, 1
finished with failed runs, 2 user error, 3 storage or internal error (one line naming the file
that holds the traceback; ``BSNN_BENCH_DEBUG=1`` prints it). 130 (SIGINT) is checked by
test_workers_sigint; 3 for a full disk by test_reliability_storage."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from test_study_fakes import cli_cmd, fake_env, write_spec

from harness.errors import (
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_RUNS_FAILED,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_USER_ERROR,
)


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = fake_env(tmp_path / "executions.log", TMPDIR=str(tmp_path), **env)
    return subprocess.run(cli_cmd(*args), env=environ, capture_output=True, text=True,
                          timeout=300)


def test_exit_code_constants_are_the_documented_numbers() -> None:
    assert (EXIT_OK, EXIT_RUNS_FAILED, EXIT_USER_ERROR, EXIT_INTERNAL, EXIT_SIGINT,
            EXIT_SIGTERM) == (0, 1, 2, 3, 130, 143)


def test_exit_0_when_every_run_completes_and_1_when_some_failed(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", "codes", train={"epochs": 1, "seeds": [0]})
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    done = run_cli(tmp_path, "run", str(spec), "--db", url, "--quiet")
    assert done.returncode == 0, done.stderr
    # A run function that raises for avg pooling: those runs fail, the others complete.
    failing = write_spec(tmp_path / "f.yaml", "codes-failing", train={"epochs": 1, "seeds": [0]})
    some = run_cli(tmp_path, "run", str(failing), "--db", url, "--quiet", BSNN_FAKE_RAISE="1")
    assert some.returncode == 1, some.stderr
    assert "Traceback" not in some.stderr


def test_exit_2_for_a_user_error(tmp_path: Path) -> None:
    bad = write_spec(tmp_path / "bad.yaml", "bad", factors={"optimizer": ["adamw"]})
    proc = run_cli(tmp_path, "run", str(bad), "--db", f"sqlite:///{tmp_path / 'r.sqlite'}")
    assert proc.returncode == 2
    assert proc.stderr.startswith("bsnn-bench: error: ") and "unknown optimizer level" \
        in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("workers", ["1", "2"])
def test_exit_3_for_an_internal_error_with_the_traceback_in_a_file(tmp_path: Path,
                                                                     workers: str) -> None:
    """A bug (here: the run-function hook names a function that does not exist) ends in one
    line per process, exit 3, and the traceback in a file named by that line."""
    spec = write_spec(tmp_path / "s.yaml", "bug", train={"epochs": 1, "seeds": [0]})
    proc = run_cli(tmp_path, "run", str(spec), "--db", f"sqlite:///{tmp_path / 'r.sqlite'}",
                   "--quiet", "--workers", workers,
                   BSNN_BENCH_RUN_FN="test_study_fakes:no_such_function")
    assert proc.returncode == 3, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("bsnn-bench: error:")]
    assert errors and "Traceback" not in proc.stderr, proc.stderr
    for line in errors:
        assert "internal error: AttributeError: module 'test_study_fakes' has no attribute " \
               "'no_such_function'" in line
        (name,) = re.findall(r"traceback in (\S+); please report it", line)
        assert Path(name).parent == tmp_path and "Traceback (most recent call last)" \
            in Path(name).read_text()


def test_debug_prints_the_traceback_instead(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", "bug", train={"epochs": 1, "seeds": [0]})
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    for extra, env in (((), {"BSNN_BENCH_DEBUG": "1"}), (("--debug",), {})):
        proc = run_cli(tmp_path, *extra, "run", str(spec), "--db", url, "--quiet",
                       BSNN_BENCH_RUN_FN="test_study_fakes:no_such_function", **env)
        assert proc.returncode == 3
        assert "Traceback (most recent call last)" in proc.stderr
        assert proc.stderr.strip().splitlines()[-1].endswith(
            "(traceback above; please report it)")

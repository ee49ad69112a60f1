"""The command line: user errors exit 2 with one line, the tricks listing is complete."""

from __future__ import annotations

import subprocess
import sys

import pytest

import tricks
from harness.cli import main


def test_tricks_lists_every_factor_level_and_parameter(capsys: pytest.CaptureFixture) -> None:
    assert main(["tricks"]) == 0
    out = capsys.readouterr().out
    for factor, levels in tricks.registry().items():
        assert f"\n{factor}\n" in "\n" + out
        for name, cls in levels.items():
            assert f"  {name} " in out or f"  {name}\n" in out
            for p in cls.params():
                assert f"{p.name}: {p.type}" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--set", "train.epochz=1"], "unknown key 'train.epochz'"),
        (["train", "--set", "factors.surrogate=nope"], "unknown surrogate level 'nope'"),
        (["train", "--config", "does/not/exist.yaml"], "does/not/exist.yaml: no such file"),
        (["train", "--set", "dataset.name=imagenet-dvs"], "imagenet-dvs"),
    ],
)
def test_user_errors_exit_2_with_one_line(args: list[str], message: str,
                                          capsys: pytest.CaptureFixture) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("bsnn-bench: error:") and err.count("\n") == 1
    assert "Traceback" not in err


def test_console_script_entry_point_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "tricks", "surrogate"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "rectangle" in proc.stdout and "atan" in proc.stdout


def test_a_closed_pipe_is_not_an_error() -> None:
    """`bsnn-bench tricks | head -1`: the reader leaves early; no traceback, exit 0."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "tricks"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the first write: every write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err and "Broken pipe" not in err

"""The allocator setting for training processes (harness/run/memory.py) and the CLI's re-exec."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from harness import cli
from harness.run import memory


@pytest.mark.parametrize(("env", "tuned"), [
    ({}, True),
    ({memory.ALLOCATOR_ENV: "0"}, False),
    ({memory.ALLOCATOR_ENV: "1"}, True),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, False),
    ({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}, False),
])
def test_tuned_environ(env: dict[str, str], tuned: bool, monkeypatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    out = memory.tuned_environ({"PATH": "/bin", **env})
    if not tuned:
        assert out is None
    else:
        assert out == {"PATH": "/bin", **env, "GLIBC_TUNABLES": memory.GLIBC_RETAIN}
    monkeypatch.setattr(sys, "platform", "darwin")
    assert memory.tuned_environ({"PATH": "/bin", **env}) is None


class _Exec(Exception):
    pass


@pytest.mark.parametrize(("command", "reexec"), [(["train", "--quiet"], True),
                                                 (["run", "x.yaml"], True),
                                                 (["tricks"], False)])
def test_cli_reexecutes_training_commands_once(command, reexec, monkeypatch, capsys) -> None:
    calls = []

    def fake_execve(path, args, env):
        calls.append((path, args, env))
        raise _Exec

    monkeypatch.setattr(memory.os, "execve", fake_execve)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv(memory.ALLOCATOR_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", ["bsnn-bench", *command])
    if reexec:
        with pytest.raises(_Exec):
            cli.main()
        ((path, args, env),) = calls
        assert path == sys.executable
        assert args == [sys.executable, "-m", "harness.cli", *command]
        assert env["GLIBC_TUNABLES"] == memory.GLIBC_RETAIN
    else:
        assert cli.main() == 0
        assert calls == []
    # Already tuned (the re-executed process): no second exec.
    monkeypatch.setenv("GLIBC_TUNABLES", memory.GLIBC_RETAIN)
    calls.clear()
    memory.reexec_with_retained_memory(["-m", "harness.cli", *command])
    assert calls == []
    # main(argv) (library use, tests) never re-executes.
    monkeypatch.delenv("GLIBC_TUNABLES")
    assert cli.main(["tricks"]) == 0 and calls == []


def test_cli_reexecutes_before_importing_torch(tmp_path) -> None:
    """The exec throws away what the first process imported: it comes before torch (0.85 s)."""
    import subprocess

    probe = (
        "import os, sys\n"
        "def fake_execve(path, args, env):\n"
        "    print('torch' in sys.modules, 'lightning' in sys.modules, args[1:4])\n"
        "    sys.exit(0)\n"
        "os.execve = fake_execve\n"
        "sys.argv = ['bsnn-bench', 'train', '--quiet']\n"
        "from harness.cli import main\n"
        "main()\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("GLIBC_TUNABLES", memory.ALLOCATOR_ENV)}
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         timeout=120, check=True, cwd=tmp_path)
    assert out.stdout.split("\n")[0] == "False False ['-m', 'harness.cli', 'train']"

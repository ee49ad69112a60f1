"""Full disks, read-only storage, files that are not databases, schema versions: one line, a
documented exit code, nothing committed lost, and ``report`` reading what it can only read."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from test_results import FULL_SPEC, make_study
from test_study_fakes import cli_cmd, fake_env, use_fake_run, write_spec

from harness.cli import main
from harness.store import claims
from harness.store import engine as store_engine
from harness.store.failures import describe_failure
from harness.store.schema import SCHEMA_VERSION, Run, SchemaInfo


def one_line_error(err: str) -> str:
    assert err.startswith("bsnn-bench: error: "), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@pytest.fixture()
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs root), else a skip with the reason."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command to make a small file system")
    proc = _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt))
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'not root'}); "
                    f"test_run_when_the_database_fills_mid_study_exits_3 covers the message")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture()
def read_only_view(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """``make(folder)``: the folder as a read-only file system (root: a read-only bind mount;
    another user: the folder made unwritable, which SQLite meets the same way)."""
    mounted: list[Path] = []
    chmodded: list[Path] = []

    def make(folder: Path) -> Path:
        if os.geteuid() != 0:
            folder.chmod(0o555)
            chmodded.append(folder)
            return folder
        view = tmp_path / f"ro-{len(mounted)}"
        view.mkdir()
        if shutil.which("mount") is None or _mount("--bind", str(folder), str(view)).returncode:
            pytest.skip("cannot bind-mount a read-only view here")
        mounted.append(view)
        proc = _mount("-o", "remount,ro,bind", str(view))
        if proc.returncode:
            pytest.skip(f"cannot remount read-only: {proc.stderr.strip()}")
        return view

    yield make
    for view in mounted:
        subprocess.run(["umount", "-l", str(view)], check=False)
    for folder in chmodded:
        folder.chmod(0o755)


# -- full disk ----------------------------------------------------------------------------------

def test_run_on_a_full_disk_exits_3_in_one_line_and_a_copy_resumes(
        tmp_path: Path, tiny_fs: Path) -> None:
    spec = write_spec(tmp_path / "s.yaml", "fulldisk", train={"epochs": 1,
                                                              "seeds": list(range(10))})
    url = f"sqlite:///{tiny_fs / 'r.sqlite'}"
    log = tmp_path / "executions.log"
    proc = subprocess.run(cli_cmd("run", str(spec), "--db", url, "--quiet"),
                          env=fake_env(log), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr
    err = one_line_error(proc.stderr)
    assert f"the results database {url} failed: database or disk is full; nothing saved " \
           f"before was lost: free some space and run the same command again" in err
    # Not corrupted: a copy (with its WAL) on a roomy disk checks out and resumes to the end.
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in tiny_fs.glob("r.sqlite*"):
        shutil.copy(f, copy / f.name)
    with sqlite3.connect(copy / "r.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    again = subprocess.run(cli_cmd("run", str(spec), "--db", f"sqlite:///{copy / 'r.sqlite'}",
                                   "--quiet"), env=fake_env(log), capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(copy / "r.sqlite") as conn:
        assert conn.execute("SELECT status, count(*) FROM bench_runs GROUP BY status"
                            ).fetchall() == [("complete", 120)]


def test_run_when_the_database_fills_mid_study_exits_3_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Without a small file system: the write of a result fails as SQLite fails on a full
    disk; the run stays claimed (re-run by the next command), the command ends in one line."""
    use_fake_run(monkeypatch, tmp_path / "log")
    spec = write_spec(tmp_path / "s.yaml", "fills")
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"

    def full(*_a: object, **_k: object) -> bool:
        raise OperationalError("INSERT INTO bench_run_metrics ...", {},
                               sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(claims, "record_result", full)
    capsys.readouterr()
    assert main(["run", str(spec), "--db", url, "--quiet"]) == 3
    err = one_line_error(capsys.readouterr().err)
    assert "database or disk is full; nothing saved before was lost: free some space" in err
    monkeypatch.undo()
    use_fake_run(monkeypatch, tmp_path / "log")
    # The next command resumes. (A new process would take the run over at once, its worker
    # being dead; this one shares the pid, so a short lease stands in.)
    monkeypatch.setenv("BSNN_BENCH_LEASE", "1:0.25")
    assert main(["run", str(spec), "--db", url, "--quiet"]) == 0
    engine = store_engine.make_engine(url)
    assert claims.count_by_status(engine, 1) == {"complete": 24}
    engine.dispose()


def test_optuna_storage_internal_error_is_one_storage_line() -> None:
    from optuna.exceptions import StorageInternalError

    try:
        try:
            raise OperationalError("INSERT INTO trials", {},
                                   sqlite3.OperationalError("disk I/O error"))
        except OperationalError as exc:
            raise StorageInternalError("An exception is raised during the commit.") from exc
    except StorageInternalError as exc:
        text = describe_failure(exc, "sqlite:///r.sqlite")
    assert text == ("the results database sqlite:///r.sqlite failed: disk I/O error; nothing "
                    "saved before was lost: fix the cause and run the same command again")
    assert describe_failure(ValueError("a bug")) is None


# -- read-only storage, files that are not databases ---------------------------------------------

def test_run_on_a_read_only_database_is_refused_in_one_line(
        tmp_path: Path, read_only_view: Callable[[Path], Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    store_engine.open_database(f"sqlite:///{folder / 'r.sqlite'}").dispose()
    view = read_only_view(folder)
    spec = write_spec(tmp_path / "s.yaml", "ro")
    capsys.readouterr()
    assert main(["run", str(spec), "--db", f"sqlite:///{view / 'r.sqlite'}", "--quiet"]) == 2
    err = one_line_error(capsys.readouterr().err)
    reason = "read-only file system" if os.geteuid() == 0 else "no write permission"
    assert f"results database '{view / 'r.sqlite'}' cannot be written ({reason}); run " \
           f"records results there" in err


@pytest.mark.parametrize("content", [b"this is not a database\n" * 10, b"\x00" * 4096])
def test_run_on_a_garbage_file_is_refused_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes) -> None:
    garbage = tmp_path / "notes.sqlite"
    garbage.write_bytes(content)
    spec = write_spec(tmp_path / "s.yaml", "garbage")
    for extra in ([], ["--dry-run"]):
        capsys.readouterr()
        assert main(["run", str(spec), "--db", f"sqlite:///{garbage}", *extra]) == 2
        err = one_line_error(capsys.readouterr().err)
        assert f"'{garbage}' is not a SQLite database" in err
    assert garbage.read_bytes() == content  # untouched


@pytest.mark.parametrize("wal_left", [False, True], ids=["closed", "wal-with-results"])
def test_report_reads_a_wal_database_on_a_read_only_file_system(
        tmp_path: Path, read_only_view: Callable[[Path], Path],
        capsys: pytest.CaptureFixture[str], wal_left: bool) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    url = f"sqlite:///{folder / 'r.sqlite'}"
    store_engine.open_database(url).dispose()  # WAL mode, as run makes it
    make_study(url, FULL_SPEC)
    writer = None
    if wal_left:
        # A writer still holds results in the -wal file (not checkpointed).
        writer = sqlite3.connect(folder / "r.sqlite")
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("UPDATE bench_studies SET name = 'renamed'")
        writer.commit()
        assert (folder / "r.sqlite-wal").stat().st_size > 0
    else:
        assert not (folder / "r.sqlite-wal").exists()
    try:
        view = read_only_view(folder)
        out = tmp_path / "out"
        capsys.readouterr()
        assert main(["report", "--db", f"sqlite:///{view / 'r.sqlite'}", "--out", str(out),
                     "--format", "csv"]) == 0, capsys.readouterr().err
        name = "renamed" if wal_left else "full"
        assert (out / name / "main_effects.csv").is_file()
    finally:
        if writer is not None:
            writer.close()


# -- schema versions ------------------------------------------------------------------------------

def _errors_of(commands: list[list[str]], capsys: pytest.CaptureFixture[str]) -> list[str]:
    lines = []
    for argv in commands:
        capsys.readouterr()
        assert main(argv) == 2, argv
        lines.append(one_line_error(capsys.readouterr().err))
    return lines


def test_schema_version_mismatch_gives_one_message_with_its_fix_on_every_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite'}"
    engine = store_engine.open_database(url)
    make_study(url, FULL_SPEC, create=False)
    spec = str(write_spec(tmp_path / "s.yaml", "other"))
    out = str(tmp_path / "out")
    commands = [["report", "--db", url, "--out", out], ["run", spec, "--db", url],
                ["run", spec, "--db", url, "--dry-run"], ["migrate", "--db", url]]

    def set_version(v: int) -> None:
        with Session(engine) as s, s.begin():
            s.execute(update(SchemaInfo).values(version=v))

    set_version(SCHEMA_VERSION + 1)
    newer = _errors_of(commands, capsys)
    assert len(set(newer)) == 1  # the same message from every command
    assert newer[0].strip() == (
        f"bsnn-bench: error: database '{url}' has results schema version {SCHEMA_VERSION + 1}, "
        f"newer than this bsnn-bench reads (version {SCHEMA_VERSION}); upgrade bsnn-bench: "
        f"pip install --upgrade bsnn-bench")

    # Older, and a migration exists: report (read-only) names `migrate`, which fixes it.
    set_version(SCHEMA_VERSION - 1)
    monkeypatch.setitem(store_engine.MIGRATIONS, SCHEMA_VERSION - 1, lambda s: None)
    (older,) = _errors_of(commands[:1], capsys)
    assert older.strip().endswith(f"upgrade the database in place: bsnn-bench migrate "
                                  f"--db {url}")
    assert main(commands[2]) == 0  # run would migrate it: its dry run says nothing against
    assert main(["migrate", "--db", url]) == 0
    assert f"schema version {SCHEMA_VERSION - 1} -> {SCHEMA_VERSION}" in capsys.readouterr().out
    assert main(commands[0]) == 0

    # Older, no migration: the release that wrote it, named from the runs' provenance.
    monkeypatch.delitem(store_engine.MIGRATIONS, SCHEMA_VERSION - 1)
    with Session(engine) as s, s.begin():
        s.execute(update(Run).values(versions={"bsnn-bench": "0.0.9"}))
    set_version(SCHEMA_VERSION - 1)
    no_step = _errors_of(commands, capsys)
    assert len(set(no_step)) == 1
    assert "read it with the release that wrote it: pip install 'bsnn-bench==0.0.9'" \
        in no_step[0]
    engine.dispose()


def test_console_script_prints_exit_codes_in_its_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    assert "exit codes: 0 done, 1 finished with failed runs, 2 user error, 3 storage" \
        in " ".join(proc.stdout.split())

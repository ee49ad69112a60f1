"""report.md escapes names and labels (no raw HTML, code or table breaks from data), report
files are replaced atomically (a full disk leaves the old file, never a 0-byte one), and
``report`` reads a WAL database on a read-only file system."""

from __future__ import annotations

import errno
import html
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from test_results import FULL_SPEC, make_study

from harness.cli import main
from harness.report import report_command
from harness.report.formats import md_escape

SCRIPT = "<script>alert('study')</script> `rm -rf` | *bold* [x](javascript:alert(1))"
IMG = "<img src=x onerror=alert(1)>"
TICKS = "``code`` $x$ ~~gone~~ _e_ \\ back"


def rendered(markdown: str) -> str:
    """The HTML a CommonMark renderer with GitHub's tables makes of ``markdown``, raw HTML on."""
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)


@pytest.mark.parametrize("text", [SCRIPT, IMG, TICKS, "a|b", "line\nbreak", "&amp; & <"])
def test_md_escape_renders_as_the_literal_text(text: str) -> None:
    page = rendered(f"| h |\n|---|\n| {md_escape(text)} |\n\n{md_escape(text)}\n")
    assert "<script" not in page and "<img" not in page and "<code" not in page
    assert "<em>" not in page and "<s>" not in page and "<a " not in page
    literal = html.escape(text.replace("\n", " "), quote=False)
    # Once in the table cell (one cell: the '|' did not split it), once in the paragraph.
    assert page.count(literal) == 2, page
    assert page.count("<td>") == 1


def test_report_md_escapes_hostile_study_names_and_labels(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    spec = dict(FULL_SPEC, study=SCRIPT,
                factors={"binarization": ["fp32", "ste-clip"], "dataset.name": [IMG, TICKS,
                                                                                "plain"]})
    make_study(url, spec)
    out = tmp_path / "out"
    assert report_command(db=url, out=str(out), formats=["md"]) == 0
    (md_file,) = out.glob("*/report.md")
    md = md_file.read_text(encoding="utf-8")
    spec_block = re.search(r"```yaml\n.*?\n```\n", md, flags=re.S)
    assert spec_block is not None
    outside_code = md.replace(spec_block.group(0), "")
    for raw in ("<script", "<img"):
        assert raw not in outside_code, raw
    page = rendered(md)
    assert "<script" not in page and "<img" not in page
    # Backticks, stars and brackets in the names are text, not code, emphasis or links.
    rest = rendered(outside_code)
    assert "<code" not in rest and "<em>" not in rest and "<a " not in rest and "<s>" not in rest
    assert html.escape(IMG, quote=False) in page  # shown, as text
    assert "<h1>Study report: &lt;script&gt;" in page


# -- atomic report files ---------------------------------------------------------------------

@pytest.fixture()
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (root), else a skip with the reason."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command to make a small file system")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'not root'})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(folder: Path, leave: int) -> None:
    """Fill the file system of ``folder`` until about ``leave`` bytes are free."""
    import os

    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with open(folder / "filler", "wb") as fh:
        try:
            fh.write(b"\0" * max(0, free - leave))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_report_onto_a_full_disk_fails_in_one_line_and_leaves_no_empty_png(
        tmp_path: Path, tiny_fs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    make_study(url, FULL_SPEC)
    out = tiny_fs / "reports"
    fill(tiny_fs, 20_000)  # room for the folder and a few small files, not the figures
    capsys.readouterr()
    code = main(["report", "--db", url, "--out", str(out), "--format", "png,md"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert err.startswith("bsnn-bench: error: no space left on device (")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    written = [p for p in out.rglob("*") if p.is_file()]
    assert all(p.stat().st_size > 0 for p in written), written
    assert not [p for p in written if p.name.endswith(".tmp")]


def test_report_keeps_the_old_files_when_the_disk_fills_mid_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Where no small file system can be mounted: the disk fills as a file is flushed to it
    (fsync raises ENOSPC). The report before stays whole, no temporary file is left."""
    import os

    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    make_study(url, FULL_SPEC)
    out = tmp_path / "out"
    assert main(["report", "--db", url, "--out", str(out), "--format", "png,md"]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert any(p.suffix == ".png" for p in before)

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    capsys.readouterr()
    assert main(["report", "--db", url, "--out", str(out), "--format", "png,md"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("bsnn-bench: error: no space left on device (")
    assert "free some space" in err and len(err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
